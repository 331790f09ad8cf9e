// virtio-blk (virtio 1.2 §5.2): a raw disk image (or host block device) as a guest block device.
// One request queue. notify() only takes chains from the queue (at most kNotifyBudget per call, the
// rest in a DeferredWork on the executor), checks them and hands them to the drive's worker thread;
// it never waits for the image. The worker serves requests one at a time, in the order the driver
// made them available (a read after a write sees the write), with pread/pwrite/fdatasync, and
// returns them to the used ring itself: one used buffer notification per batch of requests it found
// waiting (and at least one per kNotifyBudget).
//
// Why a worker thread and not io_uring (Firecracker's io_engine "Async"): the worker keeps the plain
// synchronous calls and their error handling, needs no new dependency, and works where io_uring does
// not: Docker's default seccomp profile and many hardened hosts refuse io_uring_setup, and
// kernel.io_uring_disabled turns it off. One drive's requests are serialized either way (the guest
// queues them in one ring); a second drive has its own worker, so a slow image only slows its drive.
//
// Reset and the worker. The worker touches guest memory and the queue only with the device mutex
// held and only for the activation its request came from (an epoch, bumped by reset and activate).
// Data goes through a bounded buffer (kBounceBytes) on the worker: a read is pread into it without
// the lock, then copied into the guest's buffer under the lock if the device was not reset
// meanwhile; a write is copied out of guest memory under the lock, then pwritten without it. So
// reset() never waits for the image, yet after it returns no byte of a request taken before it lands
// in guest memory and no completion (status, used ring, interrupt) is written. The destructor stops
// the worker and joins it (waiting for a read or write in progress).
//
// Every request is untrusted: its layout, lengths and sector range are checked, and a bad request
// completes with VIRTIO_BLK_S_IOERR (the guest's I/O fails, nothing else does). A chain the queue
// itself rejects is a broken driver: the device signals a device error and takes nothing more from the
// queue until reset() (requests taken before still complete). At most one ring's worth of requests
// (the queue size) is taken and not yet completed, however the driver moves its avail idx.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "base/unique_fd.h"
#include "devices/virtio/deferred_work.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace microvm::devices::virtio {

struct BlockOptions {
  std::string path;        // raw image file (or block device) on the host
  bool read_only = false;  // opened O_RDONLY; VIRTIO_BLK_F_RO offered; guest writes get VIRTIO_BLK_S_IOERR
  std::string id;          // serial returned by VIRTIO_BLK_T_GET_ID (at most 20 bytes); empty: the file's basename
};

// Counters since open(); a snapshot, each field read atomically.
struct BlockStats {
  std::uint64_t requests = 0;       // descriptor chains completed
  std::uint64_t read_bytes = 0;     // bytes read from the image into guest memory
  std::uint64_t written_bytes = 0;  // bytes written from guest memory to the image
  std::uint64_t flushes = 0;        // successful VIRTIO_BLK_T_FLUSH requests
  std::uint64_t errors = 0;         // requests completed with a status other than VIRTIO_BLK_S_OK, or none at all
};

class BlockDevice final : public VirtioDevice {
 public:
  static constexpr std::uint64_t kSectorSize = 512;              // §5.2.4: capacity and sector are in 512-byte units
  static constexpr std::size_t kIdBytes = 20;                    // §5.2.6: VIRTIO_BLK_ID_BYTES
  static constexpr std::uint32_t kSegMax = Queue::kMaxSize - 2;  // data segments: a chain minus header and status
  static constexpr std::size_t kBounceBytes = 128 * 1024;        // the worker's I/O buffer: bytes per pread/pwrite

  // Called on the worker, without any lock, before each pread, pwrite and fdatasync of the image.
  // Tests make the image slow with it; nothing sets it in production.
  using IoHook = std::function<void()>;

  // Opens the image and starts its worker; errors are one line naming the path ("cannot open drive
  // X: ..."). `executor` runs the rest of a notification that used up its budget.
  static Result<std::unique_ptr<BlockDevice>> open(const BlockOptions& options, boost::asio::any_io_executor executor,
                                                   IoHook before_io = {});
  // A drive without an image: capacity 0, so the guest's driver probes it without reading a block
  // (Linux checks every read against the capacity), and every request fails. attach() gives it one.
  // A warm-start template is booted with such drives (runtime/warm_start.h).
  static Result<std::unique_ptr<BlockDevice>> open_empty(const BlockOptions& options,
                                                         boost::asio::any_io_executor executor);
  // An empty drive only: opens `path` (in this drive's mode), takes its size and raises a
  // configuration change notification so the driver reads the new capacity. Call on the event loop
  // with the vCPUs paused or not yet started (nothing is in flight then).
  [[nodiscard]] Result<void> attach(const std::string& path);
  // Only open() and open_empty() make a Key: the device exists only with its worker thread started.
  class Key {
    Key() = default;
    friend class BlockDevice;
  };
  BlockDevice(Key, UniqueFd fd, std::string path, bool read_only, std::uint64_t capacity_sectors, std::string id,
              boost::asio::any_io_executor executor, IoHook before_io);
  ~BlockDevice() override;
  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;

  [[nodiscard]] std::uint64_t capacity_sectors() const { return capacity_sectors_.load(); }
  [[nodiscard]] bool read_only() const { return read_only_; }
  [[nodiscard]] BlockStats stats() const;  // thread-safe

  // Blocks until the worker has finished every request taken from the queue so far (completed it,
  // or dropped it after a reset). Chains still in the ring are not taken. For pausing and tests.
  void drain();

  // What a snapshot keeps of the drive: the size and mode the guest's driver read at probe time.
  // The image itself is not in the snapshot (like Firecracker's): the restored VM opens the same
  // path, which must still hold what the guest wrote.
  struct State {
    std::uint64_t capacity_sectors = 0;
    bool read_only = false;

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const { return State{capacity_sectors_.load(), read_only_}; }
  // Refuses an image of another size or mode than the snapshot's guest knows (it would read past
  // the end, or fail writes it thinks allowed).
  [[nodiscard]] Result<void> restore(const State& state) const;

  // VirtioDevice
  [[nodiscard]] std::uint32_t device_id() const override;
  [[nodiscard]] std::uint64_t features() const override;
  [[nodiscard]] std::size_t queue_count() const override { return 1; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  [[nodiscard]] Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                      Interrupt& interrupt) override;
  void notify(std::uint16_t queue) override;
  void reset() override;
  // Requests taken and not completed (the worker serves them in the order taken); 0 after drain().
  [[nodiscard]] std::uint16_t chains_held(std::uint16_t queue) override;

 private:
  // A contiguous part of one segment.
  struct Piece {
    GuestAddress addr;
    std::uint32_t len = 0;
  };
  // One descriptor chain, checked (§5.2.6), waiting for or on the worker.
  struct Request {
    enum class Op : std::uint8_t { kNone, kRead, kWrite, kFlush, kGetId };
    std::uint64_t epoch = 0;  // the activation it was taken in
    std::uint16_t head = 0;
    Op op = Op::kNone;                      // kNone: complete with `status` at once
    std::uint8_t status = 0;                // for kNone
    std::optional<GuestAddress> status_at;  // none: no status byte, returned unserved with used len 0
    std::uint64_t sector = 0;
    std::vector<Piece> data;  // kRead, kGetId: where the data goes; kWrite: where it comes from
  };

  // Bytes [from, from + len) of the chain's device-readable (or device-writable) buffers, as pieces
  // in order. The caller keeps from + len within the readable (writable) length.
  static std::vector<Piece> pieces_of(const DescriptorChain& chain, bool writable, std::uint64_t from,
                                      std::uint64_t len);
  static std::uint64_t total_len(const std::vector<Piece>& pieces);

  static Result<std::unique_ptr<BlockDevice>> start(std::unique_ptr<BlockDevice> device);

  // Event loop side.
  void pump_locked();  // takes chains from the queue, up to the budget and the in-flight bound
  [[nodiscard]] Result<Request> parse_locked(const DescriptorChain& chain);
  std::uint8_t reject(const Error& error);  // a request the guest got wrong: IOERR, rate-limited log

  // Worker side.
  void run_worker();
  // Serves `request` (dropping the lock around image I/O); nullopt when it was abandoned because
  // the device was reset, re-activated or destroyed meanwhile. `written`: bytes put in its buffers.
  std::optional<std::uint8_t> serve_locked(const Request& request, std::unique_lock<std::mutex>& lock,
                                           std::uint32_t& written);
  std::optional<std::uint8_t> read_locked(const Request& request, std::unique_lock<std::mutex>& lock,
                                          std::uint32_t& written);
  std::optional<std::uint8_t> write_locked(const Request& request, std::unique_lock<std::mutex>& lock);
  std::optional<std::uint8_t> flush_locked(const Request& request, std::unique_lock<std::mutex>& lock);
  std::uint8_t get_id_locked(const Request& request, std::uint32_t& written);
  void complete_locked(const Request& request, std::uint8_t status, std::uint32_t written);
  void signal_used_locked();
  std::uint8_t host_error(const Error& error);  // the host I/O failed: IOERR, rate-limited log

  [[nodiscard]] bool current_locked(const Request& request) const {
    return request.epoch == epoch_ && !stopping_ && queue_ != nullptr;
  }
  [[nodiscard]] bool live_locked() const { return queue_ != nullptr && !failed_; }
  void stop(const Error& error);  // the driver broke the queue: device error until reset()

  // Set once more by attach() (an empty drive, nothing in flight), else constant.
  UniqueFd fd_;
  std::string path_;
  const bool read_only_;
  std::atomic<std::uint64_t> capacity_sectors_;
  const std::array<std::uint8_t, kIdBytes> id_;  // NUL-padded (§5.2.6)
  const IoHook before_io_;
  std::unique_ptr<std::byte[]> bounce_;  // the worker's; kBounceBytes

  std::mutex mutex_;  // the fields below
  const GuestMemory* memory_ = nullptr;
  Queue* queue_ = nullptr;
  Interrupt* interrupt_ = nullptr;
  bool failed_ = false;              // signal_device_error() sent; nothing is taken from the queue until reset()
  std::uint64_t epoch_ = 0;          // bumped by activate(), reset() and the destructor
  std::deque<Request> pending_;      // taken from the queue, waiting for the worker
  std::size_t in_flight_ = 0;        // of this epoch: taken and not yet completed (pending or on the worker)
  bool stalled_ = false;             // pump stopped at the in-flight bound: the worker resumes it
  bool busy_ = false;                // the worker is serving a batch
  bool stopping_ = false;            // the destructor runs: the worker leaves
  std::condition_variable work_cv_;  // the worker waits for pending_ or stopping_
  std::condition_variable idle_cv_;  // drain() waits for the worker to be idle
  RateLimitedLog guest_log_{spdlog::level::warn};  // requests the guest got wrong
  RateLimitedLog host_log_{spdlog::level::err};    // image I/O that failed

  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> read_bytes_{0};
  std::atomic<std::uint64_t> written_bytes_{0};
  std::atomic<std::uint64_t> flushes_{0};
  std::atomic<std::uint64_t> errors_{0};

  DeferredWork more_;   // pump_locked() again, on the executor
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace microvm::devices::virtio
