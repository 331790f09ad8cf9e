// Puts a vCPU in the state Linux's 64-bit entry expects (Documentation/x86/boot.rst "64-bit Boot
// Protocol"): long mode, identity paging, flat segments, %rsi = boot_params. Also the per-vCPU
// platform state every vCPU needs: CPUID, boot MSRs, FPU, and the LAPIC's LINT0/LINT1 wiring.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "boot/linux_boot.h"
#include "vmm/kvm.h"

namespace microvm::vmm {

// For every vCPU: CPUID (with the TSC frequency in the timing leaf), MSRs, FPU, LAPIC LINT0 =
// ExtINT, LINT1 = NMI.
[[nodiscard]] Result<void> setup_vcpu_platform(const Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& supported,
                                               unsigned vcpu_count, bool tsc_deadline_timer);
// For the boot vCPU only (the others wait for INIT/SIPI from Linux): registers and segments.
[[nodiscard]] Result<void> setup_boot_registers(const Vcpu& vcpu, const boot::BootCpuState& state);

// Exposed for tests: KVM's segment form of a decoded descriptor.
[[nodiscard]] kvm_segment to_kvm_segment(const boot::Segment& segment);

}  // namespace microvm::vmm
