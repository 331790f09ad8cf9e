// Vcpu: one KVM vCPU fd and its shared kvm_run page (api.rst 4.7 KVM_CREATE_VCPU, 4.10 KVM_RUN).
// Every vCPU ioctl microvm issues is in vcpu.cpp, each with a note on why its argument is sound.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>

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
  [[nodiscard]] Result<void> set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic) const;
  // The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ, api.rst 4.56); 0 when KVM cannot tell.
  [[nodiscard]] std::uint32_t tsc_khz() const;
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
