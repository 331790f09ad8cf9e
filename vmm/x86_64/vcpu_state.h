// What a snapshot saves of each vCPU and of the VM's in-kernel devices, read and written through
// KVM (api.rst), in the orders Firecracker's vstate code found KVM needs:
//   save: MP state first (KVM_GET_MP_STATE runs pending APIC events, which change the rest), then
//         registers, special registers, XSAVE, XCRs, debug registers, LAPIC, TSC frequency, CPUID,
//         MSRs, and the vCPU events last (the other GETs may still change them);
//   restore: CPUID (everything else is checked against it), MP state, registers, special registers
//         (which set the APIC base, so before the LAPIC; SET_REGS clears pending exceptions, so
//         before the events), XSAVE, XCRs, debug registers, LAPIC (before the MSRs: the TSC-deadline
//         MSR only takes with the LAPIC set up), MSRs (IA32_TSC_DEADLINE after IA32_TSC, or a timer
//         is lost), vCPU events, then KVM_KVMCLOCK_CTRL.
//   VM: PIT, kvmclock and the three irqchips (PIC master, PIC slave, IOAPIC), restored after the vCPUs.
// Every vCPU must be outside KVM_RUN (VcpuSet parked) while its state is read or written.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/snapshot/codec.h"
#include "vmm/snapshot/x86_64/cpu_model.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

namespace microvm::vmm {

inline constexpr std::uint32_t kMsrIa32Tsc = 0x10;
inline constexpr std::uint32_t kMsrIa32TscDeadline = 0x6e0;
// KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst): kvmclock (0x4b564d00-01), async page
// faults (02), steal time (03), PV EOI (04), poll control (05), async PF interrupt/ack (06-07).
inline constexpr std::uint32_t kMsrKvmFirst = 0x4b564d00;
inline constexpr std::uint32_t kMsrKvmLast = 0x4b564dff;
// Bounds on what a state file may claim (KVM lists a few hundred MSRs; its CPUID has at most 256 entries).
inline constexpr std::uint32_t kMaxSavedMsrs = 4096;
inline constexpr std::uint32_t kMaxSavedCpuidEntries = 256;
inline constexpr std::size_t kMaxXsaveBytes = 1 << 20;

struct VcpuState {
  std::vector<kvm_cpuid_entry2> cpuid;
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<std::byte> xsave;  // Vm::xsave_size() bytes
  kvm_xcrs xcrs{};
  kvm_debugregs debug_regs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;  // in KVM_GET_MSR_INDEX_LIST order
  kvm_vcpu_events events{};
  std::uint32_t tsc_khz = 0;  // 0: KVM could not tell
};

struct VmState {
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
};

// Whether a snapshot keeps MSR `index`: the architectural and KVM MSRs a guest's state lives in
// (Firecracker's SERIALIZABLE_MSR_RANGES: TSC, APIC base, SYSENTER, PAT and MTRRs, machine check
// banks, the x2APIC range, EFER and the syscall MSRs, FS/GS base, TSC_AUX, XSS, KVM's paravirtual
// range...), but not IA32_MCG_CTL.
[[nodiscard]] bool msr_is_saved(std::uint32_t index);
// `kvm_list` (KVM_GET_MSR_INDEX_LIST) filtered to msr_is_saved, in its order.
[[nodiscard]] std::vector<std::uint32_t> msrs_to_save(std::span<const std::uint32_t> kvm_list);

// MSRs KVM cannot read are left out (logged with --verbose): KVM lists what it may save, and a
// nested or older host may still refuse one.
[[nodiscard]] Result<VcpuState> save_vcpu(const Vcpu& vcpu, std::span<const std::uint32_t> msrs,
                                          std::size_t xsave_size);
[[nodiscard]] Result<void> restore_vcpu(const Vcpu& vcpu, const VcpuState& state);
// The sregs restore_vcpu gives KVM_SET_SREGS for saved `sregs` on `host`: TR's busy type becomes
// available on AMD (vcpu_state.cpp says why), everything else as saved.
[[nodiscard]] kvm_sregs restorable_sregs(kvm_sregs sregs, const snapshot::CpuModel& host);
[[nodiscard]] Result<VmState> save_vm(const Vm& vm);
[[nodiscard]] Result<void> restore_vm(const Vm& vm, const VmState& state);

// Whether restoring a TSC of `saved_khz` on a host whose vCPUs run at `host_khz` needs KVM_SET_TSC_KHZ:
// outside 250 parts per million (calibration noise; QEMU and Firecracker use the same tolerance).
[[nodiscard]] bool tsc_scaling_needed(std::uint32_t saved_khz, std::uint32_t host_khz);

void encode(snapshot::Encoder& out, const VcpuState& state);
// Checks every count and size; `xsave_size` is this host's (Vm::xsave_size()), which the saved area
// must have.
[[nodiscard]] Result<VcpuState> decode_vcpu_state(snapshot::Decoder& in, std::size_t xsave_size);
void encode(snapshot::Encoder& out, const VmState& state);
[[nodiscard]] Result<VmState> decode_vm_state(snapshot::Decoder& in);

}  // namespace microvm::vmm
