// ExitStats: I/O and MMIO exits counted by port/address, sorted most first, capped against a guest
// that touches many addresses, and merged over vCPUs.
#include "vmm/exit_stats.h"

#include <gtest/gtest.h>

#include <array>

namespace microvm::vmm {
namespace {

constexpr std::size_t kIoIn = 0;
constexpr std::size_t kIoOut = 1;
constexpr std::size_t kMmioRead = 2;
static_assert(std::is_same_v<std::variant_alternative_t<kIoIn, VcpuExit>, exit::IoIn>);
static_assert(std::is_same_v<std::variant_alternative_t<kIoOut, VcpuExit>, exit::IoOut>);
static_assert(std::is_same_v<std::variant_alternative_t<kMmioRead, VcpuExit>, exit::MmioRead>);

VcpuExit io_out(std::uint16_t port) {
  return exit::IoOut{port, {}, 1};
}
VcpuExit io_in(std::uint16_t port) {
  return exit::IoIn{port, {}, 1};
}
VcpuExit mmio_read(std::uint64_t address) {
  return exit::MmioRead{address, {}};
}

TEST(ExitStats, CountsByKindAndAddressMostFirst) {
  ExitStats stats;
  for (int i = 0; i < 3; ++i) stats.record(io_out(0x3f8));
  stats.record(io_in(0x3fd));
  stats.record(io_in(0x3fd));
  stats.record(mmio_read(0xc0000000));
  stats.record(exit::Hlt{});  // no address: not counted here
  const ExitStats::Snapshot s = stats.snapshot();
  ASSERT_EQ(s.entries.size(), 3U);
  EXPECT_EQ(s.entries[0], (ExitStats::Entry{kIoOut, 0x3f8, 3}));
  EXPECT_EQ(s.entries[1], (ExitStats::Entry{kIoIn, 0x3fd, 2}));
  EXPECT_EQ(s.entries[2], (ExitStats::Entry{kMmioRead, 0xc0000000, 1}));
  EXPECT_EQ(s.other, 0U);
}

TEST(ExitStats, SamePortDifferentDirectionIsTwoKeys) {
  ExitStats stats;
  stats.record(io_in(0x60));
  stats.record(io_out(0x60));
  EXPECT_EQ(stats.snapshot().entries.size(), 2U);
}

TEST(ExitStats, CapsDistinctAddressesAndCountsTheRestAsOther) {
  ExitStats stats;
  for (std::uint64_t a = 0; a < ExitStats::kMaxKeys + 10; ++a) stats.record(mmio_read(0x1000 * a));
  stats.record(mmio_read(0));  // a key already in the table still counts there
  const ExitStats::Snapshot s = stats.snapshot();
  EXPECT_EQ(s.entries.size(), ExitStats::kMaxKeys);
  EXPECT_EQ(s.other, 10U);
  EXPECT_EQ(s.entries[0], (ExitStats::Entry{kMmioRead, 0, 2}));
}

TEST(ExitStats, MergeAddsVcpusAndKeepsTheCap) {
  ExitStats a;
  ExitStats b;
  a.record(io_out(0x3f8));
  b.record(io_out(0x3f8));
  b.record(io_out(0x5a0));
  const std::array parts{a.snapshot(), b.snapshot()};
  const ExitStats::Snapshot merged = ExitStats::merge(parts);
  ASSERT_EQ(merged.entries.size(), 2U);
  EXPECT_EQ(merged.entries[0], (ExitStats::Entry{kIoOut, 0x3f8, 2}));
  EXPECT_EQ(merged.entries[1], (ExitStats::Entry{kIoOut, 0x5a0, 1}));

  ExitStats full;
  for (std::uint64_t p = 0; p < ExitStats::kMaxKeys; ++p) full.record(io_in(static_cast<std::uint16_t>(p)));
  ExitStats extra;
  extra.record(io_out(0x1234));
  const std::array capped{full.snapshot(), extra.snapshot()};
  const ExitStats::Snapshot m = ExitStats::merge(capped);
  EXPECT_EQ(m.entries.size(), ExitStats::kMaxKeys);
  EXPECT_EQ(m.other, 1U);
}

}  // namespace
}  // namespace microvm::vmm
