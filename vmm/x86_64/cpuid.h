// CPUID for one vCPU: KVM's supported set with this vCPU's APIC ID and a sane topology
// (one socket, N cores, one thread per core), plus the hypervisor bit.
// Leaf meanings: Intel SDM vol. 2A "CPUID"; AMD APM vol. 3 appendix E.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace microvm::vmm {

struct CpuidOptions {
  unsigned vcpu_index = 0;
  unsigned vcpu_count = 1;
  // KVM emulates the TSC-deadline LAPIC timer but leaves it out of KVM_GET_SUPPORTED_CPUID; the VMM
  // sets it when KVM_CAP_TSC_DEADLINE_TIMER is present (api.rst 4.46). Linux then skips calibrating
  // the LAPIC timer.
  bool tsc_deadline_timer = false;
  // The guest's TSC frequency (KVM_GET_TSC_KHZ), published in the timing leaf 0x40000010 (below);
  // 0: unknown, the leaf is left out.
  std::uint32_t tsc_khz = 0;
};

// The hypervisor timing leaf (0x40000010, first defined by VMware and since offered by KVM hosts:
// QEMU's vmware-cpuid-freq, Cloud Hypervisor): EAX = TSC frequency in kHz, EBX = the local APIC
// timer's (bus) frequency in kHz. KVM's emulated LAPIC timer counts at 1 GHz (one tick per ns).
// The KVM signature leaf 0x40000000 reports its highest leaf in EAX, raised to cover this one.
inline constexpr std::uint32_t kLeafHypervisorBase = 0x40000000;
inline constexpr std::uint32_t kLeafHypervisorTiming = 0x40000010;
inline constexpr std::uint32_t kKvmLapicTimerKhz = 1'000'000;

[[nodiscard]] std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> supported,
                                                       const CpuidOptions& options);

}  // namespace microvm::vmm
