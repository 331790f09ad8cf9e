// Fuzzes virtio-console (devices/virtio/console.h, virtio 1.2 §5.3) against a hostile driver and a
// host that types at will. The input plays, for a bounded number of rounds:
//   - the driver: negotiates features (SIZE, EMERG_WRITE, EVENT_IDX, INDIRECT_DESC, any subset), sets
//     both queues up (any size, ring positions near the 16-bit wrap), offers transmit chains (guest
//     output, device-readable, split anywhere, direct, indirect or mixed) and receive chains
//     (device-writable segments of any length, zero included), twists descriptors and avail entries,
//     scribbles on the rings, writes emerg_wr and reads the config space at any offset, notifies
//     (existing queues and others), resets;
//   - the host: input of any length (more than the buffer holds too), terminal size changes.
// The device's deferred runs (work past kNotifyBudget) execute on an io_context the harness runs until
// nothing is ready after every step (a busy loop fails the input). Then:
//   - nothing crashed (ASan/UBSan), the interrupt contract held, a configuration change came only to a
//     live driver that acked SIZE, the config space reports the last size and one port;
//   - every sink call is at most kTransmitChunk bytes; each emergency write that reaches emerg_wr is
//     one sink call of the byte written, at once; a device that failed or was reset uses no queue and
//     signals nothing;
// and when the driver is not hostile (no twists, no scribbles: its buffers then cannot overlap the
// rings, so the used entries are the device's):
//   - used entries name descriptors inside the ring, transmit ones with len 0, receive ones no longer
//     than the chain;
//   - the guest output is the transmit chains' bytes, whole chains in order (those abandoned by a
//     reset skipped);
//   - host input is never lost or invented: the receive buffers hold, in order, exactly the accepted
//     input their used lengths account for, and what is buffered never exceeds kInputCapacity.
#include <fuzzer/FuzzedDataProvider.h>
#include <linux/virtio_console.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "devices/virtio/console.h"
#include "devices/virtio/queue.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::GuestAddress;
using microvm::GuestMemory;
using microvm::devices::virtio::ConsoleDevice;
using microvm::devices::virtio::kDescFlagWrite;
using microvm::devices::virtio::kFeatureEventIdx;
using microvm::devices::virtio::kFeatureIndirectDesc;
using microvm::devices::virtio::kFeatureVersion1;
using microvm::devices::virtio::Queue;
using microvm::devices::virtio::Segment;
using microvm::devices::virtio::VirtqDesc;
using microvm::devices::virtio::VirtqUsedElem;
using microvm::fuzz::DriverQueue;
using microvm::fuzz::kLowSize;

constexpr std::size_t kQueues = ConsoleDevice::kQueueCount;
constexpr std::array kLayouts{microvm::fuzz::queue_layout(ConsoleDevice::kReceiveQueue),
                              microvm::fuzz::queue_layout(ConsoleDevice::kTransmitQueue)};
constexpr std::array<std::uint64_t, kQueues + 1> kTables{0x6000, 0x7000,
                                                         0x8000};  // queue i: [kTables[i], kTables[i+1])
constexpr std::uint64_t kBuffersStart = 0x8000;
constexpr std::uint64_t kBuffersEnd = kLowSize;
constexpr std::uint64_t kEmergWriteOffset = offsetof(virtio_console_config, emerg_wr);

constexpr int kMaxRounds = 32;
constexpr int kMaxChainsPerRound = 8;
constexpr int kMaxSegments = 3;
constexpr std::uint32_t kMaxChainBytes = 700;
constexpr std::size_t kMaxInput = 2 * ConsoleDevice::kInputCapacity;
constexpr std::size_t kMaxHandlersPerStep = 20'000;

class Harness {
 public:
  explicit Harness(FuzzedDataProvider& input)
      : input_(input),
        memory_(microvm::fuzz::make_memory({})),
        hostility_(input, input.ConsumeIntegralInRange(0, 4)),
        console_(io_.get_executor(), [this](std::span<const std::uint8_t> bytes) { sink(bytes); }) {
    if (input_.ConsumeBool()) activate();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run() {
    for (int round = 0; round < kMaxRounds && input_.remaining_bytes() > 0; ++round) {
      switch (input_.ConsumeIntegralInRange(0, 15)) {
        case 0:
        case 1:
        case 2: offer(ConsoleDevice::kTransmitQueue); break;
        case 3:
        case 4:
        case 5: offer(ConsoleDevice::kReceiveQueue); break;
        case 6:
        case 7: type(); break;
        case 8: resize(); break;
        case 9: console_.notify(input_.ConsumeIntegralInRange<std::uint16_t>(0, 3)); break;  // 2, 3: no such queue
        case 10:
          reset();
          if (input_.ConsumeBool()) activate();
          break;
        case 11:
          if (!active_) activate();
          break;
        case 12: scribble(); break;
        case 13: emergency_write(); break;
        case 14: config_read(); break;
        default:
          console_.notify(ConsoleDevice::kReceiveQueue);
          console_.notify(ConsoleDevice::kTransmitQueue);
          break;
      }
      step();
    }
  }

 private:
  void activate() {
    const bool event_idx = input_.ConsumeBool();
    const bool indirect = input_.ConsumeBool();
    for (std::size_t q = 0; q < kQueues; ++q) {
      drivers_[q] = microvm::fuzz::set_up_queue(input_, memory_, queues_[q], kLayouts[q], event_idx, indirect);
      placers_[q].emplace(input_, memory_, hostility_, kTables[q], kTables[q + 1]);
      placers_[q]->start_round();  // once per activation: descriptors are never reused
      seen_used_[q] = queues_[q].next_used();
    }
    cursor_ = kBuffersStart;
    rx_chains_.clear();
    scribbled_ = false;
    acked_ = (console_.features() & input_.ConsumeIntegral<std::uint64_t>() &
              ~((1ULL << kFeatureEventIdx) | (1ULL << kFeatureIndirectDesc))) |
             (1ULL << kFeatureVersion1) | (event_idx ? 1ULL << kFeatureEventIdx : 0) |
             (indirect ? 1ULL << kFeatureIndirectDesc : 0);
    auto activated = console_.activate(memory_, queues_, acked_, interrupt_);
    FUZZ_CHECK(activated.has_value(), "activate: {}", activated.error().message);
    active_ = true;
  }

  void reset() {
    console_.reset();
    for (Queue& queue : queues_) queue.reset();
    interrupt_.failed = false;
    active_ = false;
  }

  std::optional<std::uint64_t> allocate(std::uint64_t len) {
    if (len > kBuffersEnd - cursor_) return std::nullopt;  // never reused: chains wait across rounds
    const std::uint64_t addr = cursor_;
    cursor_ += len;
    return addr;
  }

  void offer(std::uint16_t q) {
    if (!active_) return;
    const bool transmit = q == ConsoleDevice::kTransmitQueue;
    DriverQueue& driver = drivers_[q];
    const int chains = input_.ConsumeIntegralInRange(1, kMaxChainsPerRound);
    for (int c = 0; c < chains; ++c) {
      const std::uint32_t len = input_.ConsumeIntegralInRange<std::uint32_t>(0, kMaxChainBytes);
      auto addr = allocate(len);
      if (!addr) break;
      std::vector<std::uint8_t> bytes(len);
      if (transmit) {
        // The chain's number first, so that whole chains can be told apart in the output.
        const auto seed = input_.ConsumeIntegral<std::uint8_t>();
        for (std::uint32_t i = 0; i < len; ++i) {
          bytes[i] = static_cast<std::uint8_t>(i == 0 ? tx_sent_.size() : seed + i * 7);
        }
        FUZZ_CHECK(memory_.write(GuestAddress(*addr), std::as_bytes(std::span(bytes))).has_value(), "tx chain");
      }
      auto descs = split(*addr, len, !transmit);
      std::vector<Segment> segments;
      for (const VirtqDesc& desc : descs) segments.push_back(Segment{GuestAddress(desc.addr), desc.len, true});
      auto head = placers_[q]->place(driver, std::move(descs));
      if (!head) break;
      if (transmit) {
        tx_sent_.push_back(std::move(bytes));
      } else {
        rx_chains_[*head] = std::move(segments);
      }
      microvm::fuzz::offer(memory_, driver, hostility_.twist() ? input_.ConsumeIntegral<std::uint16_t>() : *head);
    }
    microvm::fuzz::publish(memory_, driver);
    if (input_.ConsumeBool()) console_.notify(q);
  }

  // `total` bytes from `addr` as 1-3 segments cut anywhere (zero-length ones included).
  std::vector<VirtqDesc> split(std::uint64_t addr, std::uint64_t total, bool writable) {
    const int count = input_.ConsumeIntegralInRange(1, kMaxSegments);
    std::vector<std::uint64_t> cuts{0, total};
    for (int i = 1; i < count; ++i) cuts.push_back(input_.ConsumeIntegralInRange<std::uint64_t>(0, total));
    std::ranges::sort(cuts);
    std::vector<VirtqDesc> descs;
    for (int i = 0; i < count; ++i) {
      descs.push_back(VirtqDesc{addr + cuts[i], static_cast<std::uint32_t>(cuts[i + 1] - cuts[i]),
                                writable ? kDescFlagWrite : std::uint16_t{0}, 0});
    }
    return descs;
  }

  // The host types: any bytes, sometimes more than the buffer holds.
  void type() {
    const auto len = input_.ConsumeIntegralInRange<std::size_t>(0, kMaxInput);
    const auto seed = input_.ConsumeIntegral<std::uint8_t>();
    std::vector<std::uint8_t> bytes(len);
    for (std::size_t i = 0; i < len; ++i) bytes[i] = static_cast<std::uint8_t>(seed + i * 3 + (i >> 5));
    const std::size_t accepted = console_.enqueue_input(bytes);
    FUZZ_CHECK(accepted <= len, "accepted {} of {} bytes", accepted, len);
    typed_.insert(typed_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(accepted));
  }

  void resize() {
    const auto cols = input_.ConsumeIntegral<std::uint16_t>();
    const auto rows = input_.ConsumeIntegral<std::uint16_t>();
    const int before = interrupt_.config;
    const bool changed = cols != cols_ || rows != rows_;
    console_.set_size(cols, rows);
    cols_ = cols;
    rows_ = rows;
    const bool expected = changed && active_ && !interrupt_.failed && (acked_ & (1ULL << VIRTIO_CONSOLE_F_SIZE)) != 0;
    FUZZ_CHECK(interrupt_.config - before == (expected ? 1 : 0), "{} configuration changes for a resize (expected {})",
               interrupt_.config - before, expected);
  }

  void scribble() {
    scribbled_ = true;
    const int pokes = input_.ConsumeIntegralInRange(1, 16);
    for (int i = 0; i < pokes; ++i) {
      const auto addr = input_.ConsumeIntegralInRange<std::uint64_t>(0, kBuffersStart - sizeof(std::uint16_t));
      microvm::fuzz::poke(memory_, addr, input_.ConsumeIntegral<std::uint16_t>());
    }
  }

  // §5.3.5.1: a write reaching emerg_wr outputs its low byte at once; other config writes do nothing.
  void emergency_write() {
    std::array<std::uint8_t, 8> data{};
    const auto offset = input_.ConsumeBool() ? input_.ConsumeIntegralInRange<std::uint64_t>(0, 16)
                                             : input_.ConsumeIntegral<std::uint64_t>();
    const auto len = input_.ConsumeIntegralInRange<std::size_t>(0, data.size());
    for (std::uint8_t& b : data) b = input_.ConsumeIntegral<std::uint8_t>();
    const bool reaches = offset <= kEmergWriteOffset && kEmergWriteOffset - offset < len;
    const std::size_t calls = emergency_calls_.size();
    in_emergency_write_ = true;
    console_.write_config(offset, std::span(data).first(len));
    in_emergency_write_ = false;
    FUZZ_CHECK(emergency_calls_.size() == calls + (reaches ? 1 : 0), "{} sink calls for a config write",
               emergency_calls_.size() - calls);
    if (reaches) {
      FUZZ_CHECK(emergency_calls_.back() == std::vector<std::uint8_t>{data[kEmergWriteOffset - offset]},
                 "emergency write of {:#x} came out otherwise", data[kEmergWriteOffset - offset]);
    }
  }

  void config_read() {
    std::array<std::uint8_t, 16> data{};
    const auto offset = input_.ConsumeBool() ? input_.ConsumeIntegralInRange<std::uint64_t>(0, 16)
                                             : input_.ConsumeIntegral<std::uint64_t>();
    console_.read_config(offset, std::span(data).first(input_.ConsumeIntegralInRange<std::size_t>(0, data.size())));
    std::array<std::uint8_t, sizeof(virtio_console_config)> raw{};
    console_.read_config(0, raw);
    virtio_console_config config{};
    std::memcpy(&config, raw.data(), sizeof(config));
    FUZZ_CHECK(config.cols == cols_ && config.rows == rows_, "config says {}x{}, the host set {}x{}", config.cols,
               config.rows, cols_, rows_);
    FUZZ_CHECK(config.max_nr_ports == 1 && config.emerg_wr == 0, "max_nr_ports {}, emerg_wr {}", config.max_nr_ports,
               config.emerg_wr);
  }

  void sink(std::span<const std::uint8_t> bytes) {
    FUZZ_CHECK(bytes.size() <= ConsoleDevice::kTransmitChunk, "a sink call of {} bytes", bytes.size());
    if (in_emergency_write_) {
      emergency_calls_.emplace_back(bytes.begin(), bytes.end());
    } else {
      guest_output_.insert(guest_output_.end(), bytes.begin(), bytes.end());
    }
  }

  void step() {
    std::size_t handlers = 0;
    io_.restart();
    while (io_.poll_one() != 0) {
      FUZZ_CHECK(++handlers < kMaxHandlersPerStep, "the event loop never runs out of ready handlers");
    }
    const bool tracked = hostility_.level() == 0 && !ever_scribbled();
    check_used(tracked);
    if (tracked) {
      check_output();
      FUZZ_CHECK(delivered_ <= typed_.size(), "{} input bytes delivered, {} accepted", delivered_, typed_.size());
      FUZZ_CHECK(typed_.size() - delivered_ <= ConsoleDevice::kInputCapacity, "{} input bytes buffered",
                 typed_.size() - delivered_);
    }
    if (!active_ || interrupt_.failed) {
      const int used_signals = interrupt_.used;
      console_.notify(ConsoleDevice::kReceiveQueue);
      console_.notify(ConsoleDevice::kTransmitQueue);
      io_.restart();
      while (io_.poll_one() != 0) FUZZ_CHECK(++handlers < kMaxHandlersPerStep, "busy while stopped");
      for (std::size_t q = 0; q < kQueues; ++q) {
        FUZZ_CHECK(!queues_[q].ready() || queues_[q].next_used() == seen_used_[q], "a stopped device used queue {}", q);
      }
      FUZZ_CHECK(interrupt_.used == used_signals, "a stopped device interrupted");
    }
  }

  // The used entries added since the last step (compared only while the driver was never hostile).
  void check_used(bool tracked) {
    for (std::size_t q = 0; q < kQueues; ++q) {
      if (!queues_[q].ready()) continue;
      const DriverQueue& driver = drivers_[q];
      for (; seen_used_[q] != queues_[q].next_used(); ++seen_used_[q]) {
        if (!tracked) continue;
        const VirtqUsedElem used = microvm::fuzz::used_elem(memory_, driver, seen_used_[q]);
        FUZZ_CHECK(used.id < driver.size, "queue {}: used entry names descriptor {} of {}", q, used.id, driver.size);
        if (q == ConsoleDevice::kTransmitQueue) {
          FUZZ_CHECK(used.len == 0, "transmit chain returned with len {}", used.len);
          continue;
        }
        FUZZ_CHECK(delivered_ + used.len <= typed_.size(), "a receive chain got {} bytes, {} were waiting", used.len,
                   typed_.size() - delivered_);
        check_received(used);
        delivered_ += used.len;
      }
    }
  }

  // The chain holds the next used.len bytes of the input, in its writable segments in order.
  void check_received(const VirtqUsedElem& used) {
    const auto chain = rx_chains_.find(static_cast<std::uint16_t>(used.id));
    FUZZ_CHECK(chain != rx_chains_.end(), "receive chain {} was never offered", used.id);
    std::uint64_t writable = 0;
    for (const Segment& segment : chain->second) writable += segment.len;
    FUZZ_CHECK(used.len <= writable, "used len {} for a receive chain of {} bytes", used.len, writable);
    std::vector<std::uint8_t> got;
    for (const Segment& segment : chain->second) {
      const std::size_t take = std::min<std::size_t>(segment.len, used.len - got.size());
      const std::size_t old = got.size();
      got.resize(old + take);
      FUZZ_CHECK(memory_.read(segment.addr, std::as_writable_bytes(std::span(got).subspan(old))).has_value(),
                 "receive buffer");
    }
    FUZZ_CHECK(std::equal(got.begin(), got.end(), typed_.begin() + static_cast<std::ptrdiff_t>(delivered_)),
               "receive chain {} holds other bytes than the next {} of the input", used.id, used.len);
  }

  // The guest output seen so far: whole transmit chains in order; at each point the next chain that
  // matches (the chains before it were abandoned by a reset).
  void check_output() {
    while (guest_seen_ < guest_output_.size()) {
      bool matched = false;
      while (tx_cursor_ < tx_sent_.size()) {
        const std::vector<std::uint8_t>& chain = tx_sent_[tx_cursor_++];
        if (chain.empty()) continue;
        if (chain.size() <= guest_output_.size() - guest_seen_ &&
            std::equal(chain.begin(), chain.end(), guest_output_.begin() + static_cast<std::ptrdiff_t>(guest_seen_))) {
          guest_seen_ += chain.size();
          matched = true;
          break;
        }
        // A chain sent only in part so far cannot happen: the device hands a whole chain to the sink
        // before returning to the harness.
      }
      FUZZ_CHECK(matched, "guest output at byte {} is not a transmitted chain", guest_seen_);
    }
  }

  [[nodiscard]] bool ever_scribbled() {
    ever_scribbled_ = ever_scribbled_ || scribbled_;
    return ever_scribbled_;
  }

  FuzzedDataProvider& input_;
  const GuestMemory memory_;
  microvm::fuzz::Hostility hostility_;
  boost::asio::io_context io_;  // before the console: outlives it
  std::array<Queue, kQueues> queues_{};
  microvm::fuzz::CheckedInterrupt interrupt_;
  ConsoleDevice console_;
  bool active_ = false;
  bool scribbled_ = false;  // this activation
  bool ever_scribbled_ = false;
  std::uint64_t acked_ = 0;
  std::uint16_t cols_ = 0, rows_ = 0;
  std::array<DriverQueue, kQueues> drivers_{};
  std::array<std::optional<microvm::fuzz::ChainPlacer>, kQueues> placers_;
  std::array<std::uint16_t, kQueues> seen_used_{};
  std::uint64_t cursor_ = kBuffersStart;
  std::map<std::uint16_t, std::vector<Segment>> rx_chains_;  // by head, this activation
  std::vector<std::vector<std::uint8_t>> tx_sent_;           // transmit chains offered, over the run
  std::size_t tx_cursor_ = 0;
  std::vector<std::uint8_t> typed_;                         // input the console accepted, over the run
  std::size_t delivered_ = 0;                               // of which this many went into receive chains
  bool in_emergency_write_ = false;                         // sink calls now come from write_config
  std::vector<std::vector<std::uint8_t>> emergency_calls_;  // sink calls made by emergency writes
  std::vector<std::uint8_t> guest_output_;                  // the other sink calls' bytes, in order
  std::size_t guest_seen_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  microvm::fuzz::silence_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  Harness harness(input);
  harness.run();
  return 0;
}
