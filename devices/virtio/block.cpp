#include "devices/virtio/block.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>
#include <vector>

#include "devices/virtio/config_space.h"

namespace microvm::devices::virtio {

// Layouts from <linux/virtio_blk.h> (§5.2.4 struct virtio_blk_config, §5.2.6 struct virtio_blk_req).
static_assert(offsetof(virtio_blk_config, capacity) == 0);
static_assert(offsetof(virtio_blk_config, seg_max) == 12);
static_assert(offsetof(virtio_blk_config, blk_size) == 20);
static_assert(sizeof(virtio_blk_config) >= 24);
static_assert(sizeof(virtio_blk_outhdr) == 16);  // le32 type, le32 reserved, le64 sector
static_assert(offsetof(virtio_blk_outhdr, sector) == 8);
static_assert(BlockDevice::kIdBytes == VIRTIO_BLK_ID_BYTES);

namespace {

constexpr std::size_t kHeaderBytes = sizeof(virtio_blk_outhdr);  // §5.2.6: the device-readable request header
constexpr std::size_t kStatusBytes = 1;                          // §5.2.6: u8 status, the last writable byte
// Linux transfers at most this much per read/write call (MAX_RW_COUNT); larger requests loop.
constexpr std::size_t kMaxIoChunk = 0x7ffff000;

// pread/pwrite of all of `bytes` at `offset`, across short transfers and EINTR. `done` counts the
// bytes transferred, also when it fails part-way.
template <bool kRead>
Result<void> transfer(int fd, std::span<std::byte> bytes, std::uint64_t offset, std::uint64_t& done) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t chunk = std::min(bytes.size() - at, kMaxIoChunk);
    const auto position = static_cast<off_t>(offset + at);
    const ssize_t n =
        kRead ? ::pread(fd, bytes.data() + at, chunk, position) : ::pwrite(fd, bytes.data() + at, chunk, position);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_host("{} {} bytes at offset {}: {}", kRead ? "reading" : "writing", chunk, offset + at,
                       errno_text(errno));
    }
    if (n == 0) {
      return fail_host("{} {} bytes at offset {}: {}", kRead ? "reading" : "writing", chunk, offset + at,
                       kRead ? "unexpected end of file (was the image truncated?)" : "no progress (is the disk full?)");
    }
    at += static_cast<std::size_t>(n);
    done += static_cast<std::uint64_t>(n);
  }
  return {};
}

// The sector range [sector, sector + len / 512) must be whole sectors inside the drive (overflow-safe).
Result<void> check_range(std::uint64_t sector, std::uint64_t len, std::uint64_t capacity) {
  if (len % BlockDevice::kSectorSize != 0) {
    return fail("data length {} is not a multiple of the {}-byte sector", len, BlockDevice::kSectorSize);
  }
  const std::uint64_t sectors = len / BlockDevice::kSectorSize;
  if (sector > capacity || sectors > capacity - sector) {
    return fail("sectors {}+{} are beyond the drive's {} sectors", sector, sectors, capacity);
  }
  return {};
}

std::array<std::uint8_t, BlockDevice::kIdBytes> pad_id(std::string_view id) {
  std::array<std::uint8_t, BlockDevice::kIdBytes> out{};
  std::memcpy(out.data(), id.data(), std::min(id.size(), out.size()));
  return out;
}

}  // namespace

namespace {

struct OpenedImage {
  UniqueFd fd;
  std::uint64_t size = 0;
};

// Opens the image at `path` the way the drive will use it; errors are one line naming the path.
Result<OpenedImage> open_image(const std::string& path, bool read_only) {
  if (path.empty()) return fail("drive path is empty: give the image file to attach");
  // O_NONBLOCK: opening a FIFO must not hang (it is refused below); cleared again for the I/O.
  const int access = read_only ? O_RDONLY : O_RDWR;
  UniqueFd fd(::open(path.c_str(), access | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    const int err = errno;
    if (err == EISDIR) return fail("drive {} is a directory, not an image file", path);
    if (!read_only && (err == EACCES || err == EROFS || err == ETXTBSY)) {
      return fail("cannot open drive {} for writing: {} (attach it read-only if the guest need not write)", path,
                  errno_text(err));
    }
    return fail("cannot open drive {}: {}", path, errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("cannot stat drive {}: {}", path, errno_text(errno));
  std::uint64_t size = 0;
  if (S_ISDIR(st.st_mode)) {
    return fail("drive {} is a directory, not an image file", path);
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<std::uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) {
      return fail("cannot get the size of block device {}: {}", path, errno_text(errno));
    }
  } else {
    return fail("drive {} is not a regular file or a block device", path);
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return fail("cannot set up drive {}: {}", path, errno_text(errno));
  }
  if (size % BlockDevice::kSectorSize != 0) {
    spdlog::warn("drive {} is {} bytes, not a multiple of {}: the guest does not see the last {} bytes", path, size,
                 BlockDevice::kSectorSize, size % BlockDevice::kSectorSize);
  }
  return OpenedImage{std::move(fd), size};
}

}  // namespace

Result<std::unique_ptr<BlockDevice>> BlockDevice::open(const BlockOptions& options,
                                                       boost::asio::any_io_executor executor, IoHook before_io) {
  if (options.id.size() > kIdBytes) {
    return fail("drive {}: id '{}' is {} bytes; virtio-blk ids are at most {} bytes", options.path, options.id,
                options.id.size(), kIdBytes);
  }
  OpenedImage image = TRY(open_image(options.path, options.read_only));
  std::string id = options.id;
  if (id.empty()) id = std::filesystem::path(options.path).filename().string().substr(0, kIdBytes);
  return start(std::make_unique<BlockDevice>(Key{}, std::move(image.fd), options.path, options.read_only,
                                             image.size / kSectorSize, std::move(id), std::move(executor),
                                             std::move(before_io)));
}

Result<std::unique_ptr<BlockDevice>> BlockDevice::open_empty(const BlockOptions& options,
                                                             boost::asio::any_io_executor executor) {
  if (options.id.size() > kIdBytes) {
    return fail("drive {}: id '{}' is {} bytes; virtio-blk ids are at most {} bytes", options.id, options.id,
                options.id.size(), kIdBytes);
  }
  return start(std::make_unique<BlockDevice>(Key{}, UniqueFd(), fmt::format("(empty drive {})", options.id),
                                             options.read_only, 0, options.id, std::move(executor), IoHook{}));
}

Result<std::unique_ptr<BlockDevice>> BlockDevice::start(std::unique_ptr<BlockDevice> device) {
  try {
    device->worker_ = std::thread([raw = device.get()] { raw->run_worker(); });
  } catch (const std::system_error& error) {
    return fail_host("drive {}: cannot start its I/O thread: {}", device->path_, error.what());
  }
  return device;
}

Result<void> BlockDevice::attach(const std::string& path) {
  if (fd_.valid()) return fail_state("drive {} already has an image: only an empty drive gets one attached", path_);
  OpenedImage image = TRY(open_image(path, read_only_));
  if (image.size < kSectorSize) return fail("drive {} is smaller than one {}-byte sector", path, kSectorSize);
  drain();  // nothing is on the worker (every request of an empty drive fails at once anyway)
  Interrupt* interrupt = nullptr;
  {
    std::lock_guard lock(mutex_);
    fd_ = std::move(image.fd);
    path_ = path;
    capacity_sectors_.store(image.size / kSectorSize);
    interrupt = interrupt_;
  }
  // §5.2.2/§4.2.2: the capacity is device configuration; a change is announced with a configuration
  // change notification (the transport bumps ConfigGeneration, Linux's virtio_blk re-reads the capacity).
  // Not activated yet: the driver reads the capacity when it probes.
  if (interrupt != nullptr) interrupt->signal_config_change();
  return {};
}

BlockDevice::BlockDevice(Key /*only open() and open_empty() have one*/, UniqueFd fd, std::string path, bool read_only,
                         std::uint64_t capacity_sectors, std::string id, boost::asio::any_io_executor executor,
                         IoHook before_io)
    : fd_(std::move(fd)),
      path_(std::move(path)),
      read_only_(read_only),
      capacity_sectors_(capacity_sectors),
      id_(pad_id(id)),
      before_io_(std::move(before_io)),
      bounce_(std::make_unique_for_overwrite<std::byte[]>(kBounceBytes)),  // untouched until used
      more_(std::move(executor), [this] {
        std::lock_guard lock(mutex_);
        pump_locked();
      }) {}

BlockDevice::~BlockDevice() {
  more_.cancel();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    ++epoch_;  // a request on the worker is abandoned as soon as its current read or write returns
    pending_.clear();
    // The transport (the Interrupt) may already be gone: nothing may reach it from here on.
    memory_ = nullptr;
    queue_ = nullptr;
    interrupt_ = nullptr;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

BlockStats BlockDevice::stats() const {
  return BlockStats{requests_.load(), read_bytes_.load(), written_bytes_.load(), flushes_.load(), errors_.load()};
}

void BlockDevice::drain() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return pending_.empty() && !busy_; });
}

std::uint32_t BlockDevice::device_id() const {
  return VIRTIO_ID_BLOCK;
}

std::uint64_t BlockDevice::features() const {
  std::uint64_t features = (1ULL << kFeatureVersion1) | (1ULL << kFeatureEventIdx) | (1ULL << kFeatureIndirectDesc) |
                           (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
                           (1ULL << VIRTIO_BLK_F_BLK_SIZE);
  if (read_only_) features |= 1ULL << VIRTIO_BLK_F_RO;
  return features;
}

void BlockDevice::read_config(std::uint64_t offset, std::span<std::uint8_t> data) {
  virtio_blk_config config{};  // fields of features not offered read as 0
  config.capacity = capacity_sectors_.load();
  config.seg_max = kSegMax;
  config.blk_size = static_cast<std::uint32_t>(kSectorSize);
  read_config_window(config, offset, data);
}

void BlockDevice::write_config(std::uint64_t, std::span<const std::uint8_t>) {
  // Nothing is writable: the only driver-writable field, wce, needs VIRTIO_BLK_F_CONFIG_WCE (not offered).
}

Result<void> BlockDevice::activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t,
                                   Interrupt& interrupt) {
  if (queues.size() != 1) return fail("virtio-blk has one queue, the transport configured {}", queues.size());
  std::lock_guard lock(mutex_);
  memory_ = &memory;
  queue_ = &queues[0];
  interrupt_ = &interrupt;
  failed_ = false;
  ++epoch_;
  pending_.clear();
  in_flight_ = 0;
  stalled_ = false;
  return {};
}

void BlockDevice::reset() {
  std::lock_guard lock(mutex_);
  // Requests taken so far belong to the old queue: the worker drops them, also one it is serving.
  ++epoch_;
  pending_.clear();
  in_flight_ = 0;
  stalled_ = false;
  memory_ = nullptr;
  queue_ = nullptr;
  interrupt_ = nullptr;
  failed_ = false;
}

Result<void> BlockDevice::restore(const State& state) const {
  if (state.capacity_sectors != capacity_sectors_.load()) {
    return fail("drive {}: the snapshot's guest knows it as {} sectors of {} bytes, the image now has {}", path_,
                state.capacity_sectors, kSectorSize, capacity_sectors_.load());
  }
  if (state.read_only != read_only_) {
    return fail("drive {}: the snapshot's guest has it {}, it is now opened {}", path_,
                state.read_only ? "read-only" : "read-write", read_only_ ? "read-only" : "read-write");
  }
  return {};
}

std::uint16_t BlockDevice::chains_held(std::uint16_t queue) {
  std::lock_guard lock(mutex_);
  return queue == 0 ? static_cast<std::uint16_t>(in_flight_) : 0;
}

void BlockDevice::notify(std::uint16_t queue) {
  std::lock_guard lock(mutex_);
  if (queue != 0) return;
  pump_locked();
}

void BlockDevice::pump_locked() {
  if (!live_locked()) return;
  bool took = false;
  for (unsigned taken = 0;; ++taken) {
    // A driver that re-offers chains while the image is slow cannot make the device hold more than
    // a ring's worth: the worker resumes the pump as requests complete.
    if (in_flight_ >= queue_->size()) {
      stalled_ = true;
      break;
    }
    if (taken == kNotifyBudget) {  // yield: the rest in a deferred run
      more_.schedule();
      break;
    }
    // With EVENT_IDX, pop() of the empty ring is what asks for the next notification.
    auto popped = queue_->pop(*memory_);
    if (!popped) {
      stop(popped.error());
      break;
    }
    if (!popped->has_value()) break;
    auto request = parse_locked(**popped);
    if (!request) {
      stop(request.error());
      break;
    }
    pending_.push_back(std::move(*request));
    ++in_flight_;
    took = true;
  }
  if (took) work_cv_.notify_one();
}

void BlockDevice::stop(const Error& error) {
  if (std::exchange(failed_, true)) return;  // one device error per activation
  interrupt_->signal_device_error(error.context(fmt::format("drive {}", path_)));
}

std::vector<BlockDevice::Piece> BlockDevice::pieces_of(const DescriptorChain& chain, bool writable, std::uint64_t from,
                                                       std::uint64_t len) {
  std::vector<Piece> pieces;
  std::uint64_t position = 0;  // offset of `segment` within this direction's bytes
  for (const Segment& segment : chain.segments) {
    if (segment.device_writable != writable) continue;
    const std::uint64_t begin = std::max(from, position);
    const std::uint64_t end = std::min(from + len, position + segment.len);
    if (begin < end) {
      pieces.push_back(
          Piece{GuestAddress(segment.addr.value + (begin - position)), static_cast<std::uint32_t>(end - begin)});
    }
    position += segment.len;
  }
  return pieces;
}

std::uint64_t BlockDevice::total_len(const std::vector<Piece>& pieces) {
  std::uint64_t total = 0;
  for (const Piece& piece : pieces) total += piece.len;
  return total;
}

Result<BlockDevice::Request> BlockDevice::parse_locked(const DescriptorChain& chain) {
  Request request;
  request.epoch = epoch_;
  request.head = chain.head;
  const std::uint32_t writable = chain.writable_len();
  if (writable < kStatusBytes) {
    // Nowhere to put the status: the driver cannot learn the outcome, so nothing is done.
    guest_log_.log("drive {}: request (descriptor {}) has no device-writable status byte; returned unserved", path_,
                   chain.head);
    return request;
  }
  request.status_at = pieces_of(chain, true, writable - kStatusBytes, kStatusBytes).front().addr;
  const std::uint32_t readable = chain.readable_len();
  if (readable < kHeaderBytes) {
    request.status =
        reject(Error{fmt::format("request header is {} device-readable bytes, need {}", readable, kHeaderBytes)});
    return request;
  }
  // The header may be split over several buffers: gather it.
  std::array<std::byte, kHeaderBytes> raw{};
  std::size_t at = 0;
  for (const Piece& piece : pieces_of(chain, false, 0, kHeaderBytes)) {
    TRY_VOID(memory_->read(piece.addr, std::span(raw).subspan(at, piece.len)));
    at += piece.len;
  }
  virtio_blk_outhdr header;
  std::memcpy(&header, raw.data(), sizeof(header));
  request.sector = header.sector;
  std::vector<Piece> out_data = pieces_of(chain, false, kHeaderBytes, readable - kHeaderBytes);
  std::vector<Piece> in_data = pieces_of(chain, true, 0, writable - kStatusBytes);
  switch (header.type) {
    case VIRTIO_BLK_T_IN: {
      if (!out_data.empty()) {
        request.status =
            reject(Error{fmt::format("read of sector {} has {} bytes of device-readable data (data must be writable)",
                                     header.sector, total_len(out_data))});
        return request;
      }
      if (auto range = check_range(header.sector, total_len(in_data), capacity_sectors_.load()); !range) {
        request.status = reject(range.error());
        return request;
      }
      request.op = Request::Op::kRead;
      request.data = std::move(in_data);
      return request;
    }
    case VIRTIO_BLK_T_OUT: {
      // §5.2.6.2: on a read-only device a write fails and writes nothing.
      if (read_only_) {
        request.status = reject(Error{fmt::format("write to sector {} of a read-only drive", header.sector)});
        return request;
      }
      if (!in_data.empty()) {
        request.status =
            reject(Error{fmt::format("write to sector {} has {} bytes of device-writable data (data must be readable)",
                                     header.sector, total_len(in_data))});
        return request;
      }
      if (auto range = check_range(header.sector, total_len(out_data), capacity_sectors_.load()); !range) {
        request.status = reject(range.error());
        return request;
      }
      request.op = Request::Op::kWrite;
      request.data = std::move(out_data);
      return request;
    }
    case VIRTIO_BLK_T_FLUSH: request.op = Request::Op::kFlush; return request;
    case VIRTIO_BLK_T_GET_ID:
      if (in_data.empty()) {
        request.status = reject(Error{"GET_ID request has no device-writable buffer for the id"});
        return request;
      }
      request.op = Request::Op::kGetId;
      request.data = std::move(in_data);
      return request;
    default: request.status = VIRTIO_BLK_S_UNSUPP; return request;  // §5.2.6: a request the device does not support
  }
}

std::uint8_t BlockDevice::reject(const Error& error) {
  guest_log_.log("drive {}: guest request failed with an I/O error: {}", path_, error.message);
  return VIRTIO_BLK_S_IOERR;
}

std::uint8_t BlockDevice::host_error(const Error& error) {
  host_log_.log("drive {}: {}; the guest sees an I/O error", path_, error.message);
  return VIRTIO_BLK_S_IOERR;
}

void BlockDevice::run_worker() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    busy_ = true;
    unsigned unsignalled = 0;
    while (!pending_.empty() && !stopping_) {
      const Request request = std::move(pending_.front());
      pending_.pop_front();
      if (!current_locked(request)) continue;
      std::uint32_t written = 0;
      const std::optional<std::uint8_t> status = serve_locked(request, lock, written);
      if (!status || !current_locked(request)) continue;  // reset meanwhile: no completion
      complete_locked(request, *status, written);
      // One notification per batch the worker found waiting, and at least one per budget.
      if (++unsignalled == kNotifyBudget) {
        signal_used_locked();
        unsignalled = 0;
      }
    }
    if (unsignalled != 0) signal_used_locked();
    if (stalled_ && live_locked()) {
      stalled_ = false;
      more_.schedule();  // room in flight again: take what the driver offered meanwhile
    }
    busy_ = false;
    idle_cv_.notify_all();
  }
}

std::optional<std::uint8_t> BlockDevice::serve_locked(const Request& request, std::unique_lock<std::mutex>& lock,
                                                      std::uint32_t& written) {
  switch (request.op) {
    case Request::Op::kNone: return request.status;
    case Request::Op::kRead: return read_locked(request, lock, written);
    case Request::Op::kWrite: return write_locked(request, lock);
    case Request::Op::kFlush: return flush_locked(request, lock);
    case Request::Op::kGetId: return get_id_locked(request, written);
  }
  return VIRTIO_BLK_S_UNSUPP;
}

std::optional<std::uint8_t> BlockDevice::read_locked(const Request& request, std::unique_lock<std::mutex>& lock,
                                                     std::uint32_t& written) {
  std::uint64_t offset = request.sector * kSectorSize;  // check_range: no overflow
  for (const Piece& piece : request.data) {
    for (std::uint32_t done = 0; done < piece.len;) {
      const std::size_t chunk = std::min<std::size_t>(piece.len - done, kBounceBytes);
      std::uint64_t got = 0;
      lock.unlock();
      if (before_io_) before_io_();
      auto read = transfer<true>(fd_.get(), std::span(bounce_.get(), chunk), offset, got);
      lock.lock();
      if (!current_locked(request)) return std::nullopt;  // not a byte into the old queue's buffers
      // What was read reaches guest memory, also when the read failed part-way.
      if (got != 0) {
        auto copied = memory_->write(GuestAddress(piece.addr.value + done), std::span(bounce_.get(), got));
        if (!copied) return reject(copied.error());
        written += static_cast<std::uint32_t>(got);
        read_bytes_.fetch_add(got, std::memory_order_relaxed);
      }
      if (!read) return host_error(read.error());
      done += static_cast<std::uint32_t>(chunk);
      offset += chunk;
    }
  }
  return VIRTIO_BLK_S_OK;
}

std::optional<std::uint8_t> BlockDevice::write_locked(const Request& request, std::unique_lock<std::mutex>& lock) {
  std::uint64_t offset = request.sector * kSectorSize;  // check_range: no overflow
  for (const Piece& piece : request.data) {
    for (std::uint32_t done = 0; done < piece.len;) {
      const std::size_t chunk = std::min<std::size_t>(piece.len - done, kBounceBytes);
      // Copied out under the lock, for the current activation only (the caller checked it).
      auto copied = memory_->read(GuestAddress(piece.addr.value + done), std::span(bounce_.get(), chunk));
      if (!copied) return reject(copied.error());
      std::uint64_t put = 0;
      lock.unlock();
      if (before_io_) before_io_();
      auto wrote = transfer<false>(fd_.get(), std::span(bounce_.get(), chunk), offset, put);
      lock.lock();
      written_bytes_.fetch_add(put, std::memory_order_relaxed);
      if (!current_locked(request)) return std::nullopt;
      if (!wrote) return host_error(wrote.error());
      done += static_cast<std::uint32_t>(chunk);
      offset += chunk;
    }
  }
  return VIRTIO_BLK_S_OK;
}

std::optional<std::uint8_t> BlockDevice::flush_locked(const Request& request, std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  if (before_io_) before_io_();
  int result;
  do {
    result = ::fdatasync(fd_.get());
  } while (result != 0 && errno == EINTR);
  const int err = errno;
  lock.lock();
  if (!current_locked(request)) return std::nullopt;
  if (result != 0) return host_error(Error{fmt::format("flushing: {}", errno_text(err))});
  flushes_.fetch_add(1, std::memory_order_relaxed);
  return VIRTIO_BLK_S_OK;
}

std::uint8_t BlockDevice::get_id_locked(const Request& request, std::uint32_t& written) {
  // §5.2.6: up to 20 bytes, NUL-padded; a shorter buffer gets the start of it.
  const std::uint64_t len = std::min<std::uint64_t>(total_len(request.data), kIdBytes);
  std::uint64_t at = 0;
  for (const Piece& piece : request.data) {
    if (at == len) break;
    const std::uint64_t n = std::min<std::uint64_t>(piece.len, len - at);
    if (auto copied = memory_->write(piece.addr, std::as_bytes(std::span(id_)).subspan(at, n)); !copied) {
      return reject(copied.error());
    }
    at += n;
  }
  written = static_cast<std::uint32_t>(len);
  return VIRTIO_BLK_S_OK;
}

void BlockDevice::complete_locked(const Request& request, std::uint8_t status, std::uint32_t written) {
  std::uint32_t used_len = 0;
  if (request.status_at) {
    if (auto stored = memory_->write_obj(*request.status_at, status); !stored) return stop(stored.error());
    used_len = written + static_cast<std::uint32_t>(kStatusBytes);
  }
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (!request.status_at || status != VIRTIO_BLK_S_OK) errors_.fetch_add(1, std::memory_order_relaxed);
  --in_flight_;
  if (auto used = queue_->add_used(*memory_, request.head, used_len); !used) stop(used.error());
}

void BlockDevice::signal_used_locked() {
  // After a device error the driver hears of that instead (the chains taken before it did complete).
  if (!live_locked()) return;
  auto needed = queue_->needs_notification(*memory_);
  if (!needed) return stop(needed.error());
  if (*needed) interrupt_->signal_used_buffers();
}

}  // namespace microvm::devices::virtio
