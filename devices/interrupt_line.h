// An interrupt line as a device sees it: a level the device raises and lowers. The VMM wires it
// to KVM (KVM_IRQ_LINE or an irqfd); tests wire it to a recorder.
#pragma once

namespace microvm::devices {

class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  virtual void set_level(bool high) = 0;
};

}  // namespace microvm::devices
