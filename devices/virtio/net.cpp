#include "devices/virtio/net.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include "base/rate_limited_log.h"
#include "devices/virtio/config_space.h"
#include "devices/virtio/deferred_work.h"

namespace microvm::devices::virtio {

namespace {

constexpr std::uint64_t bit(unsigned n) {
  return 1ULL << n;
}

constexpr std::uint64_t kBaseFeatures = bit(kFeatureVersion1) | bit(kFeatureEventIdx) | bit(kFeatureIndirectDesc) |
                                        bit(kNetFeatureMac) | bit(kNetFeatureStatus) | bit(kNetFeatureMrgRxbuf);
constexpr std::uint64_t kOffloadFeatures =
    bit(kNetFeatureCsum) | bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestTso4) | bit(kNetFeatureGuestTso6) |
    bit(kNetFeatureGuestEcn) | bit(kNetFeatureHostTso4) | bit(kNetFeatureHostTso6) | bit(kNetFeatureHostEcn);

// §5.1.3.1: a feature the driver accepts only together with (one of) these.
struct FeatureDependency {
  unsigned feature;
  std::uint64_t requires_any;
  const char* names;  // for the error message
};
constexpr std::array kFeatureDependencies{
    FeatureDependency{kNetFeatureGuestTso4, bit(kNetFeatureGuestCsum), "GUEST_TSO4 requires GUEST_CSUM"},
    FeatureDependency{kNetFeatureGuestTso6, bit(kNetFeatureGuestCsum), "GUEST_TSO6 requires GUEST_CSUM"},
    FeatureDependency{kNetFeatureGuestUfo, bit(kNetFeatureGuestCsum), "GUEST_UFO requires GUEST_CSUM"},
    FeatureDependency{kNetFeatureGuestEcn, bit(kNetFeatureGuestTso4) | bit(kNetFeatureGuestTso6),
                      "GUEST_ECN requires GUEST_TSO4 or GUEST_TSO6"},
    FeatureDependency{kNetFeatureHostTso4, bit(kNetFeatureCsum), "HOST_TSO4 requires CSUM"},
    FeatureDependency{kNetFeatureHostTso6, bit(kNetFeatureCsum), "HOST_TSO6 requires CSUM"},
    FeatureDependency{kNetFeatureHostUfo, bit(kNetFeatureCsum), "HOST_UFO requires CSUM"},
    FeatureDependency{kNetFeatureHostEcn, bit(kNetFeatureHostTso4) | bit(kNetFeatureHostTso6),
                      "HOST_ECN requires HOST_TSO4 or HOST_TSO6"},
};

// What the guest accepts on receive, as the TAP's TUNSETOFFLOAD flags (<linux/if_tun.h>): the kernel
// then hands us only frames the driver can take (no partial checksums without GUEST_CSUM, say).
struct GuestOffload {
  unsigned feature;
  unsigned tun_flag;
};
constexpr std::array kGuestOffloads{
    GuestOffload{kNetFeatureGuestCsum, TUN_F_CSUM},
    GuestOffload{kNetFeatureGuestTso4, TUN_F_TSO4},
    GuestOffload{kNetFeatureGuestTso6, TUN_F_TSO6},
    GuestOffload{kNetFeatureGuestEcn, TUN_F_TSO_ECN},
};

void store_le16(std::span<std::uint8_t> out, std::uint16_t value) {
  out[0] = static_cast<std::uint8_t>(value);
  out[1] = static_cast<std::uint8_t>(value >> 8);
}

}  // namespace

// The state shared by the device (vCPU threads) and its handlers on the event loop. Handlers hold a
// shared_ptr to it, so it lives until the last one ran or was destroyed with the io_context.
class NetDevice::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(boost::asio::any_io_executor executor, UniqueFd backend, std::function<Result<void>(unsigned)> set_offloads)
      : executor_(std::move(executor)),
        backend_(executor_),
        set_offloads_(std::move(set_offloads)),
        rx_frame_(kNetMaxPacketSize + 1),  // one spare byte tells an oversized frame from a maximal one
        tx_frame_(kNetMaxPacketSize),
        tx_more_(executor_,
                 [this] {
                   std::lock_guard lock(mutex_);
                   process_tx_locked();
                 }),
        rx_more_(executor_, [this] {
          std::lock_guard lock(mutex_);
          pump_rx_locked();
        }) {
    if (!backend.valid()) {
      backend_error_ = "no backend fd";
      return;
    }
    const int flags = ::fcntl(backend.get(), F_GETFL);
    if (flags < 0 || ::fcntl(backend.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
      backend_error_ = fmt::format("cannot make the backend fd non-blocking: {}", errno_text(errno));
      return;
    }
    // Asio accepts fds epoll refuses (regular files, /dev/null) and fails only their waits: check first.
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event event{};
    event.events = EPOLLIN;
    if (!epoll.valid() || ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, backend.get(), &event) < 0) {
      backend_error_ =
          fmt::format("the backend fd cannot be polled ({}): it must be a TAP or a socket", errno_text(errno));
      return;
    }
    // Registering with the reactor here, off the loop, is safe: no handler can use backend_ yet.
    boost::system::error_code ec;
    backend_.assign(backend.get(), ec);
    if (ec) {
      backend_error_ = fmt::format("the backend fd cannot be polled: {}", ec.message());
      return;
    }
    [[maybe_unused]] const int owned_by_asio = backend.release();
  }

  ~Core() {
    tx_more_.cancel();
    rx_more_.cancel();
  }
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked, Interrupt& interrupt) {
    std::lock_guard lock(mutex_);
    if (backend_error_) return fail("virtio-net backend: {}", *backend_error_);
    if (queues.size() < kQueueCount)
      return fail("virtio-net needs {} queues, the transport has {}", kQueueCount, queues.size());
    for (const FeatureDependency& dependency : kFeatureDependencies) {
      if ((acked & bit(dependency.feature)) != 0 && (acked & dependency.requires_any) == 0) {
        return fail("the driver accepted an offload feature without its dependency (virtio 1.2 §5.1.3.1: {})",
                    dependency.names);
      }
    }
    unsigned tun_flags = 0;
    for (const GuestOffload& offload : kGuestOffloads) {
      if ((acked & bit(offload.feature)) != 0) tun_flags |= offload.tun_flag;
    }
    if (set_offloads_) {
      if (auto set = set_offloads_(tun_flags); !set)
        return std::unexpected(set.error().context("setting TAP offloads"));
    }
    drop_pending_locked();
    memory_ = &memory;
    rx_ = &queues[kRxQueue];
    tx_ = &queues[kTxQueue];
    interrupt_ = &interrupt;
    mrg_rxbuf_ = (acked & bit(kNetFeatureMrgRxbuf)) != 0;
    active_ = true;
    failed_ = false;
    ++epoch_;
    // Buffers the driver made available before DRIVER_OK, and frames already waiting in the backend.
    boost::asio::post(executor_, [self = shared_from_this(), epoch = epoch_] {
      std::lock_guard handler_lock(self->mutex_);
      if (epoch != self->epoch_ || !self->running_locked()) return;
      self->process_tx_locked();
      self->pump_rx_locked();
    });
    return {};
  }

  void notify(std::uint16_t queue) {
    std::uint64_t epoch;
    {
      std::lock_guard lock(mutex_);
      if (!running_locked()) return;
      epoch = epoch_;
    }
    // Inline when we already are on the loop (the ioeventfd path), else queued to it.
    boost::asio::dispatch(executor_, [self = shared_from_this(), queue, epoch] {
      std::lock_guard lock(self->mutex_);
      if (epoch != self->epoch_ || !self->running_locked()) return;
      if (queue == kTxQueue) {
        self->process_tx_locked();
      } else if (queue == kRxQueue && self->rx_len_ != 0) {
        self->pump_rx_locked();  // a frame was waiting for buffers; else the backend wait is armed
      }
    });
  }

  void reset() {
    std::lock_guard lock(mutex_);
    stop_locked();
  }

  // The device is going away: stop, and close the backend on the loop (which cancels the waits and so
  // releases the handlers' references). If the loop never runs again, destroying the io_context
  // destroys that handler and the Core with it.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      stop_locked();
      closed_ = true;
    }
    boost::asio::post(executor_, [self = shared_from_this()] {
      std::lock_guard lock(self->mutex_);
      boost::system::error_code ignored;
      self->backend_.close(ignored);
    });
  }

  std::uint16_t chains_held(std::uint16_t queue) {
    std::lock_guard lock(mutex_);
    if (!active_) return 0;
    if (queue == kRxQueue) return static_cast<std::uint16_t>(rx_chains_.size());
    if (queue == kTxQueue) return tx_pending_ ? 1 : 0;
    return 0;
  }

  Stats stats() const {
    return Stats{rx_frames_.load(std::memory_order_relaxed),  rx_bytes_.load(std::memory_order_relaxed),
                 tx_frames_.load(std::memory_order_relaxed),  tx_bytes_.load(std::memory_order_relaxed),
                 rx_dropped_.load(std::memory_order_relaxed), tx_dropped_.load(std::memory_order_relaxed)};
  }

 private:
  enum class ReadOutcome { kFrame, kDropped, kEmpty, kStopped };
  enum class Delivery { kDelivered, kDropped, kNoBuffers, kFailed };
  enum class WriteOutcome { kDone, kBlocked };

  bool running_locked() const { return active_ && !failed_ && !closed_; }

  void stop_locked() {
    ++epoch_;
    active_ = false;
    failed_ = false;
    drop_pending_locked();
    memory_ = nullptr;
    rx_ = tx_ = nullptr;
    interrupt_ = nullptr;
  }

  // Chains and frames in flight belong to the queues being reset: forget them (a frame read from
  // the backend under the old offload settings is not delivered to a driver that may not accept it).
  void drop_pending_locked() {
    if (rx_len_ != 0) count(rx_dropped_);
    rx_len_ = 0;
    rx_chains_.clear();
    if (tx_pending_) count(tx_dropped_);
    tx_pending_ = false;
  }

  static void count(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }

  // The backend going away is logged once per device; the guest's (or the network's) odd frames
  // through rate-limited logs (tx_log_, rx_log_), never once per frame.
  static void warn_once(bool& logged, const std::string& message) {
    if (std::exchange(logged, true)) return;
    spdlog::warn("virtio-net: {} (reported once)", message);
  }

  void fail_locked(const Error& error) {
    failed_ = true;
    interrupt_->signal_device_error(error);
  }

  void notify_driver_locked(Queue& queue, const char* name) {
    auto needed = queue.needs_notification(*memory_);
    if (!needed) {
      fail_locked(needed.error().context(name));
    } else if (*needed) {
      interrupt_->signal_used_buffers();
    }
  }

  // --- transmit (loop thread) ---

  void process_tx_locked() {
    if (!running_locked()) return;
    bool used = false;
    if (tx_pending_) {
      if (write_pending_locked() == WriteOutcome::kBlocked) return arm_write_locked();
      if (!complete_tx_locked(tx_head_)) return;
      used = true;
    }
    for (unsigned handled = 0;; ++handled) {
      if (handled == kNotifyBudget) {  // yield: the rest in a deferred run (deferred_work.h)
        tx_more_.schedule();
        break;
      }
      auto popped = tx_->pop(*memory_);
      if (!popped) return fail_locked(popped.error().context("transmit queue"));
      if (!*popped) break;
      const DescriptorChain& chain = **popped;
      for (const Segment& segment : chain.segments) {
        if (segment.device_writable) {
          return fail_locked(Error{fmt::format(
              "transmit queue: chain {} has a device-writable buffer (§5.1.6.2: transmit buffers are read-only)",
              chain.head)});
        }
      }
      const std::uint32_t len = chain.readable_len();
      if (len < kNetHeaderSize || len > kNetMaxPacketSize) {
        tx_log_.log("virtio-net: dropped a transmitted frame of {} bytes with its header (need {} to {})", len,
                    kNetHeaderSize, kNetMaxPacketSize);
        count(tx_dropped_);
        if (!complete_tx_locked(chain.head)) return;
        used = true;
        continue;
      }
      std::size_t offset = 0;
      for (const Segment& segment : chain.segments) {
        auto read =
            memory_->read(segment.addr, std::as_writable_bytes(std::span(tx_frame_).subspan(offset, segment.len)));
        if (!read) return fail_locked(read.error().context("transmit queue"));
        offset += segment.len;
      }
      tx_head_ = chain.head;
      tx_len_ = len;
      tx_pending_ = true;
      if (write_pending_locked() == WriteOutcome::kBlocked) {
        arm_write_locked();
        break;
      }
      if (!complete_tx_locked(tx_head_)) return;
      used = true;
    }
    if (used && running_locked()) notify_driver_locked(*tx_, "transmit queue");
  }

  // Writes the pending frame (header included). kBlocked keeps it for when the backend drains.
  WriteOutcome write_pending_locked() {
    for (;;) {
      if (backend_down_) {
        count(tx_dropped_);
        break;
      }
      const ssize_t n = ::write(backend_.native_handle(), tx_frame_.data(), tx_len_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return WriteOutcome::kBlocked;
      if (n == static_cast<ssize_t>(tx_len_)) {
        count(tx_frames_);
        count(tx_bytes_, tx_len_ - kNetHeaderSize);
      } else {
        // EINVAL for a header the kernel rejects (a bad gso_type, say), EIO while the TAP is down...
        if (n < 0) {
          tx_log_.log("virtio-net: the backend refused a transmitted frame: {}", errno_text(errno));
        } else {
          tx_log_.log("virtio-net: the backend took {} of {} bytes of a transmitted frame", n, tx_len_);
        }
        count(tx_dropped_);
      }
      break;
    }
    tx_pending_ = false;
    return WriteOutcome::kDone;
  }

  bool complete_tx_locked(std::uint16_t head) {
    if (auto added = tx_->add_used(*memory_, head, 0); !added) {
      fail_locked(added.error().context("transmit queue"));
      return false;
    }
    return true;
  }

  void arm_write_locked() {
    if (tx_wait_ || closed_) return;
    tx_wait_ = true;
    backend_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          std::lock_guard lock(self->mutex_);
                          self->tx_wait_ = false;
                          if (self->closed_ || ec == boost::asio::error::operation_aborted) return;
                          if (ec) self->backend_failed_locked(ec);
                          if (self->tx_pending_) self->process_tx_locked();
                        });
  }

  // --- receive (loop thread) ---

  // Moves frames from the backend into receive buffers. The budget counts chains returned and frames
  // dropped (a mergeable frame may fill many chains), kNotifyBudget per run; the rest is deferred.
  void pump_rx_locked() {
    if (!running_locked()) return;
    bool used = false;
    const std::uint16_t first_used = rx_->next_used();
    unsigned dropped = 0;
    while (running_locked() && !backend_down_) {
      if (rx_len_ == 0) {
        if (dropped + static_cast<std::uint16_t>(rx_->next_used() - first_used) >= kNotifyBudget) {
          rx_more_.schedule();  // yield: the rest in a deferred run (deferred_work.h)
          break;
        }
        const ReadOutcome read = read_frame_locked();
        if (read == ReadOutcome::kEmpty) {
          arm_read_locked();  // only after EAGAIN: the next readiness edge is new data
          break;
        }
        if (read == ReadOutcome::kStopped) break;
        if (read == ReadOutcome::kDropped) {
          ++dropped;
          continue;
        }
      }
      const Delivery delivery = deliver_locked(used);
      if (delivery == Delivery::kNoBuffers || delivery == Delivery::kFailed) break;
    }
    if (used && running_locked()) notify_driver_locked(*rx_, "receive queue");
  }

  ReadOutcome read_frame_locked() {
    for (;;) {
      const ssize_t n = ::read(backend_.native_handle(), rx_frame_.data(), rx_frame_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ReadOutcome::kEmpty;
      if (n <= 0) {
        backend_down_ = true;
        warn_once(logged_backend_, n == 0 ? std::string("the backend was closed; no more frames are received")
                                          : fmt::format("reading the backend failed ({}); no more frames are received",
                                                        errno_text(errno)));
        return ReadOutcome::kStopped;
      }
      const auto len = static_cast<std::size_t>(n);
      if (len < kNetHeaderSize || len > kNetMaxPacketSize) {
        rx_log_.log("virtio-net: dropped a received frame of {} bytes with its header (need {} to {})", len,
                    kNetHeaderSize, kNetMaxPacketSize);
        count(rx_dropped_);
        return ReadOutcome::kDropped;
      }
      rx_len_ = len;
      return ReadOutcome::kFrame;
    }
  }

  // Moves the pending frame into receive buffers (§5.1.6.4). Chains popped but not yet used stay
  // with the device (rx_chains_) until a frame fills them.
  Delivery deliver_locked(bool& used) {
    const std::size_t total = rx_len_;
    std::span<std::uint8_t> frame(rx_frame_.data(), total);
    std::size_t chains_needed = 1;
    if (mrg_rxbuf_) {
      std::uint64_t available = 0;
      for (const DescriptorChain& chain : rx_chains_) available += chain.writable_len();
      while (available < total) {
        if (rx_chains_.size() >= rx_->size()) {
          // We hold every descriptor the queue has and the frame still does not fit: the driver
          // cannot add more, so waiting would stall receive for good.
          rx_log_.log("virtio-net: dropped a received frame of {} bytes: the whole receive queue holds only {} bytes",
                      total, available);
          return drop_frame_locked();
        }
        auto taken = take_rx_chain_locked();
        if (!taken) {
          fail_locked(taken.error().context("receive queue"));
          return Delivery::kFailed;
        }
        if (!*taken) return Delivery::kNoBuffers;
        available += rx_chains_.back().writable_len();
      }
      chains_needed = 0;
      for (std::uint64_t covered = 0; covered < total; ++chains_needed)
        covered += rx_chains_[chains_needed].writable_len();
    } else {
      if (rx_chains_.empty()) {
        auto taken = take_rx_chain_locked();
        if (!taken) {
          fail_locked(taken.error().context("receive queue"));
          return Delivery::kFailed;
        }
        if (!*taken) return Delivery::kNoBuffers;
      }
      if (rx_chains_.front().writable_len() < total) {
        // §5.1.6.3: without MRG_RXBUF a frame must fit one buffer. The chain stays for a smaller frame.
        rx_log_.log(
            "virtio-net: dropped a received frame of {} bytes: the receive buffer holds {} (and MRG_RXBUF is not "
            "negotiated)",
            total, rx_chains_.front().writable_len());
        return drop_frame_locked();
      }
    }
    // §5.1.6.4: num_buffers is the number of buffers the frame spans (1 without MRG_RXBUF). It fits
    // 16 bits: each chain holds at least a header (checked when taken), or it is the only one.
    store_le16(frame.subspan(kNetNumBuffersOffset, 2), static_cast<std::uint16_t>(chains_needed));
    std::size_t offset = 0;
    for (std::size_t i = 0; i < chains_needed; ++i) {
      const DescriptorChain chain = std::move(rx_chains_.front());
      rx_chains_.pop_front();
      const std::size_t len = std::min<std::size_t>(chain.writable_len(), total - offset);
      auto written = write_chain_locked(chain, frame.subspan(offset, len));
      if (written) written = rx_->add_used(*memory_, chain.head, static_cast<std::uint32_t>(len));
      if (!written) {
        fail_locked(written.error().context("receive queue"));
        return Delivery::kFailed;
      }
      offset += len;
      used = true;
    }
    count(rx_frames_);
    count(rx_bytes_, total - kNetHeaderSize);
    rx_len_ = 0;
    return Delivery::kDelivered;
  }

  Delivery drop_frame_locked() {
    count(rx_dropped_);
    rx_len_ = 0;
    return Delivery::kDropped;
  }

  // Pops one receive chain into rx_chains_: false when the ring is empty; an error when the driver
  // broke the rules.
  Result<bool> take_rx_chain_locked() {
    auto popped = TRY(rx_->pop(*memory_));
    if (!popped) return false;
    for (const Segment& segment : popped->segments) {
      if (!segment.device_writable) {
        return fail("chain {} has a device-readable buffer (§5.1.6.3: receive buffers are write-only)", popped->head);
      }
    }
    if (mrg_rxbuf_ && popped->writable_len() < kNetHeaderSize) {
      return fail("chain {} holds {} bytes, less than the {}-byte header (§5.1.6.3.1 with MRG_RXBUF)", popped->head,
                  popped->writable_len(), kNetHeaderSize);
    }
    rx_chains_.push_back(std::move(*popped));
    return true;
  }

  Result<void> write_chain_locked(const DescriptorChain& chain, std::span<const std::uint8_t> bytes) {
    std::size_t offset = 0;
    for (const Segment& segment : chain.segments) {
      if (offset == bytes.size()) break;
      const std::size_t len = std::min<std::size_t>(segment.len, bytes.size() - offset);
      TRY_VOID(memory_->write(segment.addr, std::as_bytes(bytes.subspan(offset, len))));
      offset += len;
    }
    return {};
  }

  void arm_read_locked() {
    if (rx_wait_ || closed_) return;
    rx_wait_ = true;
    backend_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          std::lock_guard lock(self->mutex_);
                          self->rx_wait_ = false;
                          if (self->closed_ || ec == boost::asio::error::operation_aborted) return;
                          if (ec) return self->backend_failed_locked(ec);
                          // Readiness carries no state from before a reset: act on the current one.
                          self->pump_rx_locked();
                        });
  }

  void backend_failed_locked(const boost::system::error_code& ec) {
    backend_down_ = true;  // no more waits: a broken fd would report readiness forever
    warn_once(logged_backend_,
              fmt::format("waiting on the backend failed ({}); frames are no longer moved", ec.message()));
  }

  boost::asio::any_io_executor executor_;
  std::mutex mutex_;                               // everything below
  boost::asio::posix::stream_descriptor backend_;  // used on the loop only (and assigned in the constructor)
  std::optional<std::string> backend_error_;       // why backend_ is unusable, reported by activate
  std::function<Result<void>(unsigned)> set_offloads_;

  // The activation: set by activate, cleared by reset.
  std::uint64_t epoch_ = 0;  // changes on activate and reset: posted handlers of another epoch do nothing
  bool active_ = false;
  bool failed_ = false;  // signal_device_error sent: nothing more until reset
  bool closed_ = false;  // the device is being destroyed
  const GuestMemory* memory_ = nullptr;
  Queue* rx_ = nullptr;
  Queue* tx_ = nullptr;
  Interrupt* interrupt_ = nullptr;
  bool mrg_rxbuf_ = false;

  bool backend_down_ = false;  // EOF or an error: no more reads or writes (frames are dropped)
  bool rx_wait_ = false;       // a readability wait is in flight
  bool tx_wait_ = false;       // a writability wait is in flight

  std::vector<std::uint8_t> rx_frame_;  // the frame read from the backend, header first
  std::size_t rx_len_ = 0;              // its length; 0 when no frame is pending
  std::deque<DescriptorChain> rx_chains_;

  std::vector<std::uint8_t> tx_frame_;
  std::size_t tx_len_ = 0;
  std::uint16_t tx_head_ = 0;
  bool tx_pending_ = false;  // tx_frame_ waits for the backend to become writable

  bool logged_backend_ = false;
  RateLimitedLog tx_log_;  // transmitted frames the device or the backend refused
  RateLimitedLog rx_log_;  // received frames that could not be delivered

  std::atomic<std::uint64_t> rx_frames_{0}, rx_bytes_{0}, tx_frames_{0}, tx_bytes_{0}, rx_dropped_{0}, tx_dropped_{0};

  // The rest of a transmit / receive pass that used up its budget. Last, and cancelled first in the
  // destructor: they run with raw `this` (a run queued when the Core goes away does nothing).
  DeferredWork tx_more_;
  DeferredWork rx_more_;
};

NetDevice::NetDevice(boost::asio::any_io_executor executor, UniqueFd backend, MacAddress mac, bool offloads,
                     std::function<Result<void>(unsigned)> set_offloads)
    : features_(kBaseFeatures | (offloads ? kOffloadFeatures : 0)),
      core_(std::make_shared<Core>(std::move(executor), std::move(backend), std::move(set_offloads))) {
  std::copy(mac.begin(), mac.end(), config_.begin() + kNetConfigMacOffset);
  store_le16(std::span(config_).subspan(kNetConfigStatusOffset, 2), kNetStatusLinkUp);
  store_le16(std::span(config_).subspan(kNetConfigMaxPairsOffset, 2), 1);  // one queue pair
  store_le16(std::span(config_).subspan(kNetConfigMtuOffset, 2), 0);
}

NetDevice::~NetDevice() {
  core_->shutdown();
}

NetDevice::Stats NetDevice::stats() const {
  return core_->stats();
}

NetDevice::State NetDevice::state() const {
  State out;
  std::copy_n(config_.begin() + kNetConfigMacOffset, kMacAddressBytes, out.mac.begin());
  return out;
}

void NetDevice::restore(const State& state) {
  std::copy(state.mac.begin(), state.mac.end(), config_.begin() + kNetConfigMacOffset);
}

std::uint16_t NetDevice::chains_held(std::uint16_t queue) {
  return core_->chains_held(queue);
}

void NetDevice::read_config(std::uint64_t offset, std::span<std::uint8_t> data) {
  // The layout never changes, so no lock; bytes outside it read as zero.
  read_config_window(std::as_bytes(std::span(config_)), offset, data);
}

void NetDevice::write_config(std::uint64_t, std::span<const std::uint8_t>) {
  // §5.1.4: every field is read-only for the driver (the MAC is set through the control queue, which
  // this device does not offer).
}

Result<void> NetDevice::activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                 Interrupt& interrupt) {
  return core_->activate(memory, queues, acked_features, interrupt);
}

void NetDevice::notify(std::uint16_t queue) {
  core_->notify(queue);
}

void NetDevice::reset() {
  core_->reset();
}

}  // namespace microvm::devices::virtio
