// The vCPU and VM state a snapshot saves (vmm/x86_64/vcpu_state.h), without KVM: which MSRs are
// kept (the KVM paravirtual ones included, IA32_MCG_CTL not), the TSC-scaling tolerance, and the
// encoding: a round trip keeps every byte, and a state whose counts or sizes do not fit is refused.
#include "vmm/x86_64/vcpu_state.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/test_support.h"

namespace microvm::vmm {
namespace {

template <typename T>
void scribble(T& value, std::uint8_t seed) {
  auto* bytes = reinterpret_cast<std::uint8_t*>(&value);
  for (std::size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<std::uint8_t>(i * 13 + seed);
}

template <typename T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

VcpuState sample_vcpu(std::size_t xsave_size) {
  VcpuState s;
  s.cpuid.resize(3);
  for (std::size_t i = 0; i < s.cpuid.size(); ++i) scribble(s.cpuid[i], static_cast<std::uint8_t>(i));
  scribble(s.mp_state, 1);
  scribble(s.regs, 2);
  scribble(s.sregs, 3);
  s.xsave = test::pattern(xsave_size, 4);
  scribble(s.xcrs, 5);
  s.xcrs.nr_xcrs = 1;
  scribble(s.debug_regs, 6);
  scribble(s.lapic, 7);
  s.msrs = {
      {kMsrIa32Tsc, 0, 12345}, {0xc0000080, 0, 0xd01}, {kMsrKvmFirst + 1, 0, 0x7ffff000}, {kMsrIa32TscDeadline, 0, 9}};
  scribble(s.events, 8);
  s.tsc_khz = 2'100'000;
  return s;
}

std::vector<std::byte> encoded(const VcpuState& state) {
  snapshot::Encoder out;
  encode(out, state);
  return out.take();
}

TEST(VcpuState, KeepsTheArchitecturalAndParavirtualMsrs) {
  for (std::uint32_t msr : {0x10u, 0x1bu, 0x174u, 0x277u, 0x2ffu, 0x6e0u, 0x808u, 0xc0000080u, 0xc0000102u, 0x4b564d00u,
                            0x4b564d01u, 0x4b564d02u, 0x4b564d03u, 0x4b564d04u}) {
    EXPECT_TRUE(msr_is_saved(msr)) << std::hex << msr;
  }
  for (std::uint32_t msr : {0x17bu /* IA32_MCG_CTL */, 0x11u /* old kvmclock */, 0x38fu /* perf global ctrl */,
                            0x480u /* VMX basic */, 0x40000000u /* Hyper-V */}) {
    EXPECT_FALSE(msr_is_saved(msr)) << std::hex << msr;
  }
  const std::uint32_t kvm_list[] = {0x10, 0x480, 0x4b564d01, 0x17b, 0x6e0};
  EXPECT_EQ(msrs_to_save(kvm_list), (std::vector<std::uint32_t>{0x10, 0x4b564d01, 0x6e0}));
}

TEST(VcpuState, TscScalingOnlyBeyondTheTolerance) {
  EXPECT_FALSE(tsc_scaling_needed(2'000'000, 2'000'000));
  EXPECT_FALSE(tsc_scaling_needed(2'000'000, 2'000'500));  // 250 ppm
  EXPECT_TRUE(tsc_scaling_needed(2'000'000, 2'000'501));
  EXPECT_TRUE(tsc_scaling_needed(2'000'000, 1'000'000));
  EXPECT_FALSE(tsc_scaling_needed(0, 2'000'000));  // unknown frequency: nothing to scale to
}

TEST(VcpuState, RoundTripKeepsEveryByte) {
  const VcpuState saved = sample_vcpu(4096 + 64);
  const std::vector<std::byte> bytes = encoded(saved);
  snapshot::Decoder in(bytes, "vcpu 0");
  auto got = decode_vcpu_state(in, 4096 + 64);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_TRUE(in.finish().has_value());
  ASSERT_EQ(got->cpuid.size(), 3u);
  EXPECT_TRUE(same_bytes(got->cpuid[2], saved.cpuid[2]));
  EXPECT_TRUE(same_bytes(got->mp_state, saved.mp_state));
  EXPECT_TRUE(same_bytes(got->regs, saved.regs));
  EXPECT_TRUE(same_bytes(got->sregs, saved.sregs));
  EXPECT_EQ(got->xsave, saved.xsave);
  EXPECT_TRUE(same_bytes(got->xcrs, saved.xcrs));
  EXPECT_TRUE(same_bytes(got->debug_regs, saved.debug_regs));
  EXPECT_TRUE(same_bytes(got->lapic, saved.lapic));
  ASSERT_EQ(got->msrs.size(), saved.msrs.size());
  EXPECT_EQ(got->msrs[2].index, kMsrKvmFirst + 1);
  EXPECT_EQ(got->msrs[2].data, 0x7ffff000u);
  EXPECT_TRUE(same_bytes(got->events, saved.events));
  EXPECT_EQ(got->tsc_khz, 2'100'000u);
}

TEST(VcpuState, RefusesAnXsaveAreaOfAnotherSize) {
  const std::vector<std::byte> bytes = encoded(sample_vcpu(4096));
  snapshot::Decoder in(bytes, "vcpu 0");
  EXPECT_ERROR_CONTAINS(decode_vcpu_state(in, 8192), "XSAVE area is 4096 bytes, this host's KVM uses 8192");
}

TEST(VcpuState, RefusesCountsAndMsrsThatDoNotFit) {
  {
    VcpuState state = sample_vcpu(4096);
    state.msrs.push_back({0x17b, 0, 0});  // IA32_MCG_CTL: never saved, so never restored
    const std::vector<std::byte> bytes = encoded(state);
    snapshot::Decoder in(bytes, "vcpu 1");
    EXPECT_ERROR_CONTAINS(decode_vcpu_state(in, 4096), "MSR 0x17b is not one a snapshot saves");
  }
  {
    VcpuState state = sample_vcpu(4096);
    state.xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
    const std::vector<std::byte> bytes = encoded(state);
    snapshot::Decoder in(bytes, "vcpu 1");
    EXPECT_ERROR_CONTAINS(decode_vcpu_state(in, 4096), "17 XCRs");
  }
  {
    snapshot::Encoder out;
    out.u32(kMaxSavedCpuidEntries + 1);
    const std::vector<std::byte> bytes = out.take();
    snapshot::Decoder in(bytes, "vcpu 1");
    EXPECT_ERROR_CONTAINS(decode_vcpu_state(in, 4096), "257 CPUID entries");
  }
  {
    // Cut anywhere, it is refused, never read past its end.
    const std::vector<std::byte> bytes = encoded(sample_vcpu(4096));
    for (std::size_t size = 0; size < bytes.size(); size += 97) {
      snapshot::Decoder in(std::span<const std::byte>(bytes).first(size), "vcpu 1");
      EXPECT_FALSE(decode_vcpu_state(in, 4096).has_value()) << size;
    }
  }
}

TEST(VmState, RoundTripAndChipIdsChecked) {
  VmState state;
  scribble(state.pit, 1);
  scribble(state.clock, 2);
  scribble(state.pic_master, 3);
  scribble(state.pic_slave, 4);
  scribble(state.ioapic, 5);
  state.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  state.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  state.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  snapshot::Encoder out;
  encode(out, state);
  std::vector<std::byte> bytes = out.take();
  {
    snapshot::Decoder in(bytes, "vm");
    auto got = decode_vm_state(in);
    ASSERT_TRUE(got.has_value()) << got.error().message;
    EXPECT_TRUE(same_bytes(got->pit, state.pit));
    EXPECT_TRUE(same_bytes(got->clock, state.clock));
    EXPECT_TRUE(same_bytes(got->ioapic, state.ioapic));
  }
  state.pic_slave.chip_id = KVM_IRQCHIP_IOAPIC;
  snapshot::Encoder swapped;
  encode(swapped, state);
  bytes = swapped.take();
  snapshot::Decoder in(bytes, "vm");
  EXPECT_ERROR_CONTAINS(decode_vm_state(in), "irqchip 2 where chip 1 belongs");
}

}  // namespace
TEST(VcpuState, TrGoesBackAvailableOnAmdOnlyAndNothingElseChanges) {
  kvm_sregs saved{};
  saved.tr.type = 11;  // busy, as KVM reports it
  saved.tr.base = 0xfffffe0000003000ULL;
  saved.tr.limit = 0x4087;
  saved.cr3 = 0x1234000;
  snapshot::CpuModel amd;
  std::memcpy(amd.vendor.data(), "AuthenticAMD", 12);
  snapshot::CpuModel intel;
  std::memcpy(intel.vendor.data(), "GenuineIntel", 12);
  const kvm_sregs on_amd = restorable_sregs(saved, amd);
  EXPECT_EQ(on_amd.tr.type, 9);
  EXPECT_EQ(on_amd.tr.base, saved.tr.base);
  EXPECT_EQ(on_amd.tr.limit, saved.tr.limit);
  EXPECT_EQ(on_amd.cr3, saved.cr3);
  EXPECT_EQ(restorable_sregs(saved, intel).tr.type, 11);
  saved.tr.type = 3;  // anything but a busy TSS stays as it is
  EXPECT_EQ(restorable_sregs(saved, amd).tr.type, 3);
}

}  // namespace microvm::vmm
