// Identity page tables for the 64-bit entry: walking them like the MMU does must map every
// 2 MiB page of [0, 4 GiB) to itself, present and writable, and nothing above.
#include "boot/x86_64/page_tables.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>

#include "boot/layout.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::kGiB;
using test::kMiB;

constexpr std::uint64_t kAddressMask = 0x000ffffffffff000ULL;
constexpr std::uint64_t kLargePageMask = 0x000fffffffe00000ULL;
constexpr std::uint64_t kTableFlags = kPtePresent | kPteWritable;

std::uint64_t entry(const GuestMemory& memory, std::uint64_t table, std::uint64_t index) {
  return test::guest_obj<std::uint64_t>(memory, GuestAddress(table + index * 8));
}

// 4-level walk ending in a 2 MiB page; nothing when a level is not present or not as expected.
std::optional<std::uint64_t> translate(const GuestMemory& memory, std::uint64_t cr3, std::uint64_t va) {
  const std::uint64_t pml4e = entry(memory, cr3 & kAddressMask, (va >> 39) & 0x1ff);
  if ((pml4e & kTableFlags) != kTableFlags) return std::nullopt;
  const std::uint64_t pdpte = entry(memory, pml4e & kAddressMask, (va >> 30) & 0x1ff);
  if ((pdpte & kTableFlags) != kTableFlags || (pdpte & kPteHuge) != 0) return std::nullopt;
  const std::uint64_t pde = entry(memory, pdpte & kAddressMask, (va >> 21) & 0x1ff);
  if ((pde & (kTableFlags | kPteHuge)) != (kTableFlags | kPteHuge)) return std::nullopt;
  return (pde & kLargePageMask) | (va & (kHugePageSize - 1));
}

class PageTables : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fill(memory_, layout::kPml4, 0x6000, 0xff);  // stale garbage must be overwritten
    auto result = write_identity_page_tables(memory_);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    cr3_ = *result;
  }

  GuestMemory memory_ = test::make_memory(16 * kMiB);
  std::uint64_t cr3_ = 0;
};

TEST_F(PageTables, Cr3IsThePml4) {
  EXPECT_EQ(cr3_, layout::kPml4.value);
}

TEST_F(PageTables, Pml4HasOnlyTheFirstEntry) {
  EXPECT_EQ(entry(memory_, layout::kPml4.value, 0), layout::kPdpt.value | kTableFlags);
  for (std::uint64_t i = 1; i < kEntriesPerTable; ++i) ASSERT_EQ(entry(memory_, layout::kPml4.value, i), 0U) << i;
}

TEST_F(PageTables, PdptPointsAtFourPageDirectories) {
  for (std::uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(entry(memory_, layout::kPdpt.value, i), (layout::kPageDirectories.value + i * 4096) | kTableFlags);
  }
  for (std::uint64_t i = 4; i < kEntriesPerTable; ++i) ASSERT_EQ(entry(memory_, layout::kPdpt.value, i), 0U) << i;
}

TEST_F(PageTables, EveryLargePageBelow4GiBIsIdentityMapped) {
  for (std::uint64_t pd = 0; pd < 4; ++pd) {
    for (std::uint64_t i = 0; i < kEntriesPerTable; ++i) {
      const std::uint64_t phys = (pd * kEntriesPerTable + i) * kHugePageSize;
      ASSERT_EQ(entry(memory_, layout::kPageDirectories.value + pd * 4096, i),
                phys | kPtePresent | kPteWritable | kPteHuge)
          << "PD " << pd << " entry " << i;
    }
  }
}

TEST_F(PageTables, WalkTranslatesAddressesToThemselves) {
  for (std::uint64_t va :
       std::initializer_list<std::uint64_t>{0, 0x7000, 0x100200, 0x1234567, 3 * kGiB - 1, 3 * kGiB, 4 * kGiB - 1}) {
    EXPECT_EQ(translate(memory_, cr3_, va), va) << std::hex << va;
  }
  EXPECT_EQ(translate(memory_, cr3_, 4 * kGiB), std::nullopt);
  EXPECT_EQ(translate(memory_, cr3_, 1ULL << 39), std::nullopt);
}

TEST(PageTablesMemory, FailsWithoutRoomForTheTables) {
  auto memory = GuestMemory::create(std::vector<MemoryRange>{{GuestAddress(0), 0xa000}});  // no room for the PDs
  ASSERT_TRUE(memory.has_value());
  EXPECT_ERROR_CONTAINS(write_identity_page_tables(*memory), "outside guest memory");
}

}  // namespace
}  // namespace microvm::boot
