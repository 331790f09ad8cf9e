// vcpu_cpuid: per-vCPU APIC ID and a one-socket, N-core, one-thread-per-core topology written
// over synthetic "KVM supported" entries, for Intel and AMD vendors. No /dev/kvm needed.
#include "vmm/x86_64/cpuid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace microvm::vmm {
namespace {

constexpr std::uint32_t kHypervisorBit = 1U << 31;
constexpr std::uint32_t kHttBit = 1U << 28;
constexpr std::uint32_t kTscDeadlineBit = 1U << 24;

kvm_cpuid_entry2 leaf(std::uint32_t function, std::uint32_t index, std::uint32_t eax, std::uint32_t ebx,
                      std::uint32_t ecx, std::uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

kvm_cpuid_entry2 vendor_leaf(std::string_view vendor) {
  kvm_cpuid_entry2 e = leaf(0, 0, 0x1f, 0, 0, 0);
  std::memcpy(&e.ebx, vendor.data(), 4);
  std::memcpy(&e.edx, vendor.data() + 4, 4);
  std::memcpy(&e.ecx, vendor.data() + 8, 4);
  return e;
}

// What KVM might report (leaf 1 ECX without TSC-deadline, as KVM leaves it out): values in the fields vcpu_cpuid must
// keep, stale topology in the rest.
std::vector<kvm_cpuid_entry2> supported(std::string_view vendor) {
  return {
      vendor_leaf(vendor),
      leaf(0x1, 0, 0x000806ec, 0xff0b0800, 0x7efafbbf, 0xbfebfbff),  // EBX: stale APIC ID 0xff, 11 CPUs
      leaf(0x4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0),                 // L1d
      leaf(0x4, 3, 0x3c07c163, 0x03c0003f, 0x2fff, 6),               // L3
      leaf(0xb, 0, 7, 7, 7, 7),
      leaf(0xb, 1, 7, 7, 7, 7),
      leaf(0xb, 2, 7, 7, 7, 7),
      leaf(0x7, 0, 0, 0x029c6fbf, 0, 0),
      leaf(0x80000008, 0, 0x3027, 0, 0xabcd7007, 0),
      leaf(0x8000001e, 0, 9, 0x0109, 0x0102, 0),
  };
}

// A copy, so callers may pass a temporary vector.
kvm_cpuid_entry2 find(const std::vector<kvm_cpuid_entry2>& entries, std::uint32_t function, std::uint32_t index = 0) {
  for (const auto& e : entries) {
    if (e.function == function && e.index == index) return e;
  }
  ADD_FAILURE() << "no leaf " << std::hex << function << "." << index;
  return {};
}

struct Topology {
  unsigned index;
  unsigned count;
};

class CpuidTopology : public ::testing::TestWithParam<Topology> {
 protected:
  std::vector<kvm_cpuid_entry2> run(std::string_view vendor) const {
    return vcpu_cpuid(supported(vendor), {.vcpu_index = index(), .vcpu_count = count()});
  }
  unsigned index() const { return GetParam().index; }
  unsigned count() const { return GetParam().count; }
  // Bits needed for a core ID (x2APIC ID shift at the core level).
  unsigned core_bits() const {
    unsigned bits = 0;
    while ((1U << bits) < count()) ++bits;
    return bits;
  }
};

TEST_P(CpuidTopology, Leaf1CarriesApicIdCountAndHypervisorBit) {
  const kvm_cpuid_entry2 l1 = find(run("GenuineIntel"), 0x1);
  EXPECT_EQ(l1.ebx >> 24, index());
  EXPECT_EQ((l1.ebx >> 16) & 0xff, count());
  EXPECT_EQ(l1.ebx & 0xffff, 0x0800U);  // brand index and CLFLUSH size are kept
  EXPECT_EQ(l1.ecx & kHypervisorBit, kHypervisorBit);
  EXPECT_EQ(l1.ecx & ~kHypervisorBit, 0x7efafbbfU);
  EXPECT_EQ((l1.edx & kHttBit) != 0, count() > 1);
  EXPECT_EQ(l1.eax, 0x000806ecU);
}

TEST_P(CpuidTopology, Leaf0xbDescribesThreadAndCoreLevels) {
  const auto entries = run("GenuineIntel");
  const kvm_cpuid_entry2 smt = find(entries, 0xb, 0);
  EXPECT_EQ(smt.eax, 0U);
  EXPECT_EQ(smt.ebx, 1U);
  EXPECT_EQ(smt.ecx, 0x100U);  // level type 1 (SMT), level 0
  EXPECT_EQ(smt.edx, index());

  const kvm_cpuid_entry2 core = find(entries, 0xb, 1);
  EXPECT_EQ(core.eax, core_bits());
  EXPECT_EQ(core.ebx, count());
  EXPECT_EQ(core.ecx, 0x201U);  // level type 2 (core), level 1
  EXPECT_EQ(core.edx, index());

  const kvm_cpuid_entry2 end = find(entries, 0xb, 2);
  EXPECT_EQ(end.ebx, 0U);
  EXPECT_EQ(end.ecx, 2U);  // level type 0: invalid, ends the enumeration
  EXPECT_EQ(end.edx, index());
}

TEST_P(CpuidTopology, Leaf4CountsCoresAndSharing) {
  const auto entries = run("GenuineIntel");
  const kvm_cpuid_entry2 l1d = find(entries, 0x4, 0);
  EXPECT_EQ(l1d.eax >> 26, count() - 1);
  EXPECT_EQ((l1d.eax >> 14) & 0xfff, 0U);  // private per core
  EXPECT_EQ(l1d.eax & 0x3fff, 0x0121U);
  EXPECT_EQ(l1d.ebx, 0x01c0003fU);
  const kvm_cpuid_entry2 l3 = find(entries, 0x4, 3);
  EXPECT_EQ((l3.eax >> 14) & 0xfff, count() - 1);  // shared by all vCPUs
  EXPECT_EQ(l3.eax & 0x3fff, 0x0163U);
}

TEST_P(CpuidTopology, AmdSizeIdentifiersReportCoreCount) {
  const kvm_cpuid_entry2 l = find(run("AuthenticAMD"), 0x80000008);
  EXPECT_EQ(l.ecx & 0xff, count() - 1);
  EXPECT_EQ((l.ecx >> 12) & 0xf, core_bits());
  EXPECT_EQ(l.ecx & ~0xf0ffU, 0xabcd0000U);  // other fields kept
  EXPECT_EQ(l.eax, 0x3027U);
}

TEST_P(CpuidTopology, AmdExtendedTopology) {
  const kvm_cpuid_entry2 l = find(run("AuthenticAMD"), 0x8000001e);
  EXPECT_EQ(l.eax, index());
  EXPECT_EQ(l.ebx, index());  // core ID, one thread per core
  EXPECT_EQ(l.ecx, 0U);
}

TEST_P(CpuidTopology, HygonIsTreatedAsAmd) {
  EXPECT_EQ(find(run("HygonGenuine"), 0x80000008).ecx & 0xff, count() - 1);
}

TEST_P(CpuidTopology, IntelLeavesAmdTopologyAlone) {
  const auto entries = run("GenuineIntel");
  EXPECT_EQ(find(entries, 0x80000008).ecx, 0xabcd7007U);
  EXPECT_EQ(find(entries, 0x8000001e).eax, 9U);
  EXPECT_EQ(find(entries, 0x8000001e).ebx, 0x0109U);
}

TEST_P(CpuidTopology, OtherLeavesAndOrderAreUnchanged) {
  const auto before = supported("AuthenticAMD");
  const auto after = run("AuthenticAMD");
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].function, before[i].function);
    EXPECT_EQ(after[i].index, before[i].index);
  }
  for (std::uint32_t function : {0x0U, 0x7U}) {
    const kvm_cpuid_entry2 a = find(after, function);
    const kvm_cpuid_entry2 b = find(before, function);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(kvm_cpuid_entry2)), 0) << "leaf " << function;
  }
}

INSTANTIATE_TEST_SUITE_P(Vcpus, CpuidTopology,
                         ::testing::Values(Topology{0, 1}, Topology{1, 2}, Topology{3, 4}, Topology{4, 5},
                                           Topology{31, 32}),
                         [](const ::testing::TestParamInfo<Topology>& param) {
                           return "cpu" + std::to_string(param.param.index) + "of" + std::to_string(param.param.count);
                         });

TEST(Cpuid, SingleVcpuClearsHtt) {
  const auto entries = vcpu_cpuid(supported("GenuineIntel"), {.vcpu_index = 0, .vcpu_count = 1});
  EXPECT_EQ(find(entries, 0x1).edx & kHttBit, 0U);
  EXPECT_EQ(find(entries, 0xb, 1).eax, 0U);
}

TEST(Cpuid, EmptyInputGivesEmptyOutput) {
  EXPECT_TRUE(vcpu_cpuid({}, {}).empty());
}

TEST(Cpuid, TscDeadlineTimerOnlyWhenRequested) {
  EXPECT_EQ(find(vcpu_cpuid(supported("GenuineIntel"), {}), 0x1).ecx & kTscDeadlineBit, 0U);
  const CpuidOptions with_timer{.vcpu_index = 1, .vcpu_count = 2, .tsc_deadline_timer = true};
  const kvm_cpuid_entry2 l1 = find(vcpu_cpuid(supported("AuthenticAMD"), with_timer), 0x1);
  EXPECT_EQ(l1.ecx & kTscDeadlineBit, kTscDeadlineBit);
  EXPECT_EQ(l1.ecx & ~(kTscDeadlineBit | kHypervisorBit), 0x7efafbbfU);  // nothing else changes
}

TEST(Cpuid, DefaultOptionsAreOneVcpu) {
  const kvm_cpuid_entry2 l1 = find(vcpu_cpuid(supported("GenuineIntel"), {}), 0x1);
  EXPECT_EQ(l1.ebx >> 16, 0x0001U);  // APIC ID 0, one logical processor
}

// KVM's signature leaf as KVM_GET_SUPPORTED_CPUID reports it: "KVMKVMKVM\0\0\0", highest leaf 0x40000001.
std::vector<kvm_cpuid_entry2> with_kvm_leaves(std::vector<kvm_cpuid_entry2> entries) {
  entries.push_back(leaf(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d));
  entries.push_back(leaf(0x40000001, 0, 0x01007afb, 0, 0, 0));
  return entries;
}

TEST(Cpuid, TimingLeafCarriesTscAndLapicTimerFrequencies) {
  const auto entries =
      vcpu_cpuid(with_kvm_leaves(supported("AuthenticAMD")), {.vcpu_index = 0, .vcpu_count = 1, .tsc_khz = 2'994'374});
  const kvm_cpuid_entry2 timing = find(entries, 0x40000010);
  EXPECT_EQ(timing.eax, 2'994'374U);  // TSC, kHz
  EXPECT_EQ(timing.ebx, 1'000'000U);  // KVM's LAPIC timer: 1 GHz
  EXPECT_EQ(timing.ecx, 0U);
  EXPECT_EQ(timing.edx, 0U);
  const kvm_cpuid_entry2 base = find(entries, 0x40000000);
  EXPECT_EQ(base.eax, 0x40000010U) << "the highest hypervisor leaf now covers the timing leaf";
  EXPECT_EQ(base.ebx, 0x4b4d564bU) << "the KVM signature is kept";
  EXPECT_EQ(find(entries, 0x40000001).eax, 0x01007afbU) << "KVM's feature leaf is kept";
}

TEST(Cpuid, NoTimingLeafWithoutAFrequencyOrAKvmSignature) {
  const auto unknown = vcpu_cpuid(with_kvm_leaves(supported("GenuineIntel")), {});
  EXPECT_EQ(find(unknown, 0x40000000).eax, 0x40000001U);
  EXPECT_TRUE(std::ranges::none_of(unknown, [](const auto& e) { return e.function == 0x40000010; }));
  const auto no_base = vcpu_cpuid(supported("GenuineIntel"), {.tsc_khz = 1'000'000});
  EXPECT_TRUE(std::ranges::none_of(no_base, [](const auto& e) { return e.function == 0x40000010; }));
}

TEST(Cpuid, TimingLeafReplacesOneKvmAlreadyListed) {
  auto input = with_kvm_leaves(supported("GenuineIntel"));
  input.push_back(leaf(0x40000010, 0, 1, 2, 3, 4));
  const auto entries = vcpu_cpuid(input, {.tsc_khz = 3'000'000});
  EXPECT_EQ(std::ranges::count_if(entries, [](const auto& e) { return e.function == 0x40000010; }), 1);
  EXPECT_EQ(find(entries, 0x40000010).eax, 3'000'000U);
}

}  // namespace
}  // namespace microvm::vmm
