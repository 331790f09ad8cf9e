// An interrupt line backed by KVM_IRQ_LINE on the in-kernel PIC/IOAPIC.
#pragma once

#include <cstdint>

#include "devices/interrupt_line.h"
#include "vmm/kvm.h"

namespace microvm::vmm {

class KvmIrqLine final : public devices::InterruptLine {
 public:
  KvmIrqLine(const Vm& vm, std::uint32_t irq) : vm_(vm), irq_(irq) {}
  void set_level(bool high) override;

 private:
  const Vm& vm_;
  std::uint32_t irq_;
};

}  // namespace microvm::vmm
