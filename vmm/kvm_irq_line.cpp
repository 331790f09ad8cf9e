#include "vmm/kvm_irq_line.h"

#include <spdlog/spdlog.h>

namespace microvm::vmm {

void KvmIrqLine::set_level(bool high) {
  if (auto r = vm_.set_irq_line(irq_, high); !r) spdlog::warn("IRQ {}: {}", irq_, r.error().message);
}

}  // namespace microvm::vmm
