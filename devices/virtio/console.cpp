#include "devices/virtio/console.h"

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "devices/virtio/config_space.h"

namespace microvm::devices::virtio {

namespace {

constexpr std::uint64_t bit(unsigned feature) {
  return 1ULL << feature;
}

// §5.3.3 feature bits (<linux/virtio_console.h>); MULTIPORT is deliberately not offered.
constexpr std::uint64_t kFeatureSize = bit(VIRTIO_CONSOLE_F_SIZE);               // cols/rows are valid
constexpr std::uint64_t kFeatureEmergWrite = bit(VIRTIO_CONSOLE_F_EMERG_WRITE);  // emerg_wr outputs a byte
constexpr std::uint64_t kOfferedFeatures =
    bit(kFeatureVersion1) | bit(kFeatureEventIdx) | bit(kFeatureIndirectDesc) | kFeatureSize | kFeatureEmergWrite;

// §5.3.4 struct virtio_console_config, as Linux lays it out: cols at 0, rows at 2 (the spec's listing
// has them the other way round; drivers and other devices follow <linux/virtio_console.h>).
constexpr std::size_t kConfigSize = sizeof(virtio_console_config);
constexpr std::uint64_t kEmergWriteOffset = offsetof(virtio_console_config, emerg_wr);
static_assert(kConfigSize == 12 && offsetof(virtio_console_config, cols) == 0 &&
              offsetof(virtio_console_config, rows) == 2 && kEmergWriteOffset == 8);
constexpr std::uint32_t kPorts = 1;  // max_nr_ports: only port 0 exists (meaningful with MULTIPORT only)

// Bytes copied from the input buffer to guest memory at a time.
constexpr std::size_t kReceiveChunk = 512;

}  // namespace

ConsoleDevice::ConsoleDevice(boost::asio::any_io_executor executor, OutputSink sink)
    : sink_(std::move(sink)),
      transmit_more_(executor, [this] { transmit(); }),
      receive_more_(executor, [this] { receive_deferred(); }) {}

ConsoleDevice::~ConsoleDevice() {
  transmit_more_.cancel();
  receive_more_.cancel();
}

std::uint32_t ConsoleDevice::device_id() const {
  return VIRTIO_ID_CONSOLE;  // §5.3.1
}

std::uint64_t ConsoleDevice::features() const {
  return kOfferedFeatures;
}

std::size_t ConsoleDevice::enqueue_input(std::span<const std::uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  std::size_t accepted = 0;
  bool delivered = false;
  unsigned budget = kNotifyBudget;
  // Buffer what fits, hand it to the guest, and take more while the guest's buffers keep room (and
  // the budget lasts: then the buffer fills up, and the rest waits for the deferred run).
  while (accepted < bytes.size()) {
    const std::size_t count = std::min(bytes.size() - accepted, kInputCapacity - input_.size());
    if (count == 0) break;
    const auto first = bytes.begin() + static_cast<std::ptrdiff_t>(accepted);
    input_.insert(input_.end(), first, first + static_cast<std::ptrdiff_t>(count));
    accepted += count;
    delivered = receive_locked(budget) || delivered;
  }
  if (delivered) signal_used_locked(kReceiveQueue);
  return accepted;
}

ConsoleDevice::State ConsoleDevice::state() {
  std::lock_guard lock(mutex_);
  return State{std::vector<std::uint8_t>(input_.begin(), input_.end()), cols_, rows_};
}

Result<void> ConsoleDevice::restore(const State& state) {
  if (state.input.size() > kInputCapacity) {
    return fail("virtio-console: {} bytes of pending input, the device buffers at most {}", state.input.size(),
                kInputCapacity);
  }
  std::lock_guard lock(mutex_);
  if (interrupt_ != nullptr) return fail_state("virtio-console: restore on an active device");
  input_.assign(state.input.begin(), state.input.end());
  cols_ = state.cols;
  rows_ = state.rows;
  return {};
}

void ConsoleDevice::set_size(std::uint16_t cols, std::uint16_t rows) {
  std::lock_guard lock(mutex_);
  if (cols == cols_ && rows == rows_) return;
  cols_ = cols;
  rows_ = rows;
  // §5.3.6: the driver re-reads cols/rows on a configuration change notification.
  if (live_locked() && (acked_features_ & kFeatureSize) != 0) interrupt_->signal_config_change();
}

void ConsoleDevice::read_config(std::uint64_t offset, std::span<std::uint8_t> data) {
  virtio_console_config config{};
  {
    std::lock_guard lock(mutex_);
    config.cols = cols_;
    config.rows = rows_;
  }
  config.max_nr_ports = kPorts;
  config.emerg_wr = 0;  // write-only
  read_config_window(config, offset, data);
}

void ConsoleDevice::write_config(std::uint64_t offset, std::span<const std::uint8_t> data) {
  // Every field but emerg_wr is read-only. §5.3.5.1: a write to emerg_wr outputs its lower byte (the
  // first, little-endian), at any time, even on an unconfigured or failed device.
  if (offset > kEmergWriteOffset || kEmergWriteOffset - offset >= data.size()) return;
  const std::uint8_t byte = data[kEmergWriteOffset - offset];
  std::lock_guard output(output_mutex_);
  sink_(std::span(&byte, 1));
}

Result<void> ConsoleDevice::activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                     Interrupt& interrupt) {
  if (queues.size() != kQueueCount) {
    return fail("virtio-console needs {} queues, the transport set up {}", kQueueCount, queues.size());
  }
  std::lock_guard lock(mutex_);
  memory_ = &memory;
  queues_ = queues;
  interrupt_ = &interrupt;
  acked_features_ = acked_features;
  failed_ = false;
  // Input that arrived while the device was down goes into buffers the driver offered before
  // DRIVER_OK (its notification then was not delivered).
  unsigned budget = kNotifyBudget;
  if (receive_locked(budget)) signal_used_locked(kReceiveQueue);
  return {};
}

void ConsoleDevice::notify(std::uint16_t queue) {
  if (queue == kTransmitQueue) {
    transmit();
    return;
  }
  if (queue != kReceiveQueue) return;
  std::lock_guard lock(mutex_);
  unsigned budget = kNotifyBudget;
  if (receive_locked(budget)) signal_used_locked(kReceiveQueue);
}

void ConsoleDevice::receive_deferred() {
  std::lock_guard lock(mutex_);
  unsigned budget = kNotifyBudget;
  if (receive_locked(budget)) signal_used_locked(kReceiveQueue);
}

void ConsoleDevice::reset() {
  std::lock_guard lock(mutex_);
  memory_ = nullptr;
  queues_ = {};
  interrupt_ = nullptr;
  acked_features_ = 0;
  failed_ = false;
  ++generation_;
  // input_ stays: it is delivered after the next activation.
}

void ConsoleDevice::transmit() {
  std::lock_guard output(output_mutex_);
  std::unique_lock lock(mutex_);
  const std::uint64_t generation = generation_;
  // Hands transmit_ to the sink without the device lock; false when the device was reset or failed
  // meanwhile (the chain being sent then belongs to a queue that no longer exists).
  auto flush = [&] {
    if (transmit_.empty()) return true;
    lock.unlock();
    sink_(transmit_);
    lock.lock();
    transmit_.clear();
    return generation_ == generation && live_locked();
  };
  bool used = false;
  for (unsigned handled = 0; live_locked(); ++handled) {
    if (handled == kNotifyBudget) {  // yield: the rest (if any) in a run of its own
      transmit_more_.schedule();
      break;
    }
    auto popped = queues_[kTransmitQueue].pop(*memory_);
    if (!popped) return fail_locked(popped.error().context("transmitq0"));
    if (!popped->has_value()) break;
    const DescriptorChain chain = std::move(**popped);
    if (std::ranges::any_of(chain.segments, [](const Segment& segment) { return segment.device_writable; })) {
      return fail_locked(Error{fmt::format(
          "transmitq0: chain from head {} has device-writable buffers (transmit buffers are read-only, §5.3.6.1)",
          chain.head)});
    }
    transmit_.clear();
    for (const Segment& segment : chain.segments) {
      for (std::uint64_t done = 0; done < segment.len;) {
        const auto count =
            static_cast<std::size_t>(std::min<std::uint64_t>(segment.len - done, kTransmitChunk - transmit_.size()));
        const std::size_t old_size = transmit_.size();
        transmit_.resize(old_size + count);
        auto read = memory_->read(GuestAddress(segment.addr.value + done),
                                  std::as_writable_bytes(std::span(transmit_).subspan(old_size)));
        if (!read) return fail_locked(read.error().context("transmitq0"));
        done += count;
        if (transmit_.size() == kTransmitChunk && !flush()) return;
      }
    }
    if (!flush()) return;
    if (auto added = queues_[kTransmitQueue].add_used(*memory_, chain.head, 0); !added) {
      return fail_locked(added.error().context("transmitq0"));
    }
    used = true;
  }
  if (used) signal_used_locked(kTransmitQueue);
}

bool ConsoleDevice::receive_locked(unsigned& budget) {
  bool used = false;
  while (!input_.empty() && live_locked()) {
    if (budget == 0) {  // yield: the rest of the input in a run of its own
      receive_more_.schedule();
      break;
    }
    --budget;
    auto popped = queues_[kReceiveQueue].pop(*memory_);
    if (!popped) {
      fail_locked(popped.error().context("receiveq0"));
      break;
    }
    if (!popped->has_value()) break;  // no buffers: the input waits for the driver's next notification
    const DescriptorChain& chain = **popped;
    auto written = fill_locked(chain);
    if (!written) {
      fail_locked(written.error().context("receiveq0"));
      break;
    }
    if (auto added = queues_[kReceiveQueue].add_used(*memory_, chain.head, *written); !added) {
      fail_locked(added.error().context("receiveq0"));
      break;
    }
    used = true;
  }
  return used;
}

Result<std::uint32_t> ConsoleDevice::fill_locked(const DescriptorChain& chain) {
  for (const Segment& segment : chain.segments) {
    if (!segment.device_writable) {
      return fail("chain from head {} has device-readable buffers (receive buffers are write-only, §5.3.6.1)",
                  chain.head);
    }
  }
  std::uint32_t written = 0;
  std::array<std::uint8_t, kReceiveChunk> chunk;
  for (const Segment& segment : chain.segments) {
    for (std::uint32_t done = 0; done < segment.len && !input_.empty();) {
      const std::size_t count = std::min({static_cast<std::size_t>(segment.len - done), input_.size(), chunk.size()});
      std::copy_n(input_.begin(), count, chunk.begin());
      TRY_VOID(memory_->write(GuestAddress(segment.addr.value + done), std::as_bytes(std::span(chunk.data(), count))));
      input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(count));
      done += static_cast<std::uint32_t>(count);
      written += static_cast<std::uint32_t>(count);  // at most the chain's length, which fits 32 bits
    }
  }
  return written;
}

void ConsoleDevice::signal_used_locked(std::uint16_t queue) {
  // After a device error (or a reset) the driver hears of that instead, though chains completed
  // before it: an input round may fail the device after an earlier round delivered.
  if (!live_locked()) return;
  auto needed = queues_[queue].needs_notification(*memory_);
  if (!needed) return fail_locked(needed.error().context(queue == kReceiveQueue ? "receiveq0" : "transmitq0"));
  if (*needed) interrupt_->signal_used_buffers();
}

void ConsoleDevice::fail_locked(const Error& error) {
  failed_ = true;
  interrupt_->signal_device_error(error.context("virtio-console"));
}

}  // namespace microvm::devices::virtio
