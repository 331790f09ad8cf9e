// Vcpu: one KVM vCPU fd and its shared kvm_run page (api.rst 4.7 KVM_CREATE_VCPU, 4.10 KVM_RUN).
// Every vCPU ioctl microvm issues is in vcpu.cpp, each with a note on why its argument is sound.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vcpu_exit.h"

namespace microvm::vmm {

class Vcpu {
 public:
  [[nodiscard]] Result<VcpuExit> run();
  // While set, KVM_RUN returns at once (EINTR): used with a signal to stop a vCPU race-free.
  void set_immediate_exit(bool value);

  [[nodiscard]] Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry> entries) const;
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  // Where the guest is: its instruction pointer (x86: RIP, from KVM_GET_REGS).
  [[nodiscard]] Result<std::uint64_t> program_counter() const;
  [[nodiscard]] Result<void> set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic) const;
  // The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ, api.rst 4.56); 0 when KVM cannot tell.
  [[nodiscard]] std::uint32_t tsc_khz() const;

  // --- the rest of a vCPU's state, for snapshots (vmm/x86_64/vcpu_state.h) ---------------------
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> get_cpuid() const;
  // The MSRs `indices` names, in order, as far as KVM could read them: KVM stops at the first MSR it
  // cannot read, so a result shorter than `indices` means indices[result.size()] failed.
  [[nodiscard]] Result<std::vector<kvm_msr_entry>> get_msrs(std::span<const std::uint32_t> indices) const;
  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  [[nodiscard]] Result<void> set_mp_state(const kvm_mp_state& state) const;
  // The XSAVE area: `size` bytes (Vm::xsave_size()), with KVM_GET_XSAVE2 when it is above 4 KiB.
  [[nodiscard]] Result<std::vector<std::byte>> get_xsave(std::size_t size) const;
  [[nodiscard]] Result<void> set_xsave(std::span<const std::byte> area) const;
  [[nodiscard]] Result<kvm_xcrs> get_xcrs() const;
  [[nodiscard]] Result<void> set_xcrs(const kvm_xcrs& xcrs) const;
  [[nodiscard]] Result<kvm_debugregs> get_debug_regs() const;
  [[nodiscard]] Result<void> set_debug_regs(const kvm_debugregs& regs) const;
  [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
  [[nodiscard]] Result<void> set_vcpu_events(const kvm_vcpu_events& events) const;
  // KVM_SET_TSC_KHZ (api.rst 4.55): the guest TSC runs at `khz` (needs TSC scaling unless it is the host's).
  [[nodiscard]] Result<void> set_tsc_khz(std::uint32_t khz) const;
  // KVM_KVMCLOCK_CTRL (api.rst 4.70): tells the guest it was paused, so its soft-lockup watchdog does
  // not fire for the time it spent stopped. Fails (EINVAL) when the guest does not use kvmclock.
  [[nodiscard]] Result<void> kvmclock_ctrl() const;
  [[nodiscard]] unsigned id() const { return id_; }

 private:
  friend class Vm;
  Vcpu(unsigned id, UniqueFd fd, Mapping run) : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}
  [[nodiscard]] kvm_run* run_struct() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  unsigned id_;
  UniqueFd fd_;
  Mapping run_;  // the shared kvm_run structure (KVM_GET_VCPU_MMAP_SIZE bytes)
};

}  // namespace microvm::vmm
