#include "devices/virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <cstring>

namespace microvm::devices::virtio {

namespace {
constexpr std::size_t kRegisterWidth = 4;  // §4.2.2.2: the driver uses 32-bit aligned accesses
constexpr std::uint64_t kFeaturesPerSelect = 32;

std::uint64_t set_half(std::uint64_t value, bool high, std::uint32_t half) {
  return high ? (value & 0xffffffffULL) | (std::uint64_t{half} << 32) : (value & ~0xffffffffULL) | half;
}
}  // namespace

MmioTransport::MmioTransport(VirtioDevice& device, const GuestMemory& memory, InterruptLine& irq)
    : device_(device),
      memory_(memory),
      irq_(irq),
      queues_(device.queue_count()),
      queue_configs_(device.queue_count()) {}

void MmioTransport::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (offset >= VIRTIO_MMIO_CONFIG) {
    device_.read_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  std::uint32_t value = 0;
  if (data.size() == kRegisterWidth && offset % kRegisterWidth == 0) {
    std::lock_guard lock(mutex_);
    value = read_register(offset);
  }
  std::memcpy(data.data(), &value, std::min(data.size(), sizeof(value)));
}

void MmioTransport::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset >= VIRTIO_MMIO_CONFIG) {
    device_.write_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != kRegisterWidth || offset % kRegisterWidth != 0) return;  // not a register access
  std::uint32_t value;
  std::memcpy(&value, data.data(), sizeof(value));
  if (offset == VIRTIO_MMIO_QUEUE_NOTIFY) {
    queue_notify(value);
    return;
  }
  std::lock_guard lock(mutex_);
  write_register(offset, value);
}

void MmioTransport::queue_notify(std::uint32_t queue) {
  // The device runs outside the register lock: it may signal used buffers right away.
  bool deliver;
  {
    std::lock_guard lock(mutex_);
    deliver = activated_ && !device_failed_ && queue < queues_.size();
  }
  if (deliver) device_.notify(static_cast<std::uint16_t>(queue));
}

MmioTransport::QueueConfig* MmioTransport::selected_queue() {
  return queue_select_ < queue_configs_.size() ? &queue_configs_[queue_select_] : nullptr;
}

std::uint32_t MmioTransport::read_register(std::uint64_t offset) {
  const QueueConfig* queue = selected_queue();
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE: return kMagic;
    case VIRTIO_MMIO_VERSION: return kVersion;
    case VIRTIO_MMIO_DEVICE_ID: return device_.device_id();
    case VIRTIO_MMIO_VENDOR_ID: return kVendorId;
    case VIRTIO_MMIO_DEVICE_FEATURES:
      return device_features_select_ < 2
                 ? static_cast<std::uint32_t>(device_.features() >> (kFeaturesPerSelect * device_features_select_))
                 : 0;
    case VIRTIO_MMIO_QUEUE_NUM_MAX: return queue != nullptr ? Queue::kMaxSize : 0;  // 0: no such queue
    case VIRTIO_MMIO_QUEUE_READY: return queue != nullptr && queue->ready ? 1 : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS: {
      std::lock_guard irq_lock(interrupt_mutex_);
      return interrupt_status_;
    }
    case VIRTIO_MMIO_STATUS: return status_ | (device_failed_ ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
    case VIRTIO_MMIO_CONFIG_GENERATION: {
      std::lock_guard irq_lock(interrupt_mutex_);
      return config_generation_;
    }
    default: return 0;
  }
}

void MmioTransport::write_register(std::uint64_t offset, std::uint32_t value) {
  QueueConfig* queue = selected_queue();
  // Queue registers only change while that queue is not live (§4.2.3.2). The device is live from
  // activation to reset, even when a driver clears DRIVER_OK in between: the device (on another
  // thread) still uses its Queues then.
  const bool queues_live = activated_ || (status_ & VIRTIO_CONFIG_S_DRIVER_OK) != 0;
  const bool queue_writable = queue != nullptr && !queue->ready && !queues_live;
  switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL: device_features_select_ = value; break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      if ((status_ & VIRTIO_CONFIG_S_FEATURES_OK) == 0 && driver_features_select_ < 2) {
        driver_features_ = set_half(driver_features_, driver_features_select_ == 1, value);
      }
      break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL: driver_features_select_ = value; break;
    case VIRTIO_MMIO_QUEUE_SEL: queue_select_ = value; break;
    case VIRTIO_MMIO_QUEUE_NUM:
      if (queue_writable) queue->size = static_cast<std::uint16_t>(std::min<std::uint32_t>(value, UINT16_MAX));
      break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      if (queue_writable)
        queue->descriptors = set_half(queue->descriptors, offset == VIRTIO_MMIO_QUEUE_DESC_HIGH, value);
      break;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      if (queue_writable)
        queue->driver_area = set_half(queue->driver_area, offset == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, value);
      break;
    case VIRTIO_MMIO_QUEUE_USED_LOW:
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
      if (queue_writable)
        queue->device_area = set_half(queue->device_area, offset == VIRTIO_MMIO_QUEUE_USED_HIGH, value);
      break;
    case VIRTIO_MMIO_QUEUE_READY:
      if (queue == nullptr || queues_live) break;
      queue->ready = value == 1;
      {
        Queue& q = queues_[queue_select_];
        q.reset();
        if (queue->ready) {
          q.set_size(queue->size);
          q.set_descriptor_table(GuestAddress(queue->descriptors));
          q.set_driver_area(GuestAddress(queue->driver_area));
          q.set_device_area(GuestAddress(queue->device_area));
          if (auto valid = q.validate(memory_); !valid) {
            fail_locked(valid.error().context(fmt::format("queue {}", queue_select_)));
            break;
          }
          q.set_ready(true);
        }
      }
      break;
    case VIRTIO_MMIO_INTERRUPT_ACK: {
      std::lock_guard irq_lock(interrupt_mutex_);
      interrupt_status_ &= ~value;
      if (interrupt_status_ == 0) irq_.set_level(false);
      break;
    }
    case VIRTIO_MMIO_STATUS: write_status(value); break;
    default: break;  // read-only or unknown registers
  }
}

void MmioTransport::write_status(std::uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  const std::uint32_t added = value & ~status_;
  if ((added & VIRTIO_CONFIG_S_FEATURES_OK) != 0) {
    // §3.1.1: only offered features, and the modern interface, or FEATURES_OK does not stick.
    const bool subset = (driver_features_ & ~device_.features()) == 0;
    const bool modern = (driver_features_ & (1ULL << kFeatureVersion1)) != 0;
    if (!subset || !modern) value &= ~static_cast<std::uint32_t>(VIRTIO_CONFIG_S_FEATURES_OK);
  }
  status_ = value;
  if ((added & VIRTIO_CONFIG_S_DRIVER_OK) != 0 && !activated_) {
    if ((status_ & VIRTIO_CONFIG_S_FEATURES_OK) == 0) {
      fail_locked(Error{"DRIVER_OK before FEATURES_OK"});
      return;
    }
    for (Queue& q : queues_) {
      q.set_event_idx((driver_features_ & (1ULL << kFeatureEventIdx)) != 0);
      q.set_indirect((driver_features_ & (1ULL << kFeatureIndirectDesc)) != 0);
    }
    if (auto active = device_.activate(memory_, queues_, driver_features_, *this); !active) {
      fail_locked(active.error());
      return;
    }
    activated_ = true;
  }
}

void MmioTransport::reset_locked() {
  if (activated_) device_.reset();
  activated_ = false;
  device_failed_ = false;
  for (Queue& q : queues_) q.reset();
  queue_configs_.assign(queue_configs_.size(), QueueConfig{});
  status_ = 0;
  device_features_select_ = driver_features_select_ = queue_select_ = 0;
  driver_features_ = 0;
  std::lock_guard irq_lock(interrupt_mutex_);
  interrupt_status_ = 0;
  irq_.set_level(false);
}

void MmioTransport::fail_locked(const Error& error) {
  guest_log_.log("virtio device {} needs reset: {}", device_.device_id(), error.message);
  status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
  if (activated_) device_.reset();
  activated_ = false;
  if ((status_ & VIRTIO_CONFIG_S_DRIVER_OK) != 0) signal_config_change();  // §2.1.2
}

MmioTransport::State MmioTransport::state() {
  std::lock_guard lock(mutex_);
  State out;
  out.status = status_;
  out.device_features_select = device_features_select_;
  out.driver_features_select = driver_features_select_;
  out.driver_features = driver_features_;
  out.queue_select = queue_select_;
  out.activated = activated_;
  out.device_failed = device_failed_;
  out.queue_configs = queue_configs_;
  for (std::size_t i = 0; i < queues_.size(); ++i) {
    Queue::State q = queues_[i].state();
    if (activated_)
      q.next_avail = static_cast<std::uint16_t>(q.next_avail - device_.chains_held(static_cast<std::uint16_t>(i)));
    out.queues.push_back(q);
  }
  std::lock_guard irq_lock(interrupt_mutex_);
  out.interrupt_status = interrupt_status_;
  out.config_generation = config_generation_;
  return out;
}

Result<void> MmioTransport::restore(const State& state) {
  constexpr std::uint32_t kKnownStatus = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                         VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FEATURES_OK |
                                         VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED;
  constexpr std::uint32_t kKnownInterrupts = VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG;
  const std::uint32_t id = device_.device_id();
  if (state.queues.size() != queues_.size() || state.queue_configs.size() != queues_.size()) {
    return fail("virtio device {}: the snapshot has {} queues, the device has {}", id, state.queues.size(),
                queues_.size());
  }
  if ((state.status & ~kKnownStatus) != 0) return fail("virtio device {}: status {:#x}", id, state.status);
  if ((state.interrupt_status & ~kKnownInterrupts) != 0) {
    return fail("virtio device {}: interrupt status {:#x}", id, state.interrupt_status);
  }
  if ((state.driver_features & ~device_.features()) != 0) {
    return fail(
        "virtio device {}: the driver accepted features {:#x}, this device offers {:#x} (is the host "
        "backend the same kind as when the snapshot was taken?)",
        id, state.driver_features, device_.features());
  }
  const std::uint32_t live = VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
  if (state.activated && (state.status & live) != live) {
    return fail("virtio device {}: activated without FEATURES_OK and DRIVER_OK (status {:#x})", id, state.status);
  }
  std::vector<Queue> queues(queues_.size());
  for (std::size_t i = 0; i < queues.size(); ++i) {
    const Queue::State& q = state.queues[i];
    if (q.ready && !state.queue_configs[i].ready) return fail("virtio device {}: queue {} ready unconfigured", id, i);
    if (auto restored = queues[i].restore(q, memory_); !restored) {
      return std::unexpected(restored.error().context(fmt::format("virtio device {} queue {}", id, i)));
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (activated_ || status_ != 0) return fail_state("virtio device {}: restore on a transport in use", id);
    queues_ = std::move(queues);
    queue_configs_ = state.queue_configs;
    status_ = state.status;
    device_features_select_ = state.device_features_select;
    driver_features_select_ = state.driver_features_select;
    driver_features_ = state.driver_features;
    queue_select_ = state.queue_select;
    device_failed_ = state.device_failed;
    {
      std::lock_guard irq_lock(interrupt_mutex_);
      interrupt_status_ = state.interrupt_status;
      config_generation_ = state.config_generation;
    }
    if (state.activated) {
      TRY_VOID(device_.activate(memory_, queues_, driver_features_, *this));
      activated_ = true;
    }
  }
  if (state.activated && !state.device_failed) {
    for (std::size_t queue = 0; queue < queues_.size(); ++queue) device_.notify(static_cast<std::uint16_t>(queue));
  }
  return {};
}

void MmioTransport::signal_used_buffers() {
  raise(VIRTIO_MMIO_INT_VRING);
}

void MmioTransport::signal_config_change() {
  {
    std::lock_guard irq_lock(interrupt_mutex_);
    ++config_generation_;
  }
  raise(VIRTIO_MMIO_INT_CONFIG);
}

void MmioTransport::signal_device_error(const Error& error) {
  // Called by the device, possibly with its own lock held: so no register lock here (a vCPU may hold
  // it while resetting the device). The status register reports the flag until the next reset.
  if (device_failed_.exchange(true)) return;
  guest_log_.log("virtio device {} needs reset: {}", device_.device_id(), error.message);
  signal_config_change();
}

void MmioTransport::raise(std::uint32_t bits) {
  std::lock_guard irq_lock(interrupt_mutex_);
  interrupt_status_ |= bits;
  irq_.set_level(true);
}

}  // namespace microvm::devices::virtio
