// boot::layout: RAM ranges around the 32-bit MMIO hole. (That the boot structures fit their slots
// without overlapping, and the APICs lie in the hole, is checked at compile time in boot/layout.h.)
#include "boot/layout.h"

#include <gtest/gtest.h>

#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::kGiB;
using test::kMiB;

void expect_range(const MemoryRange& range, std::uint64_t start, std::uint64_t size) {
  EXPECT_EQ(range.start.value, start);
  EXPECT_EQ(range.size, size);
}

TEST(RamRanges, BelowTheHoleIsOneRange) {
  const auto ranges = layout::ram_ranges(128 * kMiB);
  ASSERT_EQ(ranges.size(), 1U);
  expect_range(ranges[0], 0, 128 * kMiB);
}

TEST(RamRanges, ExactlyUpToTheHoleIsOneRange) {
  const auto ranges = layout::ram_ranges(3 * kGiB);
  ASSERT_EQ(ranges.size(), 1U);
  expect_range(ranges[0], 0, 3 * kGiB);
}

TEST(RamRanges, FourGiBResumesAbove4GiB) {
  const auto ranges = layout::ram_ranges(4 * kGiB);
  ASSERT_EQ(ranges.size(), 2U);
  expect_range(ranges[0], 0, 3 * kGiB);
  expect_range(ranges[1], 4 * kGiB, kGiB);
}

TEST(RamRanges, OnePagePastTheHole) {
  const auto ranges = layout::ram_ranges(3 * kGiB + 4096);
  ASSERT_EQ(ranges.size(), 2U);
  expect_range(ranges[1], layout::kMmioHoleEnd.value, 4096);
}

}  // namespace
}  // namespace microvm::boot
