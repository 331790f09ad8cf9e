// boot::layout: RAM ranges around the 32-bit MMIO hole, and the low-memory boot structures
// fitting their slots without overlapping each other.
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

TEST(Layout, BootStructuresDoNotOverlap) {
  EXPECT_LE(layout::kGdt.value + 8 * 8, layout::kIdt.value);
  EXPECT_LE(layout::kBootParams.value + 4096, layout::kBootStack.value);
  EXPECT_LT(layout::kBootStack.value, layout::kPml4.value);
  EXPECT_EQ(layout::kPdpt.value, layout::kPml4.value + 4096);
  EXPECT_EQ(layout::kPageDirectories.value, layout::kPdpt.value + 4096);
  EXPECT_LE(layout::kPageDirectories.value + 4 * 4096, layout::kCmdline.value);
  EXPECT_LE(layout::kCmdline.value + layout::kCmdlineReserved, layout::kEbda.value);
  EXPECT_LE(layout::kEbda.value, layout::kAcpiTables.value);
  EXPECT_EQ(layout::kAcpiTables.value + layout::kAcpiReserved, layout::kHighMemory.value);
}

TEST(Layout, ApicsLieInTheMmioHole) {
  for (GuestAddress a : {layout::kIoApic, layout::kLocalApic, layout::kKvmIdentityMap, layout::kKvmTss}) {
    EXPECT_GE(a, layout::kMmioHoleStart);
    EXPECT_LT(a, layout::kMmioHoleEnd);
  }
}

}  // namespace
}  // namespace microvm::boot
