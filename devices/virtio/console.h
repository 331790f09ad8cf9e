// virtio-console (virtio 1.2 §5.3) with a single port (no MULTIPORT): the guest's hvc0.
// transmitq0 carries guest output to an OutputSink; host input waits in a bounded buffer (like
// devices::Serial's) and goes into receiveq0 buffers as soon as the driver offers some. The console
// size (VIRTIO_CONSOLE_F_SIZE) comes from set_size(); an emergency write (VIRTIO_CONSOLE_F_EMERG_WRITE)
// goes straight to the sink.
//
// Every chain is untrusted: a transmit chain with device-writable buffers, a receive chain with
// device-readable ones, or a chain the queue rejects is a broken driver: the device signals a device
// error and stops using its queues until reset(). Host input keeps being buffered meanwhile.
//
// Work is budgeted (deferred_work.h): one notify, enqueue_input or deferred run moves at most
// kNotifyBudget chains per queue; the rest continues in a DeferredWork on `executor`, so a guest that
// re-posts buffers as fast as they are used cannot keep the event loop in one call.
//
// Threads (see virtio_device.h): one mutex guards the device state. The sink is never called with
// it held, so a slow terminal does not hold up input, config reads or reset; a second mutex keeps
// sink calls one at a time and in the guest's order. The sink must not call back into
// write_config() (it may call enqueue_input()).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "base/error.h"
#include "devices/virtio/deferred_work.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace microvm::devices::virtio {

class ConsoleDevice final : public VirtioDevice {
 public:
  using OutputSink = std::function<void(std::span<const std::uint8_t>)>;  // same shape as devices::Serial::OutputSink
  static constexpr std::size_t kInputCapacity = 4096;                     // bytes of host input buffered for the guest
  static constexpr std::uint16_t kReceiveQueue = 0;                       // §5.3.2: receiveq0 (port 0 input)
  static constexpr std::uint16_t kTransmitQueue = 1;                      // §5.3.2: transmitq0 (port 0 output)
  static constexpr std::size_t kQueueCount = 2;  // §5.3.2: without MULTIPORT, only port 0's queues
  // Transmit data is copied out of guest memory and handed to the sink this many bytes at a time:
  // host memory stays bounded whatever length the guest's buffers claim.
  static constexpr std::size_t kTransmitChunk = 64 * 1024;

  // `executor` runs the work left over when a call used up its budget; its io_context may be destroyed
  // before or after the device.
  ConsoleDevice(boost::asio::any_io_executor executor, OutputSink sink);
  ~ConsoleDevice() override;
  ConsoleDevice(const ConsoleDevice&) = delete;
  ConsoleDevice& operator=(const ConsoleDevice&) = delete;

  // Host input for the guest (thread-safe; called on the event loop). Returns how many bytes were
  // accepted; the rest does not fit until the guest takes some. Delivered into receiveq buffers as
  // soon as there are any.
  std::size_t enqueue_input(std::span<const std::uint8_t> bytes);
  // The host terminal's size (thread-safe). Reported in the config space (§5.3.4 cols/rows); a change
  // while the driver runs with VIRTIO_CONSOLE_F_SIZE sends a configuration change notification (§5.3.6).
  void set_size(std::uint16_t cols, std::uint16_t rows);

  // What a snapshot keeps beside the transport: host input the guest has not taken yet, and the
  // console size it was told. (The device holds no chain between calls.)
  struct State {
    std::vector<std::uint8_t> input;  // at most kInputCapacity bytes
    std::uint16_t cols = 0;
    std::uint16_t rows = 0;

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state();
  // Before the transport's restore (the device is not active yet); refuses more input than fits.
  [[nodiscard]] Result<void> restore(const State& state);

  // VirtioDevice
  [[nodiscard]] std::uint32_t device_id() const override;
  [[nodiscard]] std::uint64_t features() const override;
  [[nodiscard]] std::size_t queue_count() const override { return kQueueCount; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  [[nodiscard]] Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                      Interrupt& interrupt) override;
  void notify(std::uint16_t queue) override;
  void reset() override;

 private:
  [[nodiscard]] bool live_locked() const { return interrupt_ != nullptr && !failed_; }
  void transmit();  // moves up to kNotifyBudget transmitq0 chains into the sink, defers the rest
  // Moves buffered input into receiveq0 buffers, one chain per unit of `budget`, and defers the rest
  // when the budget runs out; true when it returned any (a notification may be due).
  bool receive_locked(unsigned& budget);
  void receive_deferred();
  [[nodiscard]] Result<std::uint32_t> fill_locked(const DescriptorChain& chain);  // bytes written
  void signal_used_locked(std::uint16_t queue);  // the interrupt if due; none once failed or reset
  void fail_locked(const Error& error);          // the driver broke the queue: stop until reset()

  const OutputSink sink_;

  std::mutex output_mutex_;             // one sink call at a time, in order; taken before mutex_
  std::vector<std::uint8_t> transmit_;  // under output_mutex_: the chunk being handed to the sink

  std::mutex mutex_;  // the fields below
  std::deque<std::uint8_t> input_;
  std::uint16_t cols_ = 0;  // 0x0: size unknown (what a tty starts with)
  std::uint16_t rows_ = 0;
  // Set between activate() and reset().
  const GuestMemory* memory_ = nullptr;
  std::span<Queue> queues_;
  Interrupt* interrupt_ = nullptr;
  std::uint64_t acked_features_ = 0;
  bool failed_ = false;           // signal_device_error() sent; no queue is touched until reset()
  std::uint64_t generation_ = 0;  // bumped by reset(): a transmit that dropped the lock sees it

  // Last: cancelled (and so waited for) before anything they use goes away.
  DeferredWork transmit_more_;  // transmit() again
  DeferredWork receive_more_;   // receive_deferred()
};

}  // namespace microvm::devices::virtio
