// Vm: one KVM VM fd (api.rst 4.2 KVM_CREATE_VM): guest memory slots, the in-kernel irqchip and
// PIT, ioeventfds and irqfds, and its vCPUs. Every VM ioctl microvm issues is in vm.cpp.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"
#include "vmm/vcpu.h"

namespace microvm::vmm {

class Vm {
 public:
  [[nodiscard]] Result<void> set_user_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size,
                                                    void* host) const;
  [[nodiscard]] Result<void> set_tss_address(GuestAddress address) const;
  [[nodiscard]] Result<void> set_identity_map_address(GuestAddress address) const;
  [[nodiscard]] Result<void> create_irqchip() const;
  [[nodiscard]] Result<void> create_pit() const;
  [[nodiscard]] Result<void> set_irq_line(std::uint32_t irq, bool level) const;
  // KVM_IOEVENTFD (api.rst 4.59): a guest write of `len` bytes equal to `datamatch` at MMIO
  // `address` signals `eventfd` inside KVM instead of exiting to the VMM.
  [[nodiscard]] Result<void> register_ioeventfd(GuestAddress address, std::uint32_t len, std::uint64_t datamatch,
                                                int eventfd) const;
  // KVM_IRQFD (api.rst 4.75): a write to `eventfd` injects an edge on interrupt line `gsi`.
  [[nodiscard]] Result<void> register_irqfd(int eventfd, std::uint32_t gsi) const;
  [[nodiscard]] Result<Vcpu> create_vcpu(unsigned id, std::size_t mmap_size) const;

  // KVM_CHECK_EXTENSION on the VM fd (api.rst 4.4): some answers are per VM (KVM_CAP_XSAVE2's size).
  [[nodiscard]] int check_extension(long capability) const;
  // Bytes of a vCPU's XSAVE area (struct kvm_xsave): KVM_CAP_XSAVE2's answer, or 4 KiB without it.
  [[nodiscard]] std::size_t xsave_size() const;

  // --- the in-kernel devices' state, for snapshots (vmm/x86_64/vcpu_state.h) ---------------------
  // `chip` is KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC.
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(std::uint32_t chip) const;
  [[nodiscard]] Result<void> set_irqchip(const kvm_irqchip& state) const;
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  [[nodiscard]] Result<void> set_pit2(const kvm_pit_state2& state) const;
  [[nodiscard]] Result<kvm_clock_data> get_clock() const;
  // KVM_SET_CLOCK with only `clock` (flags 0): kvmclock goes on from that value.
  [[nodiscard]] Result<void> set_clock(std::uint64_t clock) const;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  friend class Kvm;
  explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace microvm::vmm
