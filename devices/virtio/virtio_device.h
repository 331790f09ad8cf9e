// What a virtio device (virtio 1.2 §5: blk, net, console, ...) offers its transport. The device
// knows its queues' contents, never the transport's registers or how interrupts are delivered.
//
// Threads: read_config, write_config, activate and reset arrive on vCPU threads (activate and reset
// with the transport's register lock held); notify arrives on the VMM's event loop (or on a vCPU
// thread when no ioeventfd is wired, as in unit tests), without the transport's lock. A device
// guards its own state with its own mutex and calls back only into Interrupt, which is safe from
// any thread and with the device's lock held.
#pragma once

#include <cstdint>
#include <span>

#include "base/error.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace microvm::devices::virtio {

// How a device tells the driver something happened (the transport sets the interrupt status and
// raises its interrupt line).
class Interrupt {
 public:
  virtual ~Interrupt() = default;
  virtual void signal_used_buffers() = 0;   // §2.7.10 "used buffer notification"
  virtual void signal_config_change() = 0;  // §2.4.2 "configuration change notification"
  // The driver broke the device's contract (a bad descriptor chain, say) and the device stopped
  // using its queues: the transport logs `error` once, sets DEVICE_NEEDS_RESET (§2.1.2) and sends a
  // configuration change notification. The device stays stopped until reset().
  virtual void signal_device_error(const Error& error) = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  [[nodiscard]] virtual std::uint32_t device_id() const = 0;  // §5 device type (VIRTIO_ID_*)
  [[nodiscard]] virtual std::uint64_t features() const = 0;   // offered, including VIRTIO_F_VERSION_1
  [[nodiscard]] virtual std::size_t queue_count() const = 0;
  virtual void read_config(std::uint64_t offset, std::span<std::uint8_t> data) = 0;
  virtual void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;

  // DRIVER_OK (§3.1.1): the queues are configured and validated. An error makes the transport set
  // DEVICE_NEEDS_RESET.
  [[nodiscard]] virtual Result<void> activate(const GuestMemory& memory, std::span<Queue> queues,
                                              std::uint64_t acked_features, Interrupt& interrupt) = 0;
  // The driver made buffers available on `queue` (only called while activated).
  virtual void notify(std::uint16_t queue) = 0;
  // Status 0 written (§2.1.1): drop every reference to the queues and go back to the initial state.
  virtual void reset() = 0;

  // For a snapshot (vCPUs paused, called on the event loop): how many chains the device took from
  // `queue` and has not returned yet. A device returns chains in the order it took them, so these
  // are the last ones taken: the transport's State gives them back to the driver's ring by rewinding
  // the queue's next_avail by this many, and the restored device takes them again.
  [[nodiscard]] virtual std::uint16_t chains_held(std::uint16_t /*queue*/) { return 0; }
};

}  // namespace microvm::devices::virtio
