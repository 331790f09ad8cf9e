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
#include <utility>
#include <vector>

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

// A contiguous part of one segment.
struct Piece {
  GuestAddress addr;
  std::uint32_t len = 0;
};

// Bytes [from, from + len) of the chain's device-readable (or device-writable) buffers, as pieces in
// order. The caller keeps from + len within the readable (writable) length.
std::vector<Piece> pieces_of(const DescriptorChain& chain, bool writable, std::uint64_t from, std::uint64_t len) {
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

std::uint64_t total_len(const std::vector<Piece>& pieces) {
  std::uint64_t total = 0;
  for (const Piece& piece : pieces) total += piece.len;
  return total;
}

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
      return fail("{} {} bytes at offset {}: {}", kRead ? "reading" : "writing", chunk, offset + at, errno_text(errno));
    }
    if (n == 0) {
      return fail("{} {} bytes at offset {}: {}", kRead ? "reading" : "writing", chunk, offset + at,
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

// One request (§5.2.6): the header, then the data in whichever direction the type wants.
struct BlockDevice::Request {
  std::uint32_t type = 0;
  std::uint64_t sector = 0;
  std::vector<Piece> out_data;  // device-readable bytes after the header (the data of an OUT)
  std::vector<Piece> in_data;   // device-writable bytes before the status byte (the data of an IN, GET_ID)
};

Result<std::unique_ptr<BlockDevice>> BlockDevice::open(const BlockOptions& options) {
  const std::string& path = options.path;
  if (path.empty()) return fail("drive path is empty: give the image file to attach");
  if (options.id.size() > kIdBytes) {
    return fail("drive {}: id '{}' is {} bytes; virtio-blk ids are at most {} bytes", path, options.id,
                options.id.size(), kIdBytes);
  }
  // O_NONBLOCK: opening a FIFO must not hang (it is refused below); cleared again for the I/O.
  const int access = options.read_only ? O_RDONLY : O_RDWR;
  UniqueFd fd(::open(path.c_str(), access | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    const int err = errno;
    if (err == EISDIR) return fail("drive {} is a directory, not an image file", path);
    if (!options.read_only && (err == EACCES || err == EROFS || err == ETXTBSY)) {
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
  if (size % kSectorSize != 0) {
    spdlog::warn("drive {} is {} bytes, not a multiple of {}: the guest does not see the last {} bytes", path, size,
                 kSectorSize, size % kSectorSize);
  }
  std::string id = options.id;
  if (id.empty()) id = std::filesystem::path(path).filename().string().substr(0, kIdBytes);
  return std::unique_ptr<BlockDevice>(
      new BlockDevice(std::move(fd), path, options.read_only, size / kSectorSize, std::move(id)));
}

BlockDevice::BlockDevice(UniqueFd fd, std::string path, bool read_only, std::uint64_t capacity_sectors, std::string id)
    : fd_(std::move(fd)),
      path_(std::move(path)),
      read_only_(read_only),
      capacity_sectors_(capacity_sectors),
      id_(pad_id(id)) {}

BlockStats BlockDevice::stats() const {
  return BlockStats{requests_.load(), read_bytes_.load(), written_bytes_.load(), flushes_.load(), errors_.load()};
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
  config.capacity = capacity_sectors_;
  config.seg_max = kSegMax;
  config.blk_size = static_cast<std::uint32_t>(kSectorSize);
  std::array<std::uint8_t, sizeof(config)> bytes{};
  std::memcpy(bytes.data(), &config, sizeof(config));
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = offset < bytes.size() && i < bytes.size() - offset ? bytes[offset + i] : 0;
  }
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
  return {};
}

void BlockDevice::reset() {
  std::lock_guard lock(mutex_);
  memory_ = nullptr;
  queue_ = nullptr;
  interrupt_ = nullptr;
  failed_ = false;
}

void BlockDevice::notify(std::uint16_t queue) {
  std::lock_guard lock(mutex_);
  if (queue != 0 || queue_ == nullptr || failed_) return;
  // Every available chain: with EVENT_IDX, pop() of the empty ring is what asks for the next notification.
  for (;;) {
    auto popped = queue_->pop(*memory_);
    if (!popped) return stop(popped.error());
    if (!popped->has_value()) break;
    const DescriptorChain& chain = **popped;
    auto used_len = process(chain);
    if (!used_len) return stop(used_len.error());
    if (auto used = queue_->add_used(*memory_, chain.head, *used_len); !used) return stop(used.error());
  }
  auto needed = queue_->needs_notification(*memory_);
  if (!needed) return stop(needed.error());
  if (*needed) interrupt_->signal_used_buffers();
}

void BlockDevice::stop(const Error& error) {
  failed_ = true;
  interrupt_->signal_device_error(error.context(fmt::format("drive {}", path_)));
}

Result<std::uint32_t> BlockDevice::process(const DescriptorChain& chain) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t writable = chain.writable_len();
  if (writable < kStatusBytes) {
    // Nowhere to put the status: the driver cannot learn the outcome, so nothing is done.
    errors_.fetch_add(1, std::memory_order_relaxed);
    if (!std::exchange(logged_no_status_, true)) {
      spdlog::warn(
          "drive {}: request (descriptor {}) has no device-writable status byte; returned unserved "
          "(further ones are not logged)",
          path_, chain.head);
    }
    return 0;
  }
  const std::vector<Piece> status_at = pieces_of(chain, true, writable - kStatusBytes, kStatusBytes);
  std::uint32_t written = 0;  // bytes written to the data buffers
  std::uint8_t status;
  const std::uint32_t readable = chain.readable_len();
  if (readable < kHeaderBytes) {
    status = reject(Error{fmt::format("request header is {} device-readable bytes, need {}", readable, kHeaderBytes)});
  } else {
    // The header may be split over several buffers: gather it.
    std::array<std::byte, kHeaderBytes> raw{};
    std::size_t at = 0;
    for (const Piece& piece : pieces_of(chain, false, 0, kHeaderBytes)) {
      TRY_VOID(memory_->read(piece.addr, std::span(raw).subspan(at, piece.len)));
      at += piece.len;
    }
    virtio_blk_outhdr header;
    std::memcpy(&header, raw.data(), sizeof(header));
    const Request request{header.type, header.sector, pieces_of(chain, false, kHeaderBytes, readable - kHeaderBytes),
                          pieces_of(chain, true, 0, writable - kStatusBytes)};
    status = serve(request, written);
  }
  if (status != VIRTIO_BLK_S_OK) errors_.fetch_add(1, std::memory_order_relaxed);
  TRY_VOID(memory_->write_obj(status_at.front().addr, status));
  return written + static_cast<std::uint32_t>(kStatusBytes);
}

std::uint8_t BlockDevice::serve(const Request& request, std::uint32_t& written) {
  switch (request.type) {
    case VIRTIO_BLK_T_IN: return read_sectors(request, written);
    case VIRTIO_BLK_T_OUT: return write_sectors(request);
    case VIRTIO_BLK_T_FLUSH: return flush();
    case VIRTIO_BLK_T_GET_ID: return get_id(request, written);
    default: return VIRTIO_BLK_S_UNSUPP;  // §5.2.6: a request the device does not support
  }
}

std::uint8_t BlockDevice::read_sectors(const Request& request, std::uint32_t& written) {
  if (!request.out_data.empty()) {
    return reject(Error{fmt::format("read of sector {} has {} bytes of device-readable data (data must be writable)",
                                    request.sector, total_len(request.out_data))});
  }
  const std::uint64_t len = total_len(request.in_data);
  if (auto range = check_range(request.sector, len, capacity_sectors_); !range) return reject(range.error());
  std::uint64_t offset = request.sector * kSectorSize;
  std::uint64_t done = 0;
  for (const Piece& piece : request.in_data) {
    auto host = memory_->slice(piece.addr, piece.len);
    if (!host) return reject(host.error());
    auto read = transfer<true>(fd_.get(), *host, offset, done);
    written = static_cast<std::uint32_t>(done);  // what reached guest memory, even on failure
    if (!read) return host_error(read.error());
    offset += piece.len;
  }
  read_bytes_.fetch_add(done, std::memory_order_relaxed);
  return VIRTIO_BLK_S_OK;
}

std::uint8_t BlockDevice::write_sectors(const Request& request) {
  // §5.2.6.2: on a read-only device a write fails and writes nothing.
  if (read_only_) return reject(Error{fmt::format("write to sector {} of a read-only drive", request.sector)});
  if (!request.in_data.empty()) {
    return reject(Error{fmt::format("write to sector {} has {} bytes of device-writable data (data must be readable)",
                                    request.sector, total_len(request.in_data))});
  }
  const std::uint64_t len = total_len(request.out_data);
  if (auto range = check_range(request.sector, len, capacity_sectors_); !range) return reject(range.error());
  std::uint64_t offset = request.sector * kSectorSize;
  std::uint64_t done = 0;
  for (const Piece& piece : request.out_data) {
    auto host = memory_->slice(piece.addr, piece.len);
    if (!host) return reject(host.error());
    auto wrote = transfer<false>(fd_.get(), *host, offset, done);
    if (!wrote) {
      written_bytes_.fetch_add(done, std::memory_order_relaxed);
      return host_error(wrote.error());
    }
    offset += piece.len;
  }
  written_bytes_.fetch_add(done, std::memory_order_relaxed);
  return VIRTIO_BLK_S_OK;
}

std::uint8_t BlockDevice::flush() {
  int result;
  do {
    result = ::fdatasync(fd_.get());
  } while (result != 0 && errno == EINTR);
  if (result != 0) return host_error(Error{fmt::format("flushing: {}", errno_text(errno))});
  flushes_.fetch_add(1, std::memory_order_relaxed);
  return VIRTIO_BLK_S_OK;
}

std::uint8_t BlockDevice::get_id(const Request& request, std::uint32_t& written) {
  // §5.2.6: up to 20 bytes, NUL-padded; a shorter buffer gets the start of it.
  const std::uint64_t len = std::min<std::uint64_t>(total_len(request.in_data), kIdBytes);
  if (len == 0) return reject(Error{"GET_ID request has no device-writable buffer for the id"});
  std::uint64_t at = 0;
  for (const Piece& piece : request.in_data) {
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

std::uint8_t BlockDevice::reject(const Error& error) {
  if (!std::exchange(logged_bad_request_, true)) {
    spdlog::warn("drive {}: guest request failed with an I/O error: {} (further bad requests are not logged)", path_,
                 error.message);
  }
  return VIRTIO_BLK_S_IOERR;
}

std::uint8_t BlockDevice::host_error(const Error& error) {
  if (!std::exchange(logged_host_error_, true)) {
    spdlog::error("drive {}: {}; the guest sees an I/O error (further host I/O errors are not logged)", path_,
                  error.message);
  }
  return VIRTIO_BLK_S_IOERR;
}

}  // namespace microvm::devices::virtio
