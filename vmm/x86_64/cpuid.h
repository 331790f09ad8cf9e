// CPUID for one vCPU: KVM's supported set with this vCPU's APIC ID and a sane topology
// (one socket, N cores, one thread per core), plus the hypervisor bit.
// Leaf meanings: Intel SDM vol. 2A "CPUID"; AMD APM vol. 3 appendix E.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace microvm::vmm {

[[nodiscard]] std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> supported, unsigned vcpu_index,
                                                       unsigned vcpu_count);

}  // namespace microvm::vmm
