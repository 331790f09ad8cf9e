// Vm: one KVM VM fd (api.rst 4.2 KVM_CREATE_VM): guest memory slots, the in-kernel irqchip and
// PIT, ioeventfds and irqfds, and its vCPUs. Every VM ioctl microvm issues is in vm.cpp.
#pragma once

#include <linux/kvm.h>

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
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  friend class Kvm;
  explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace microvm::vmm
