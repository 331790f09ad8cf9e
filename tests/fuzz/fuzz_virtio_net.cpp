// Fuzzes virtio-net (devices/virtio/net.h, virtio 1.2 §5.1) in both directions, against a hostile
// driver and a hostile network at once. The backend is one end of a SOCK_SEQPACKET socketpair (one
// message = one frame behind its 12-byte vnet header, as a TAP opened with IFF_VNET_HDR) with small
// buffers, so back-pressure happens; the harness holds the other end and runs the device's
// io_context itself, so every step is deterministic. The input plays, for a bounded number of rounds:
//   - the driver: negotiates features (any subset, offload dependencies broken too; the TAP's
//     TUNSETOFFLOAD may fail), sets the queues up (any size, EVENT_IDX, INDIRECT_DESC, ring positions
//     near the 16-bit wrap), offers transmit chains (a header and a frame split over segments, direct,
//     indirect or mixed; too short, too long) and receive chains (writable segments of any length),
//     twists descriptors and avail entries, scribbles on the rings, notifies, resets;
//   - the network: sends frames of any length and content (empty, shorter than the header, longer
//     than the largest frame), and reads the device's output or stops reading.
// After every step, with the loop run until it has nothing ready (a busy loop fails the input):
//   - nothing crashed (ASan/UBSan), the interrupt contract held (no notification after a device
//     error, one device error per activation), the configuration space still holds the MAC;
//   - a device that failed or was reset returns nothing and signals nothing; the transmit counters
//     add up with the chains returned;
// and when the driver is not hostile (no twists, no scribbles in this activation: its buffers then
// cannot overlap the rings, so the used entries are the device's):
//   - used entries name descriptors inside the ring, transmit ones with len 0;
//   - every frame on the backend is one the driver transmitted, whole and in order (some dropped);
//   - every frame the driver receives, reassembled from its buffers by num_buffers (MRG_RXBUF), is
//     one the network sent, whole (num_buffers set) and in order (some dropped), and no used len
//     exceeds the chain's writable length.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "base/unique_fd.h"
#include "devices/virtio/net.h"
#include "devices/virtio/queue.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::Error;
using microvm::GuestAddress;
using microvm::GuestMemory;
using microvm::Result;
using microvm::UniqueFd;
using microvm::devices::virtio::kDescFlagWrite;
using microvm::devices::virtio::kFeatureEventIdx;
using microvm::devices::virtio::kFeatureIndirectDesc;
using microvm::devices::virtio::kFeatureVersion1;
using microvm::devices::virtio::kNetConfigMacOffset;
using microvm::devices::virtio::kNetFeatureMrgRxbuf;
using microvm::devices::virtio::kNetHeaderSize;
using microvm::devices::virtio::kNetMaxPacketSize;
using microvm::devices::virtio::kNetNumBuffersOffset;
using microvm::devices::virtio::MacAddress;
using microvm::devices::virtio::NetDevice;
using microvm::devices::virtio::Queue;
using microvm::devices::virtio::Segment;
using microvm::devices::virtio::VirtqAvailHeader;
using microvm::devices::virtio::VirtqDesc;
using microvm::devices::virtio::VirtqUsedElem;
using microvm::fuzz::DriverQueue;
using microvm::fuzz::kLowSize;

constexpr MacAddress kMac{0x02, 0x4d, 0x56, 0x00, 0x00, 0x01};
constexpr std::size_t kQueues = NetDevice::kQueueCount;
// Guest memory (fuzz_support.h's low region): the two queues' rings, their indirect tables, buffers.
constexpr std::array kLayouts{microvm::fuzz::queue_layout(NetDevice::kRxQueue),
                              microvm::fuzz::queue_layout(NetDevice::kTxQueue)};
constexpr std::array<std::uint64_t, kQueues + 1> kTables{0x6000, 0x7000,
                                                         0x8000};  // queue i: [kTables[i], kTables[i+1])
constexpr std::uint64_t kBuffersStart = 0x8000;
constexpr std::uint64_t kBuffersEnd = kLowSize;

constexpr int kMaxRounds = 24;
constexpr int kMaxChainsPerRound = 8;
constexpr int kMaxSegments = 3;
constexpr std::uint32_t kMaxRxSegment = 1024;
constexpr std::uint32_t kMaxTxPayload = 600;
constexpr std::size_t kMaxNetworkFrame = 3000;
constexpr int kMaxFramesPerRound = 6;
constexpr int kSocketBuffer = 48 * 1024;             // small: the device meets a full backend
constexpr std::size_t kMaxHandlersPerStep = 20'000;  // more means the device keeps re-posting itself
constexpr std::size_t kMaxConfigAccess = 16;

// The buffers of one activation: carved in order, never reused (a chain may wait for many rounds),
// so that, unless the driver twists them, no two buffers overlap.
class Buffers {
 public:
  void clear() { cursor_ = kBuffersStart; }
  std::optional<std::uint64_t> allocate(std::uint64_t len) {
    if (len > kBuffersEnd - cursor_) return std::nullopt;
    const std::uint64_t addr = cursor_;
    cursor_ += len;
    return addr;
  }

 private:
  std::uint64_t cursor_ = kBuffersStart;
};

class Harness {
 public:
  explicit Harness(FuzzedDataProvider& input)
      : input_(input), memory_(microvm::fuzz::make_memory({})), hostility_(input, input.ConsumeIntegralInRange(0, 4)) {
    int fds[2];
    FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0, "socketpair: {}",
               microvm::errno_text(errno));
    UniqueFd backend(fds[0]);
    peer_ = UniqueFd(fds[1]);
    for (int fd : {fds[0], fds[1]}) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof(kSocketBuffer));
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof(kSocketBuffer));
    }
    // Frames larger than the largest the device takes must get through the socket to be refused there.
    const int big = 4 * static_cast<int>(kNetMaxPacketSize);
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    const bool offloads = input_.ConsumeBool();
    device_.emplace(io_.get_executor(), std::move(backend), kMac, offloads, [this](unsigned) -> Result<void> {
      if (refuse_offloads_) return microvm::fail("TUNSETOFFLOAD refused");
      return {};
    });
    activate();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run() {
    for (int round = 0; round < kMaxRounds && input_.remaining_bytes() > 0; ++round) {
      switch (input_.ConsumeIntegralInRange(0, 15)) {
        case 0:
        case 1:
        case 2: offer_tx(); break;
        case 3:
        case 4:
        case 5: offer_rx(); break;
        case 6:
        case 7:
        case 8: send_frames(); break;
        case 9: receive_frames(); break;
        case 10: device_->notify(input_.ConsumeIntegralInRange<std::uint16_t>(0, 3)); break;  // 2, 3: no such queue
        case 11:
          reset();
          if (input_.ConsumeBool()) activate();
          break;
        case 12: scribble(); break;
        case 13: config_access(); break;
        default:
          device_->notify(NetDevice::kRxQueue);
          device_->notify(NetDevice::kTxQueue);
          break;
      }
      step();
    }
    receive_frames();
    step();
  }

 private:
  // The driver's bring-up (§3.1.1, §5.1.5): features, both queues, DRIVER_OK.
  void activate() {
    const bool event_idx = input_.ConsumeBool();
    const bool indirect = input_.ConsumeBool();
    for (std::size_t q = 0; q < kQueues; ++q) {
      drivers_[q] = microvm::fuzz::set_up_queue(input_, memory_, queues_[q], kLayouts[q], event_idx, indirect);
      placers_[q].emplace(input_, memory_, hostility_, kTables[q], kTables[q + 1]);
      placers_[q]->start_round();  // once per activation: descriptors are never reused
      seen_used_[q] = queues_[q].next_used();
    }
    buffers_.clear();
    rx_chains_.clear();
    partial_.reset();
    scribbled_ = false;
    refuse_offloads_ = input_.ConsumeIntegralInRange(0, 15) == 0;
    // Any subset of what the device offers (offload dependencies broken too), plus the queue features.
    const std::uint64_t acked = (device_->features() & input_.ConsumeIntegral<std::uint64_t>() &
                                 ~((1ULL << kFeatureEventIdx) | (1ULL << kFeatureIndirectDesc))) |
                                (1ULL << kFeatureVersion1) | (event_idx ? 1ULL << kFeatureEventIdx : 0) |
                                (indirect ? 1ULL << kFeatureIndirectDesc : 0);
    mrg_rxbuf_ = (acked & (1ULL << kNetFeatureMrgRxbuf)) != 0;
    active_ = device_->activate(memory_, queues_, acked, interrupt_).has_value();
    FUZZ_CHECK(!interrupt_.failed, "a device error during activation");
  }

  void reset() {
    device_->reset();
    for (Queue& queue : queues_) queue.reset();
    interrupt_.failed = false;
    active_ = false;
    ++resets_;
  }

  [[nodiscard]] bool clean() const { return hostility_.level() == 0 && !scribbled_; }

  // A transmit chain (§5.1.6.2): the header and the frame, device-readable, split over segments.
  void offer_tx() {
    DriverQueue& driver = drivers_[NetDevice::kTxQueue];
    const int chains = input_.ConsumeIntegralInRange(1, kMaxChainsPerRound);
    for (int c = 0; c < chains; ++c) {
      std::size_t len = kNetHeaderSize + input_.ConsumeIntegralInRange<std::size_t>(0, kMaxTxPayload);
      if (input_.ConsumeIntegralInRange(0, 7) == 0) len = input_.ConsumeIntegralInRange<std::size_t>(0, kNetHeaderSize);
      auto addr = buffers_.allocate(len);
      if (!addr) return;
      std::vector<std::uint8_t> frame(len);
      const auto seed = input_.ConsumeIntegral<std::uint8_t>();
      for (std::size_t i = 0; i < len; ++i) frame[i] = static_cast<std::uint8_t>(seed + i * 13 + (i >> 8));
      FUZZ_CHECK(memory_.write(GuestAddress(*addr), std::as_bytes(std::span(frame))).has_value(), "tx frame");
      auto descs = split(*addr, len, false);
      if (descs.empty()) descs.push_back(VirtqDesc{*addr, 0, 0, 0});
      auto head = placers_[NetDevice::kTxQueue]->place(driver, std::move(descs));
      if (!head) return;
      microvm::fuzz::offer(memory_, driver, hostility_.twist() ? input_.ConsumeIntegral<std::uint16_t>() : *head);
      tx_expected_.push_back(std::move(frame));
    }
    microvm::fuzz::publish(memory_, driver);
    if (input_.ConsumeBool()) device_->notify(NetDevice::kTxQueue);
  }

  // A receive chain (§5.1.6.3): device-writable segments only.
  void offer_rx() {
    DriverQueue& driver = drivers_[NetDevice::kRxQueue];
    const int chains = input_.ConsumeIntegralInRange(1, kMaxChainsPerRound);
    for (int c = 0; c < chains; ++c) {
      const std::uint32_t len = input_.ConsumeIntegralInRange<std::uint32_t>(0, kMaxSegments * kMaxRxSegment);
      auto addr = buffers_.allocate(len);
      if (!addr) return;
      auto descs = split(*addr, len, true);
      if (descs.empty()) descs.push_back(VirtqDesc{*addr, 0, kDescFlagWrite, 0});
      std::vector<Segment> segments;
      for (const VirtqDesc& desc : descs) segments.push_back(Segment{GuestAddress(desc.addr), desc.len, true});
      auto head = placers_[NetDevice::kRxQueue]->place(driver, std::move(descs));
      if (!head) return;
      rx_chains_[*head] = std::move(segments);
      microvm::fuzz::offer(memory_, driver, hostility_.twist() ? input_.ConsumeIntegral<std::uint16_t>() : *head);
    }
    microvm::fuzz::publish(memory_, driver);
    if (input_.ConsumeBool()) device_->notify(NetDevice::kRxQueue);
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

  // The network sends frames of any length: the usual, tiny, empty, or past the largest.
  void send_frames() {
    const int frames = input_.ConsumeIntegralInRange(1, kMaxFramesPerRound);
    for (int f = 0; f < frames; ++f) {
      std::size_t len = input_.ConsumeIntegralInRange<std::size_t>(kNetHeaderSize, kMaxNetworkFrame);
      switch (input_.ConsumeIntegralInRange(0, 15)) {
        case 0: len = input_.ConsumeIntegralInRange<std::size_t>(1, kNetHeaderSize); break;
        case 1: len = kNetMaxPacketSize + input_.ConsumeIntegralInRange<std::size_t>(0, 1); break;
        default: break;
      }
      std::vector<std::uint8_t> frame(len);
      const auto header = input_.ConsumeBytes<std::uint8_t>(std::min(len, kNetHeaderSize));
      std::ranges::copy(header, frame.begin());
      const auto seed = input_.ConsumeIntegral<std::uint8_t>();
      for (std::size_t i = kNetHeaderSize; i < len; ++i) frame[i] = static_cast<std::uint8_t>(seed ^ i ^ (i >> 7));
      const ssize_t n = ::send(peer_.get(), frame.data(), frame.size(), MSG_DONTWAIT);
      if (n != static_cast<ssize_t>(frame.size())) return;  // the backend is full: the network waits
      if (len >= kNetHeaderSize && len <= kNetMaxPacketSize) rx_sent_.push_back(std::move(frame));
    }
  }

  // The network reads what the device transmitted (or some of it).
  void receive_frames() {
    std::vector<std::uint8_t> buffer(kNetMaxPacketSize + 16);
    for (;;) {
      const ssize_t n = ::recv(peer_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n <= 0) return;
      const std::span<const std::uint8_t> frame(buffer.data(), static_cast<std::size_t>(n));
      FUZZ_CHECK(frame.size() >= kNetHeaderSize && frame.size() <= kNetMaxPacketSize,
                 "the device transmitted a frame of {} bytes", frame.size());
      // Frames outlive activations in the socket: compared only while no driver was ever hostile.
      if (hostility_.level() != 0 || ever_scribbled_) continue;
      // A frame the driver transmitted, whole, and later than the previous one (earlier ones dropped).
      while (tx_cursor_ < tx_expected_.size() && !std::ranges::equal(tx_expected_[tx_cursor_], frame)) ++tx_cursor_;
      FUZZ_CHECK(tx_cursor_ < tx_expected_.size(), "the backend got a frame of {} bytes nobody transmitted in order",
                 frame.size());
      ++tx_cursor_;
    }
  }

  // A hostile driver writes anywhere in its rings and tables.
  void scribble() {
    scribbled_ = true;
    ever_scribbled_ = true;
    const int pokes = input_.ConsumeIntegralInRange(1, 16);
    for (int i = 0; i < pokes; ++i) {
      const auto addr = input_.ConsumeIntegralInRange<std::uint64_t>(0, kBuffersStart - sizeof(std::uint16_t));
      microvm::fuzz::poke(memory_, addr, input_.ConsumeIntegral<std::uint16_t>());
    }
  }

  void config_access() {
    std::array<std::uint8_t, kMaxConfigAccess> data{};
    const auto offset = input_.ConsumeBool() ? input_.ConsumeIntegralInRange<std::uint64_t>(0, 32)
                                             : input_.ConsumeIntegral<std::uint64_t>();
    const auto len = input_.ConsumeIntegralInRange<std::size_t>(0, data.size());
    if (input_.ConsumeBool()) {
      device_->write_config(offset, std::span(data).first(len));  // read-only: ignored
    } else {
      device_->read_config(offset, std::span(data).first(len));
    }
    std::array<std::uint8_t, 6> mac{};
    device_->read_config(kNetConfigMacOffset, mac);
    FUZZ_CHECK(std::ranges::equal(mac, kMac), "the MAC in the config space changed");
  }

  // Runs the loop until nothing is ready, then checks what the device did.
  void step() {
    std::size_t handlers = 0;
    io_.restart();
    while (io_.poll_one() != 0) {
      FUZZ_CHECK(++handlers < kMaxHandlersPerStep, "the event loop never runs out of ready handlers");
    }
    const int used_signals = interrupt_.used;
    check_used();
    const auto stats = device_->stats();
    FUZZ_CHECK(tx_used_ <= stats.tx_frames + stats.tx_dropped, "{} transmit chains returned, {} frames sent or dropped",
               tx_used_, stats.tx_frames + stats.tx_dropped);
    FUZZ_CHECK(stats.tx_frames + stats.tx_dropped <= tx_used_ + resets_, "frames counted that no chain carried");
    if (!active_ || interrupt_.failed) {
      // Stopped: another notification or frame must not move anything.
      device_->notify(NetDevice::kRxQueue);
      device_->notify(NetDevice::kTxQueue);
      io_.restart();
      while (io_.poll_one() != 0) FUZZ_CHECK(++handlers < kMaxHandlersPerStep, "busy while stopped");
      for (std::size_t q = 0; q < kQueues; ++q) {
        FUZZ_CHECK(!queues_[q].ready() || queues_[q].next_used() == seen_used_[q], "a stopped device used queue {}", q);
      }
      FUZZ_CHECK(interrupt_.used == used_signals, "a stopped device interrupted");
    }
  }

  // The used entries added since the last step.
  void check_used() {
    for (std::size_t q = 0; q < kQueues; ++q) {
      if (!queues_[q].ready()) continue;
      const DriverQueue& driver = drivers_[q];
      for (; seen_used_[q] != queues_[q].next_used(); ++seen_used_[q]) {
        if (q == NetDevice::kTxQueue) ++tx_used_;
        // A hostile driver's buffers may overlap its used ring: then the entries are not the device's.
        if (!clean()) continue;
        const VirtqUsedElem used = microvm::fuzz::used_elem(memory_, driver, seen_used_[q]);
        FUZZ_CHECK(used.id < driver.size, "queue {}: used entry names descriptor {} of {}", q, used.id, driver.size);
        if (q == NetDevice::kTxQueue) {
          FUZZ_CHECK(used.len == 0, "transmit chain returned with len {}", used.len);
        } else {
          check_rx(used);
        }
      }
    }
  }

  // One receive chain came back: reassemble frames (§5.1.6.4) and match them with what was sent.
  void check_rx(const VirtqUsedElem& used) {
    const auto chain = rx_chains_.find(static_cast<std::uint16_t>(used.id));
    FUZZ_CHECK(chain != rx_chains_.end(), "receive chain {} was never offered", used.id);
    std::uint64_t writable = 0;
    for (const Segment& segment : chain->second) writable += segment.len;
    FUZZ_CHECK(used.len <= writable, "used len {} for a receive chain of {} bytes", used.len, writable);
    std::vector<std::uint8_t> bytes;
    for (const Segment& segment : chain->second) {
      const std::size_t take = std::min<std::size_t>(segment.len, used.len - bytes.size());
      const std::size_t old = bytes.size();
      bytes.resize(old + take);
      FUZZ_CHECK(memory_.read(segment.addr, std::as_writable_bytes(std::span(bytes).subspan(old))).has_value(),
                 "receive buffer");
      if (bytes.size() == used.len) break;
    }
    if (!partial_) {
      FUZZ_CHECK(bytes.size() >= kNetHeaderSize, "a received frame starts with {} bytes, less than its header",
                 bytes.size());
      const auto num_buffers =
          static_cast<std::uint16_t>(bytes[kNetNumBuffersOffset] | (bytes[kNetNumBuffersOffset + 1] << 8));
      FUZZ_CHECK(mrg_rxbuf_ ? num_buffers >= 1 : num_buffers == 1, "num_buffers {} (MRG_RXBUF {})", num_buffers,
                 mrg_rxbuf_);
      partial_ = Partial{num_buffers, {}};
    }
    partial_->bytes.insert(partial_->bytes.end(), bytes.begin(), bytes.end());
    if (--partial_->buffers_left != 0) return;
    std::vector<std::uint8_t> frame = std::move(partial_->bytes);
    partial_.reset();
    // The frame as sent, but for num_buffers; later than the previous one (dropped ones skipped).
    const auto same = [&](const std::vector<std::uint8_t>& sent) {
      if (sent.size() != frame.size()) return false;
      return std::equal(sent.begin(), sent.begin() + kNetNumBuffersOffset, frame.begin()) &&
             std::equal(sent.begin() + kNetNumBuffersOffset + 2, sent.end(), frame.begin() + kNetNumBuffersOffset + 2);
    };
    while (rx_cursor_ < rx_sent_.size() && !same(rx_sent_[rx_cursor_])) ++rx_cursor_;
    FUZZ_CHECK(rx_cursor_ < rx_sent_.size(),
               "the driver received a frame of {} bytes the network did not send in order", frame.size());
    ++rx_cursor_;
  }

  FuzzedDataProvider& input_;
  const GuestMemory memory_;
  microvm::fuzz::Hostility hostility_;
  boost::asio::io_context io_;  // before the device: outlives it
  UniqueFd peer_;               // the network's end of the backend
  std::array<Queue, kQueues> queues_{};
  microvm::fuzz::CheckedInterrupt interrupt_;
  std::optional<NetDevice> device_;
  bool active_ = false;
  bool refuse_offloads_ = false;
  bool mrg_rxbuf_ = false;
  bool scribbled_ = false;
  bool ever_scribbled_ = false;
  int resets_ = 0;
  std::uint64_t tx_used_ = 0;  // transmit chains returned, over all activations
  std::array<DriverQueue, kQueues> drivers_{};
  std::array<std::optional<microvm::fuzz::ChainPlacer>, kQueues> placers_;
  std::array<std::uint16_t, kQueues> seen_used_{};
  Buffers buffers_;
  std::map<std::uint16_t, std::vector<Segment>> rx_chains_;  // by head, this activation
  struct Partial {                                           // a frame spread over several receive chains
    std::uint16_t buffers_left;
    std::vector<std::uint8_t> bytes;
  };
  std::optional<Partial> partial_;
  std::vector<std::vector<std::uint8_t>> tx_expected_;  // transmitted by the driver, over the run
  std::size_t tx_cursor_ = 0;
  std::vector<std::vector<std::uint8_t>> rx_sent_;  // sent by the network and deliverable, over the run
  std::size_t rx_cursor_ = 0;
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
