// build_e820: conventional RAM up to the EBDA, the reserved ACPI area, and RAM from 1 MiB on,
// split around the 32-bit MMIO hole.
#include "boot/x86_64/e820.h"

#include <gtest/gtest.h>

#include "boot/layout.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::kGiB;
using test::kMiB;

// E820Entry (boot_e820_entry, <asm/bootparam.h>) is packed: `+field` compares a copy, because EXPECT_EQ would bind
// a reference to a misaligned member (undefined behaviour; UBSan aborts).
struct Expected {
  std::uint64_t addr;
  std::uint64_t size;
  std::uint32_t type;
};

void expect_map(const std::vector<E820Entry>& map, const std::vector<Expected>& expected) {
  ASSERT_EQ(map.size(), expected.size());
  for (std::size_t i = 0; i < map.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(+map[i].addr, expected[i].addr);
    EXPECT_EQ(+map[i].size, expected[i].size);
    EXPECT_EQ(+map[i].type, expected[i].type);
  }
}

void expect_sorted_and_disjoint(const std::vector<E820Entry>& map) {
  for (std::size_t i = 1; i < map.size(); ++i) EXPECT_LE(map[i - 1].addr + map[i - 1].size, +map[i].addr) << i;
}

TEST(E820, Guest128MiB) {
  const auto map = build_e820(test::make_memory(128 * kMiB));
  expect_map(map, {{0, 0x9fc00, kE820Ram}, {0xe0000, 0x20000, kE820Reserved}, {0x100000, 127 * kMiB, kE820Ram}});
  expect_sorted_and_disjoint(map);
}

TEST(E820, Guest4GiBSkipsTheMmioHole) {
  const auto map = build_e820(test::make_memory(4 * kGiB));
  expect_map(map, {{0, 0x9fc00, kE820Ram},
                   {0xe0000, 0x20000, kE820Reserved},
                   {0x100000, 3 * kGiB - kMiB, kE820Ram},
                   {4 * kGiB, kGiB, kE820Ram}});
  expect_sorted_and_disjoint(map);
}

TEST(E820, RamTotalsMemoryMinusTheLegacyArea) {
  const GuestMemory memory = test::make_memory(3 * kGiB + 512 * kMiB);
  std::uint64_t ram = 0;
  for (const E820Entry& e : build_e820(memory)) {
    if (e.type == kE820Ram) ram += e.size;
  }
  EXPECT_EQ(ram, memory.size() - (layout::kHighMemory.value - layout::kEbda.value));
}

TEST(E820, AcpiTablesAreInTheReservedArea) {
  const auto map = build_e820(test::make_memory(64 * kMiB));
  ASSERT_GE(map.size(), 2U);
  EXPECT_EQ(+map[1].type, kE820Reserved);
  EXPECT_LE(+map[1].addr, layout::kAcpiTables.value);
  EXPECT_GE(map[1].addr + map[1].size, layout::kAcpiTables.value + layout::kAcpiReserved);
}

}  // namespace
}  // namespace microvm::boot
