// The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the register window a driver uses to
// discover a device, negotiate features, configure queues and exchange notifications. Register
// offsets and values come from <linux/virtio_mmio.h> and <linux/virtio_config.h>.
// Guest accesses arrive on vCPU threads; device work runs elsewhere: state is under a mutex. What the
// driver gets wrong (a bad queue configuration, a device error) is logged at a rate limit.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"
#include "devices/interrupt_line.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"

namespace microvm::devices::virtio {

class MmioTransport final : public BusDevice, private Interrupt {
 public:
  static constexpr std::uint64_t kWindowSize = 0x1000;    // one 4 KiB page per device
  static constexpr std::uint32_t kMagic = 0x74726976;     // "virt" (§4.2.2)
  static constexpr std::uint32_t kVersion = 2;            // non-legacy register layout (§4.2.2)
  static constexpr std::uint32_t kVendorId = 0x4d564d4d;  // "MMVM"

  MmioTransport(VirtioDevice& device, const GuestMemory& memory, InterruptLine& irq);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // The driver notified `queue` (a QueueNotify write, or its ioeventfd firing on the event loop).
  // Ignored unless the device is live (DRIVER_OK, not failed) and the queue exists.
  void queue_notify(std::uint32_t queue);
  // Where a QueueNotify write lands in the window (for ioeventfd registration: §4.2.2 QueueNotify).
  static constexpr std::uint64_t kQueueNotifyOffset = 0x50;

  // What the driver configured, per queue (QueueNum, the three areas, QueueReady as written).
  struct QueueConfigState {
    std::uint16_t size = 0;
    bool ready = false;
    std::uint64_t descriptors = 0, driver_area = 0, device_area = 0;

    bool operator==(const QueueConfigState&) const = default;
  };
  // The transport's registers and queues, for a snapshot (the device's own state is the device's).
  struct State {
    std::uint32_t status = 0;
    std::uint32_t device_features_select = 0;
    std::uint32_t driver_features_select = 0;
    std::uint64_t driver_features = 0;
    std::uint32_t queue_select = 0;
    std::uint32_t interrupt_status = 0;
    std::uint32_t config_generation = 0;
    bool activated = false;
    bool device_failed = false;
    std::vector<QueueConfigState> queue_configs;  // one per queue
    std::vector<Queue::State> queues;

    bool operator==(const State&) const = default;
  };
  // Taken while the vCPUs are paused (on the event loop, so no device work runs meanwhile). Chains
  // the device holds (VirtioDevice::chains_held) are given back to the driver's rings: each queue's
  // next_avail is rewound past them.
  [[nodiscard]] State state();
  // On a transport that was never used: takes `state` over, after checking it fits this device (its
  // queue count, the features it offers, status and interrupt bits that exist, queues that pass
  // validation). An activated transport activates its device again on the restored queues and
  // notifies each queue once, so work the driver had left in the rings goes on.
  [[nodiscard]] Result<void> restore(const State& state);

 private:
  using QueueConfig = QueueConfigState;  // what the driver wrote, applied to the Queue when it sets QueueReady

  std::uint32_t read_register(std::uint64_t offset);
  void write_register(std::uint64_t offset, std::uint32_t value);
  void write_status(std::uint32_t value);
  void reset_locked();
  void fail_locked(const Error& error);  // sets DEVICE_NEEDS_RESET and tells the driver
  QueueConfig* selected_queue();

  // Interrupt
  void signal_used_buffers() override;
  void signal_config_change() override;
  void signal_device_error(const Error& error) override;
  void raise(std::uint32_t bits);

  VirtioDevice& device_;
  const GuestMemory& memory_;
  InterruptLine& irq_;
  std::mutex mutex_;            // registers and queue configuration
  std::mutex interrupt_mutex_;  // interrupt status and the line; taken after mutex_, never before
  std::vector<Queue> queues_;
  std::vector<QueueConfig> queue_configs_;
  std::uint32_t status_ = 0;
  std::uint32_t device_features_select_ = 0;
  std::uint32_t driver_features_select_ = 0;
  std::uint64_t driver_features_ = 0;
  std::uint32_t queue_select_ = 0;
  std::uint32_t interrupt_status_ = 0;   // under interrupt_mutex_
  std::uint32_t config_generation_ = 0;  // under interrupt_mutex_
  bool activated_ = false;
  std::atomic<bool> device_failed_{false};  // signal_device_error() since the last reset
  RateLimitedLog guest_log_;                // what the driver got wrong: a guest can trigger it in a loop
};

}  // namespace microvm::devices::virtio
