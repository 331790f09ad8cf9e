// One virtio device on the MMIO bus, wired to KVM the way Firecracker and Cloud Hypervisor do it:
// the transport's QueueNotify register is one ioeventfd per queue (KVM signals it without an exit
// to the VMM) whose wake-ups the event loop hands to the device, and the device's interrupt is an
// irqfd (one eventfd write injects the edge, from any thread, again without a VMM round trip).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "devices/interrupt_line.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/virtio_device.h"
#include "vmm/kvm.h"

namespace microvm::vmm {

// An edge-triggered interrupt through KVM_IRQFD. The virtio-mmio driver acknowledges through
// InterruptACK and re-reads InterruptStatus, so an edge per raise is all it needs; lowering the
// line is a no-op.
class IrqfdLine final : public devices::InterruptLine {
 public:
  static Result<std::unique_ptr<IrqfdLine>> create(const Vm& vm, std::uint32_t gsi);
  explicit IrqfdLine(UniqueFd event) : event_(std::move(event)) {}
  void set_level(bool high) override;

 private:
  UniqueFd event_;
};

class VirtioMmioDevice {
 public:
  // Registers the ioeventfds and the irqfd with `vm` and starts serving notifications on `io`.
  static Result<std::unique_ptr<VirtioMmioDevice>> create(const Vm& vm, boost::asio::io_context& io,
                                                          const GuestMemory& memory,
                                                          std::unique_ptr<devices::virtio::VirtioDevice> device,
                                                          GuestAddress base, std::uint32_t irq);
  VirtioMmioDevice(std::unique_ptr<devices::virtio::VirtioDevice> device, std::unique_ptr<IrqfdLine> line,
                   const GuestMemory& memory, GuestAddress base, std::uint32_t irq);
  ~VirtioMmioDevice();
  VirtioMmioDevice(const VirtioMmioDevice&) = delete;
  VirtioMmioDevice& operator=(const VirtioMmioDevice&) = delete;

  [[nodiscard]] devices::virtio::MmioTransport& transport() { return transport_; }
  [[nodiscard]] devices::virtio::VirtioDevice& device() { return *device_; }
  [[nodiscard]] GuestAddress base() const { return base_; }
  [[nodiscard]] std::uint32_t irq() const { return irq_; }

 private:
  struct Notifier {  // one queue's ioeventfd, as the event loop sees it
    std::uint16_t queue;
    boost::asio::posix::stream_descriptor descriptor;
  };
  void wait_for_notification(Notifier& notifier);

  std::unique_ptr<devices::virtio::VirtioDevice> device_;
  std::unique_ptr<IrqfdLine> line_;
  GuestAddress base_;
  std::uint32_t irq_;
  devices::virtio::MmioTransport transport_;
  std::vector<std::unique_ptr<Notifier>> notifiers_;
};

// The kernel command-line parameter that announces a device (Linux drivers/virtio/virtio_mmio.c,
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES): "virtio_mmio.device=4K@0xc0000000:5".
std::string virtio_mmio_cmdline(GuestAddress base, std::uint32_t irq);

}  // namespace microvm::vmm
