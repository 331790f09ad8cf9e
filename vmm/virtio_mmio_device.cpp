#include "vmm/virtio_mmio_device.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>

namespace microvm::vmm {

namespace {

constexpr std::uint32_t kNotifyWidth = 4;  // QueueNotify is a 32-bit register (virtio 1.2 §4.2.2)

Result<UniqueFd> make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return fail("eventfd failed: {}", errno_text(errno));
  return fd;
}

}  // namespace

Result<std::unique_ptr<IrqfdLine>> IrqfdLine::create(const Vm& vm, std::uint32_t gsi) {
  UniqueFd event = TRY(make_eventfd());
  TRY_VOID(vm.register_irqfd(event.get(), gsi));
  return std::make_unique<IrqfdLine>(std::move(event));
}

void IrqfdLine::set_level(bool high) {
  if (!high) return;
  const std::uint64_t one = 1;
  // Cannot fail short of a closed fd; a full counter (2^64-2 pending edges) cannot happen.
  [[maybe_unused]] const ssize_t n = ::write(event_.get(), &one, sizeof(one));
}

Result<std::unique_ptr<VirtioMmioDevice>> VirtioMmioDevice::create(
    const Vm& vm, boost::asio::io_context& io, const GuestMemory& memory,
    std::unique_ptr<devices::virtio::VirtioDevice> device, GuestAddress base, std::uint32_t irq) {
  std::unique_ptr<IrqfdLine> line = TRY(IrqfdLine::create(vm, irq));
  auto result = std::make_unique<VirtioMmioDevice>(std::move(device), std::move(line), memory, base, irq);
  const std::size_t queues = result->device_->queue_count();
  for (std::size_t queue = 0; queue < queues; ++queue) {
    UniqueFd event = TRY(make_eventfd());
    TRY_VOID(vm.register_ioeventfd(GuestAddress(base.value + devices::virtio::MmioTransport::kQueueNotifyOffset),
                                   kNotifyWidth, queue, event.get()));
    auto notifier = std::make_unique<Notifier>(
        Notifier{static_cast<std::uint16_t>(queue), boost::asio::posix::stream_descriptor(io, event.release())});
    result->wait_for_notification(*notifier);
    result->notifiers_.push_back(std::move(notifier));
  }
  return result;
}

VirtioMmioDevice::VirtioMmioDevice(std::unique_ptr<devices::virtio::VirtioDevice> device,
                                   std::unique_ptr<IrqfdLine> line, const GuestMemory& memory, GuestAddress base,
                                   std::uint32_t irq)
    : device_(std::move(device)),
      line_(std::move(line)),
      base_(base),
      irq_(irq),
      transport_(*device_, memory, *line_) {}

// The transport (the device's Interrupt) goes before the device: reset the device first, so that no
// thread of its own (virtio-blk's I/O worker) signals into a destroyed transport.
VirtioMmioDevice::~VirtioMmioDevice() {
  device_->reset();
}

void VirtioMmioDevice::wait_for_notification(Notifier& notifier) {
  notifier.descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                 [this, &notifier](const boost::system::error_code& ec) {
                                   if (ec) return;  // cancelled: the device is going away
                                   std::uint64_t count = 0;
                                   // Reading resets the counter; several kicks fold into one pass.
                                   if (::read(notifier.descriptor.native_handle(), &count, sizeof(count)) > 0) {
                                     transport_.queue_notify(notifier.queue);
                                   }
                                   wait_for_notification(notifier);
                                 });
}

std::string virtio_mmio_cmdline(GuestAddress base, std::uint32_t irq) {
  return fmt::format("virtio_mmio.device=4K@{:#x}:{}", base.value, irq);
}

}  // namespace microvm::vmm
