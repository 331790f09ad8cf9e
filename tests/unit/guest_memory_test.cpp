// GuestAddress, MemoryRange and GuestMemory: every guest access is bounds-checked against the
// regions, including at the edges, across the MMIO hole and near the top of the address space.
#include "memory/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include <array>
#include <cstdint>
#include <vector>

#include "boot/layout.h"
#include "tests/unit/test_support.h"

namespace microvm {
namespace {

using test::kGiB;
using test::kMiB;

const std::uint64_t kPage = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));

Result<GuestMemory> create(std::vector<MemoryRange> ranges) {
  return GuestMemory::create(ranges);
}

bool can_read(const GuestMemory& memory, std::uint64_t addr, std::size_t len) {
  std::vector<std::byte> buffer(len);
  return memory.read(GuestAddress(addr), buffer).has_value();
}

bool can_write(const GuestMemory& memory, std::uint64_t addr, std::size_t len) {
  const std::vector<std::byte> buffer(len, std::byte{0xab});
  return memory.write(GuestAddress(addr), buffer).has_value();
}

TEST(GuestAddress, CheckedAddDetectsWrapAround) {
  EXPECT_EQ(GuestAddress(0x1000).checked_add(0x234), GuestAddress(0x1234));
  EXPECT_EQ(GuestAddress(UINT64_MAX - 1).checked_add(1), GuestAddress(UINT64_MAX));
  EXPECT_EQ(GuestAddress(UINT64_MAX).checked_add(1), std::nullopt);
  EXPECT_EQ(GuestAddress(2).checked_add(UINT64_MAX - 1), std::nullopt);
  EXPECT_EQ(GuestAddress(0).checked_add(UINT64_MAX), GuestAddress(UINT64_MAX));
}

TEST(GuestAddress, OrdersByValue) {
  EXPECT_LT(GuestAddress(1), GuestAddress(2));
  EXPECT_EQ(GuestAddress(7), GuestAddress(7));
  EXPECT_GT(GuestAddress(UINT64_MAX), GuestAddress(0));
}

TEST(MemoryRange, ContainsChecksBothEndsWithoutOverflow) {
  const MemoryRange range{GuestAddress(0x1000), 0x1000};
  EXPECT_EQ(range.end(), 0x2000U);
  EXPECT_TRUE(range.contains(GuestAddress(0x1000), 0x1000));
  EXPECT_TRUE(range.contains(GuestAddress(0x1fff), 1));
  EXPECT_FALSE(range.contains(GuestAddress(0x1fff), 2));
  EXPECT_FALSE(range.contains(GuestAddress(0x0fff), 1));
  EXPECT_FALSE(range.contains(GuestAddress(0x2000), 1));
  EXPECT_FALSE(range.contains(GuestAddress(0x1000), 0x1001));
  EXPECT_FALSE(range.contains(GuestAddress(0x1800), UINT64_MAX));
  EXPECT_TRUE(range.contains(GuestAddress(0x2000), 0));  // empty access at the end
}

TEST(GuestMemoryCreate, RejectsInvalidRanges) {
  EXPECT_ERROR_CONTAINS(create({}), "at least one");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(0), 0}}), "empty");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(1), kPage}}), "page-aligned");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(0), kPage + 1}}), "page-aligned");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(0), 2 * kPage}, {GuestAddress(kPage), kPage}}), "overlaps");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(4 * kPage), kPage}, {GuestAddress(0), kPage}}), "out of order");
  EXPECT_ERROR_CONTAINS(create({{GuestAddress(0 - kPage), 2 * kPage}}), "overlaps or is out of order");
}

TEST(GuestMemoryCreate, AcceptsAdjacentRanges) {
  auto memory = create({{GuestAddress(0), kPage}, {GuestAddress(kPage), kPage}});
  ASSERT_TRUE(memory.has_value()) << memory.error().message;
  EXPECT_EQ(memory->regions().size(), 2U);
  EXPECT_EQ(memory->size(), 2 * kPage);
}

class SingleRegion : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kSize = kMiB;
  GuestMemory memory_ = test::make_memory(kSize);
};

TEST_F(SingleRegion, ReadsBackWhatWasWritten) {
  const auto data = test::pattern(64);
  ASSERT_TRUE(memory_.write(GuestAddress(0x1234), data).has_value());
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(0x1234), data.size()), data);

  ASSERT_TRUE(memory_.write_obj(GuestAddress(0x2000), std::uint64_t{0x0123456789abcdef}).has_value());
  EXPECT_EQ(memory_.read_obj<std::uint64_t>(GuestAddress(0x2000)).value(), 0x0123456789abcdefU);
  EXPECT_EQ(memory_.read_obj<std::uint8_t>(GuestAddress(0x2000)).value(), 0xefU);  // little-endian
}

TEST_F(SingleRegion, AccessesAtTheEdges) {
  EXPECT_TRUE(can_write(memory_, 0, 1));
  EXPECT_TRUE(can_write(memory_, kSize - 1, 1));
  EXPECT_TRUE(can_read(memory_, kSize - 8, 8));
  EXPECT_TRUE(can_read(memory_, 0, kSize));
  EXPECT_FALSE(can_read(memory_, kSize, 1));  // one byte past the end
  EXPECT_FALSE(can_write(memory_, kSize, 1));
  EXPECT_FALSE(can_read(memory_, kSize - 4, 8));  // straddles the end
  EXPECT_FALSE(can_read(memory_, 0, kSize + 1));
}

TEST_F(SingleRegion, ZeroLengthAccesses) {
  EXPECT_TRUE(can_read(memory_, 0, 0));
  EXPECT_TRUE(can_write(memory_, kSize, 0));  // empty range ending at the region's end
  EXPECT_FALSE(can_read(memory_, kSize + 1, 0));
  EXPECT_FALSE(can_write(memory_, UINT64_MAX, 0));
  auto empty = memory_.slice(GuestAddress(kSize), 0);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST_F(SingleRegion, AddressesNearTwoToTheSixtyFourDoNotWrap) {
  EXPECT_FALSE(can_read(memory_, UINT64_MAX, 1));
  EXPECT_FALSE(can_read(memory_, UINT64_MAX, 2));  // would wrap to address 0
  EXPECT_FALSE(can_write(memory_, UINT64_MAX - 7, 16));
  EXPECT_FALSE(memory_.contains(GuestAddress(16), UINT64_MAX));
  EXPECT_FALSE(memory_.contains(GuestAddress(UINT64_MAX - kSize + 1), kSize));
  EXPECT_FALSE(memory_.slice(GuestAddress(0), UINT64_MAX).has_value());
}

TEST_F(SingleRegion, FailedWriteChangesNothing) {
  test::fill(memory_, GuestAddress(kSize - 4), 4, 0x11);
  EXPECT_ERROR_CONTAINS(memory_.write(GuestAddress(kSize - 4), test::pattern(8)), "outside guest memory");
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(kSize - 4), 4), std::vector<std::byte>(4, std::byte{0x11}));
}

// Resident pages of a host range, by mincore().
std::size_t resident_pages(std::span<const std::byte> host) {
  const auto first = reinterpret_cast<std::uintptr_t>(host.data()) / kPage * kPage;
  const auto end = (reinterpret_cast<std::uintptr_t>(host.data()) + host.size() + kPage - 1) / kPage * kPage;
  std::vector<unsigned char> vec((end - first) / kPage);
  if (::mincore(reinterpret_cast<void*>(first), end - first, vec.data()) != 0) return 0;
  return static_cast<std::size_t>(std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
}

TEST_F(SingleRegion, PopulateBacksTheRangeWithoutChangingIt) {
  const auto host = memory_.slice(GuestAddress(0x10000), 16 * kPage).value();
  ASSERT_TRUE(memory_.populate(GuestAddress(0x10000 + 1), 16 * kPage - 2).has_value());  // rounds out to pages
  EXPECT_EQ(resident_pages(host), 16U);
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(0x10000), 16 * kPage),
            std::vector<std::byte>(16 * kPage, std::byte{0}));
  ASSERT_TRUE(memory_.write(GuestAddress(0x10000), test::pattern(64)).has_value());
  ASSERT_TRUE(memory_.populate(GuestAddress(0x10000), kPage).has_value());
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(0x10000), 64), test::pattern(64)) << "data is kept";
  EXPECT_TRUE(memory_.populate(GuestAddress(0x10000), 0).has_value());
}

TEST_F(SingleRegion, PopulateOutsideFails) {
  EXPECT_ERROR_CONTAINS(memory_.populate(GuestAddress(kSize - kPage), 2 * kPage), "outside guest memory");
}

TEST_F(SingleRegion, SliceIsAHostViewOfGuestMemory) {
  auto view = memory_.slice(GuestAddress(0x3000), 16);
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->size(), 16U);
  (*view)[5] = std::byte{0x77};
  EXPECT_EQ(memory_.read_obj<std::uint8_t>(GuestAddress(0x3005)).value(), 0x77U);
  EXPECT_EQ(memory_.regions()[0].mapping.data() + 0x3000, view->data());
}

TEST_F(SingleRegion, ReadObjOutsideFailsWithAddress) {
  auto value = memory_.read_obj<std::uint32_t>(GuestAddress(kSize - 2));
  ASSERT_FALSE(value.has_value());
  EXPECT_NE(value.error().message.find("0xffffe"), std::string::npos) << value.error().message;
}

TEST(GuestMemoryLayout, SmallGuestIsOneRegion) {
  const GuestMemory memory = test::make_memory(128 * kMiB);
  ASSERT_EQ(memory.regions().size(), 1U);
  EXPECT_EQ(memory.size(), 128 * kMiB);
  EXPECT_EQ(memory.end_below_4g(), GuestAddress(128 * kMiB));
}

TEST(GuestMemoryLayout, FourGiBSplitsAtTheMmioHole) {
  const GuestMemory memory = test::make_memory(4 * kGiB);
  ASSERT_EQ(memory.regions().size(), 2U);
  EXPECT_EQ(memory.regions()[0].range.start, GuestAddress(0));
  EXPECT_EQ(memory.regions()[0].range.size, 3 * kGiB);
  EXPECT_EQ(memory.regions()[1].range.start, GuestAddress(4 * kGiB));
  EXPECT_EQ(memory.regions()[1].range.size, kGiB);
  EXPECT_EQ(memory.size(), 4 * kGiB);
  EXPECT_EQ(memory.end_below_4g(), boot::layout::kMmioHoleStart);

  EXPECT_TRUE(can_write(memory, 3 * kGiB - 1, 1));
  EXPECT_FALSE(can_read(memory, 3 * kGiB, 1));  // the MMIO hole is not RAM
  EXPECT_FALSE(can_read(memory, 4 * kGiB - 1, 1));
  EXPECT_FALSE(can_read(memory, 3 * kGiB - 1, 2));  // runs from RAM into the hole
  EXPECT_FALSE(can_read(memory, 4 * kGiB - 1, 2));  // runs from the hole into RAM
  EXPECT_TRUE(can_write(memory, 4 * kGiB, 1));
  EXPECT_TRUE(can_write(memory, 5 * kGiB - 1, 1));
  EXPECT_FALSE(can_read(memory, 5 * kGiB, 1));
}

TEST(GuestMemoryLayout, RegionsAreIndependentStorage) {
  const GuestMemory memory = test::make_memory(3 * kGiB + 2 * kMiB);
  ASSERT_EQ(memory.regions().size(), 2U);
  ASSERT_TRUE(memory.write_obj(GuestAddress(0x1000), std::uint32_t{0xaaaaaaaa}).has_value());
  ASSERT_TRUE(memory.write_obj(GuestAddress(4 * kGiB + 0x1000), std::uint32_t{0xbbbbbbbb}).has_value());
  EXPECT_EQ(memory.read_obj<std::uint32_t>(GuestAddress(0x1000)).value(), 0xaaaaaaaaU);
  EXPECT_EQ(memory.read_obj<std::uint32_t>(GuestAddress(4 * kGiB + 0x1000)).value(), 0xbbbbbbbbU);
  EXPECT_EQ(memory.regions()[1].range.size, 2 * kMiB);
}

TEST(GuestMemoryLayout, SliceAcrossARegionBoundaryFails) {
  // Two regions that touch: every byte exists, but no single host view covers both.
  auto memory = create({{GuestAddress(0), kMiB}, {GuestAddress(kMiB), kMiB}});
  ASSERT_TRUE(memory.has_value());
  EXPECT_TRUE(memory->contains(GuestAddress(kMiB - 4), 4));
  EXPECT_TRUE(memory->contains(GuestAddress(kMiB), 4));
  EXPECT_FALSE(memory->contains(GuestAddress(kMiB - 4), 8));
  EXPECT_ERROR_CONTAINS(memory->slice(GuestAddress(kMiB - 4), 8), "outside guest memory");
  EXPECT_FALSE(can_write(*memory, kMiB - 4, 8));
}

TEST(GuestMemoryLayout, EndBelow4gCases) {
  auto exactly_3g = test::make_memory(3 * kGiB);
  EXPECT_EQ(exactly_3g.regions().size(), 1U);
  EXPECT_EQ(exactly_3g.end_below_4g(), GuestAddress(3 * kGiB));

  auto straddling = create({{GuestAddress(0), kMiB}, {GuestAddress(4 * kGiB - kMiB), 2 * kMiB}});
  ASSERT_TRUE(straddling.has_value());
  EXPECT_EQ(straddling->end_below_4g(), GuestAddress(4 * kGiB));  // clamped at 4 GiB

  auto only_high = create({{GuestAddress(4 * kGiB), kMiB}});
  ASSERT_TRUE(only_high.has_value());
  EXPECT_EQ(only_high->end_below_4g(), GuestAddress(0));

  auto low_and_high = create({{GuestAddress(0), kMiB}, {GuestAddress(2 * kMiB), kMiB}, {GuestAddress(8 * kGiB), kMiB}});
  ASSERT_TRUE(low_and_high.has_value());
  EXPECT_EQ(low_and_high->end_below_4g(), GuestAddress(3 * kMiB));
}

TEST(GuestMemoryLayout, FreshMemoryIsZero) {
  const GuestMemory memory = test::make_memory(2 * kMiB);
  EXPECT_EQ(test::guest_bytes(memory, GuestAddress(kMiB), 4096), std::vector<std::byte>(4096));
}

}  // namespace
}  // namespace microvm
