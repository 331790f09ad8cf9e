// CPUID for one vCPU: KVM's supported set with this vCPU's APIC ID and a sane topology
// (one socket, N cores, one thread per core), plus the hypervisor bit.
// Leaf meanings: Intel SDM vol. 2A "CPUID"; AMD APM vol. 3 appendix E.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace microvm::vmm {

struct CpuidOptions {
  unsigned vcpu_index = 0;
  unsigned vcpu_count = 1;
  // KVM emulates the TSC-deadline LAPIC timer but leaves it out of KVM_GET_SUPPORTED_CPUID; the VMM
  // sets it when KVM_CAP_TSC_DEADLINE_TIMER is present (api.rst 4.46). Linux then skips calibrating
  // the LAPIC timer.
  bool tsc_deadline_timer = false;
};

[[nodiscard]] std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> supported,
                                                       const CpuidOptions& options);

}  // namespace microvm::vmm
