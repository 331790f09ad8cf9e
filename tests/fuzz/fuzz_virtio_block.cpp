// Fuzzes the virtio-blk request path (devices/virtio/block.h, virtio 1.2 §5.2) against a hostile
// driver. The drive is a memfd of 128 sectors plus a tail the guest must never see, created once per
// process and reset to a known pattern for every input; the input picks whether the device opens it
// read-only. The input then plays the driver for a bounded number of rounds: it configures the queue
// (size, EVENT_IDX, INDIRECT_DESC, ring positions near the 16-bit wrap), offers descriptor chains it
// describes (request headers with any type and sector, split anywhere or truncated; data segments of
// any length and direction; the status byte alone, merged into the data or missing; direct, indirect
// and mixed chains), twists descriptors (flags, next, len, addresses into the rings, the memory hole or
// near 2^64), scribbles on the rings, resets the device and notifies queues. The device serves requests
// on its worker thread and defers what is past its budget to an io_context: after every notify the
// harness waits until both are idle (drain(), poll()), then checks:
//   - nothing crashed (ASan/UBSan) and the drive file kept its size; a read-only drive kept its bytes;
//   - a device that signalled an error, or was reset and not activated again, changed nothing at all
//     (guest memory, drive, queue, interrupts) and signalled nothing;
//   - every chain the device took was returned, and no more used buffer notifications came than the
//     worker's batches (one per kNotifyBudget chains).
// When the chains' writable buffers cannot have changed what the device read (none overlaps the rings
// or an indirect table: the usual case), the harness predicts the chains by popping a copy of the
// queue first and also checks: exactly those chains come back, in order, each with a used len at most
// its writable length; the device signals an error exactly when a chain is malformed; guest memory
// changed only inside writable buffers and the used ring. When, moreover, no buffer overlaps a
// writable one, it checks every request's outcome against a model of the drive (virtio 1.2 §5.2.6):
// the status byte, the used len, the bytes read and the GET_ID serial, and the drive's content.
#include <fuzzer/FuzzedDataProvider.h>
#include <linux/virtio_blk.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "base/unique_fd.h"
#include "devices/virtio/block.h"
#include "devices/virtio/deferred_work.h"
#include "devices/virtio/queue.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::Error;
using microvm::GuestAddress;
using microvm::GuestMemory;
using microvm::UniqueFd;
using microvm::devices::virtio::BlockDevice;
using microvm::devices::virtio::BlockOptions;
using microvm::devices::virtio::DescriptorChain;
using microvm::devices::virtio::kDescFlagIndirect;
using microvm::devices::virtio::kDescFlagNext;
using microvm::devices::virtio::kDescFlagWrite;
using microvm::devices::virtio::kFeatureEventIdx;
using microvm::devices::virtio::kFeatureIndirectDesc;
using microvm::devices::virtio::kFeatureVersion1;
using microvm::devices::virtio::kNotifyBudget;
using microvm::devices::virtio::Queue;
using microvm::devices::virtio::Segment;
using microvm::devices::virtio::used_ring_size;
using microvm::devices::virtio::VirtqAvailHeader;
using microvm::devices::virtio::VirtqDesc;
using microvm::devices::virtio::VirtqUsedElem;
using microvm::devices::virtio::VirtqUsedHeader;
using microvm::fuzz::kHighSize;
using microvm::fuzz::kHighStart;
using microvm::fuzz::kLowSize;

// The drive: whole sectors and a tail shorter than a sector, which the device hides from the guest.
constexpr std::uint64_t kSector = BlockDevice::kSectorSize;
constexpr std::uint64_t kDriveSectors = 128;
constexpr std::uint64_t kDriveTail = 256;
constexpr std::uint64_t kDriveBytes = kDriveSectors * kSector + kDriveTail;
constexpr std::string_view kDriveId = "fuzz-serial-0123";  // shorter than kIdBytes: the serial is NUL-padded
static_assert(kDriveId.size() < BlockDevice::kIdBytes);

// Guest memory (fuzz_support.h's low region): the queue's metadata below kDataStart, buffers above.
constexpr microvm::fuzz::QueueLayout kLayout = microvm::fuzz::queue_layout(0);  // 0x0000-0x2fff
constexpr GuestAddress kDescTable = kLayout.desc;
constexpr GuestAddress kAvailRing = kLayout.avail;
constexpr GuestAddress kUsedRing = kLayout.used;
constexpr std::uint64_t kIndirectTables = 0x3000;
constexpr std::uint64_t kDataStart = 0x6000;  // the end of the indirect tables
constexpr std::uint64_t kDataEnd = kLowSize;

constexpr std::size_t kHeaderBytes = sizeof(virtio_blk_outhdr);  // §5.2.6: type, reserved, sector
static_assert(kHeaderBytes == 16);
constexpr int kMaxRounds = 12;
constexpr int kMaxChainsPerRound = 8;
constexpr int kMaxSegmentsPerSide = 3;  // readable (header and data) and writable (data and status) segments
constexpr std::uint64_t kMaxDataSectors = 8;
constexpr std::uint32_t kMaxOddData = 4096;
constexpr int kMaxPokes = 16;
constexpr std::size_t kMaxConfigAccess = 64;
constexpr std::size_t kCompareBlock = 256;  // guest memory is compared in blocks of this many bytes
// Device-type feature bits the input may ack besides the queue features the harness sets (§6).
constexpr std::uint64_t kQueueFeatureMask = ~((1ULL << kFeatureEventIdx) | (1ULL << kFeatureIndirectDesc));

// Every request type of <linux/virtio_blk.h> this device does not serve (UNSUPP, §5.2.6).
constexpr std::array<std::uint32_t, 5> kUnsupportedTypes{VIRTIO_BLK_T_SCSI_CMD, VIRTIO_BLK_T_DISCARD,
                                                         VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SECURE_ERASE,
                                                         VIRTIO_BLK_T_BARRIER};

// The memfd behind the drive: created once per process (the device reopens it through /proc for every
// input), refilled with the pattern before each input.
class Drive {
 public:
  static Drive& instance() {
    static Drive drive;
    return drive;
  }

  [[nodiscard]] std::string path() const { return fmt::format("/proc/self/fd/{}", fd_.get()); }
  [[nodiscard]] const std::vector<std::uint8_t>& pattern() const { return pattern_; }

  void restore() const {
    FUZZ_CHECK(::pwrite(fd_.get(), pattern_.data(), pattern_.size(), 0) == static_cast<ssize_t>(pattern_.size()),
               "cannot refill the drive: {}", microvm::errno_text(errno));
  }
  [[nodiscard]] std::uint64_t size() const {
    struct stat st {};
    FUZZ_CHECK(::fstat(fd_.get(), &st) == 0, "cannot stat the drive: {}", microvm::errno_text(errno));
    return static_cast<std::uint64_t>(st.st_size);
  }
  // The first kDriveBytes of the file (the caller checked the size).
  void read(std::vector<std::uint8_t>& out) const {
    out.resize(kDriveBytes);
    FUZZ_CHECK(::pread(fd_.get(), out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()),
               "cannot read the drive: {}", microvm::errno_text(errno));
  }

 private:
  Drive() : fd_(::memfd_create("fuzz-virtio-block", MFD_CLOEXEC)), pattern_(kDriveBytes) {
    FUZZ_CHECK(fd_.valid(), "memfd_create: {}", microvm::errno_text(errno));
    for (std::size_t i = 0; i < pattern_.size(); ++i) {  // differs from sector to sector
      pattern_[i] = static_cast<std::uint8_t>(i * 11 + i / kSector * 37 + 5);
    }
    restore();
  }

  UniqueFd fd_;
  std::vector<std::uint8_t> pattern_;
};

using FakeInterrupt = microvm::fuzz::CheckedInterrupt;

// [begin, end) in guest-physical addresses, end saturated at 2^64 - 1.
struct Interval {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};
Interval interval_of(std::uint64_t addr, std::uint64_t len) {
  return {addr, addr + std::min(len, UINT64_MAX - addr)};
}
bool overlaps(Interval a, Interval b) {
  return a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
}

// What the device will see when notified, from popping a copy of its queue first.
struct Prediction {
  std::vector<DescriptorChain> chains;  // popped, in order
  bool error = false;                   // the pop after the last chain fails
  bool predictable = true;              // no writable buffer overlaps what the walks read: the device sees the same
  bool clean = false;  // moreover no buffer overlaps a writable one: contents are as the device saw them
};

struct Snapshot {
  std::vector<std::byte> low = std::vector<std::byte>(kLowSize);
  std::vector<std::byte> high = std::vector<std::byte>(kHighSize);
  std::uint16_t next_avail = 0;
  std::uint16_t next_used = 0;
  int used_signals = 0;
  int config_signals = 0;
  std::uint64_t requests = 0;
};

// One input: a device on the drive, guest memory, and a driver that follows the input.
class Harness {
 public:
  Harness(FuzzedDataProvider& input, bool read_only)
      : input_(input),
        drive_(Drive::instance()),
        read_only_(read_only),
        memory_(microvm::fuzz::make_memory({})),
        hostility_(input, input.ConsumeIntegralInRange(0, 4)),
        placer_(input, memory_, hostility_, kIndirectTables, kDataStart),
        arena_(kDataStart, kDataEnd) {
    drive_.restore();
    model_ = drive_.pattern();
    auto device = BlockDevice::open(BlockOptions{drive_.path(), read_only, std::string(kDriveId)}, io_.get_executor());
    FUZZ_CHECK(device.has_value(), "cannot open the drive: {}", device.error().message);
    device_ = std::move(*device);
    FUZZ_CHECK(device_->capacity_sectors() == kDriveSectors, "capacity {} sectors", device_->capacity_sectors());
    FUZZ_CHECK(device_->read_only() == read_only, "read_only() is {}", device_->read_only());
    activate();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run() {
    for (int round = 0; round < kMaxRounds && input_.remaining_bytes() > 0; ++round) {
      const int action = input_.ConsumeIntegralInRange(0, 15);
      if (action < 10) {
        offer_chains();
        notify(0);
      } else if (action < 12) {
        scribble();
        notify(0);
      } else if (action == 12) {
        notify(input_.ConsumeIntegralInRange<std::uint16_t>(1, UINT16_MAX));  // a queue the device lacks
      } else if (action == 13) {
        device_->reset();
        interrupt_.failed = false;
        active_ = false;
        if (input_.ConsumeBool()) activate();
        notify(0);
      } else if (action == 14) {
        config_access();
      } else {
        notify(0);  // a notification with nothing new
      }
    }
  }

 private:
  // The driver's bring-up (§3.1.1, §2.7.13): a fresh queue the input configures, then DRIVER_OK.
  void activate() {
    const bool event_idx = input_.ConsumeBool();
    const bool indirect = input_.ConsumeBool();
    const std::vector<std::byte> zero(kDataStart);  // the rings and the indirect tables
    FUZZ_CHECK(memory_.write(GuestAddress(0), zero).has_value(), "cannot clear the rings");
    driver_ = microvm::fuzz::set_up_queue(input_, memory_, queues_[0], kLayout, event_idx, indirect);
    const std::uint64_t acked = (1ULL << kFeatureVersion1) | (event_idx ? 1ULL << kFeatureEventIdx : 0) |
                                (indirect ? 1ULL << kFeatureIndirectDesc : 0) |
                                (device_->features() & input_.ConsumeIntegral<std::uint32_t>() & kQueueFeatureMask);
    auto activated = device_->activate(memory_, queues_, acked, interrupt_);
    FUZZ_CHECK(activated.has_value(), "activate: {}", activated.error().message);
    active_ = true;
  }

  std::uint32_t data_len() {
    switch (input_.ConsumeIntegralInRange(0, 3)) {
      case 2: return 0;
      case 3: return input_.ConsumeIntegralInRange<std::uint32_t>(0, kMaxOddData);
      default:
        return static_cast<std::uint32_t>(input_.ConsumeIntegralInRange<std::uint64_t>(1, kMaxDataSectors) * kSector);
    }
  }

  std::uint64_t sector() {
    switch (input_.ConsumeIntegralInRange(0, 5)) {
      case 0: return 0;
      case 1: return input_.ConsumeIntegralInRange<std::uint64_t>(0, kDriveSectors);
      case 2:
        return kDriveSectors - kMaxDataSectors + input_.ConsumeIntegralInRange<std::uint64_t>(0, 2 * kMaxDataSectors);
      case 3: return UINT64_MAX - input_.ConsumeIntegralInRange<std::uint64_t>(0, kMaxDataSectors);
      case 4: return UINT64_MAX / kSector + input_.ConsumeIntegralInRange<std::uint64_t>(0, 2);  // sector * 512 wraps
      default: return input_.ConsumeIntegral<std::uint64_t>();
    }
  }

  std::uint32_t request_type() {
    switch (input_.ConsumeIntegralInRange(0, 9)) {
      case 0:
      case 1:
      case 2: return VIRTIO_BLK_T_IN;
      case 3:
      case 4:
      case 5: return VIRTIO_BLK_T_OUT;
      case 6: return VIRTIO_BLK_T_FLUSH;
      case 7: return VIRTIO_BLK_T_GET_ID;
      case 8: return input_.PickValueInArray(kUnsupportedTypes);
      default: return input_.ConsumeIntegral<std::uint32_t>();
    }
  }

  // `total` bytes from `addr` as 0-3 segments cut anywhere (zero-length ones included).
  void split(std::vector<VirtqDesc>& descs, std::uint64_t addr, std::uint64_t total, bool writable) {
    const int count = total == 0 ? (input_.ConsumeIntegralInRange(0, 7) == 7 ? 1 : 0)
                                 : input_.ConsumeIntegralInRange(1, kMaxSegmentsPerSide);
    std::vector<std::uint64_t> cuts{0, total};
    for (int i = 1; i < count; ++i) cuts.push_back(input_.ConsumeIntegralInRange<std::uint64_t>(0, total));
    std::ranges::sort(cuts);
    for (int i = 0; i < count; ++i) {
      descs.push_back(VirtqDesc{addr + cuts[i], static_cast<std::uint32_t>(cuts[i + 1] - cuts[i]),
                                writable ? kDescFlagWrite : std::uint16_t{0}, 0});
    }
  }

  // One request as a driver builds it (§5.2.6): the header and any OUT data device-readable, then any
  // IN data and the status byte device-writable. The input picks everything, sensible or not.
  std::vector<VirtqDesc> describe_request() {
    virtio_blk_outhdr header{};
    header.type = request_type();
    header.ioprio = input_.ConsumeBool() ? 0 : input_.ConsumeIntegral<std::uint32_t>();  // the reserved field
    header.sector = sector();
    std::uint32_t out_len = 0;
    std::uint32_t in_len = 0;
    if (input_.ConsumeIntegralInRange(0, 3) != 3) {  // data in the direction the type wants
      if (header.type == VIRTIO_BLK_T_IN || header.type == VIRTIO_BLK_T_GET_ID) in_len = data_len();
      if (header.type == VIRTIO_BLK_T_OUT) out_len = data_len();
    } else {
      out_len = data_len();
      in_len = data_len();
    }
    const std::size_t header_len =
        input_.ConsumeIntegralInRange(0, 7) != 7 ? kHeaderBytes : input_.ConsumeIntegralInRange<std::size_t>(0, 15);
    const std::uint64_t status_len = input_.ConsumeIntegralInRange(0, 7) != 7 ? 1 : 0;

    // The readable bytes: the header (maybe cut short), then data the device writes to the drive.
    const std::uint64_t readable_len = header_len + out_len;
    const std::uint64_t readable = arena_.allocate(readable_len);
    std::vector<std::byte> bytes(readable_len);
    if (header_len > 0) std::memcpy(bytes.data(), &header, header_len);
    const auto fill = input_.ConsumeIntegral<std::uint8_t>();
    for (std::size_t i = header_len; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(fill ^ i ^ (i >> 8));
    FUZZ_CHECK(memory_.write(GuestAddress(readable), bytes).has_value(), "cannot write a request at {:#x}", readable);
    const std::uint64_t writable = arena_.allocate(in_len + status_len);

    std::vector<VirtqDesc> descs;
    split(descs, readable, readable_len, false);
    split(descs, writable, in_len + status_len, true);
    if (descs.empty()) descs.push_back(VirtqDesc{readable, 0, 0, 0});
    return descs;
  }

  // The driver makes requests available (§2.7.13): chains, their avail ring entries, then avail idx.
  void offer_chains() {
    const int chains = input_.ConsumeIntegralInRange(1, std::min<int>(driver_.size, kMaxChainsPerRound));
    placer_.start_round();  // the device returned every earlier chain (or stopped for good)
    arena_.start_round();
    for (int c = 0; c < chains; ++c) {
      auto head = placer_.place(driver_, describe_request());
      if (!head) break;
      microvm::fuzz::offer(memory_, driver_, hostility_.twist() ? input_.ConsumeIntegral<std::uint16_t>() : *head);
    }
    microvm::fuzz::publish(memory_, driver_);
  }

  // A hostile driver scribbles on its rings and tables (or moves avail idx anywhere).
  void scribble() {
    const int pokes = input_.ConsumeIntegralInRange(1, kMaxPokes);
    for (int i = 0; i < pokes; ++i) {
      if (input_.ConsumeIntegralInRange(0, 7) == 7) {
        const auto delta = input_.ConsumeIntegralInRange<int>(-2, queues_[0].size() + 2);
        microvm::fuzz::poke(memory_, kAvailRing.value + offsetof(VirtqAvailHeader, idx),
                            static_cast<std::uint16_t>(driver_.avail_idx + delta));
        continue;
      }
      const auto addr = input_.ConsumeIntegralInRange<std::uint64_t>(0, kDataStart - sizeof(std::uint16_t));
      if (input_.ConsumeBool()) {
        microvm::fuzz::poke(memory_, addr, input_.ConsumeIntegral<std::uint8_t>());
      } else {
        microvm::fuzz::poke(memory_, addr, input_.ConsumeIntegral<std::uint16_t>());
      }
    }
  }

  // Config space reads and writes anywhere (§5.2.4): the capacity stays, nothing is writable.
  void config_access() {
    std::array<std::uint8_t, kMaxConfigAccess> data{};
    const auto offset = input_.ConsumeBool() ? input_.ConsumeIntegralInRange<std::uint64_t>(0, 2 * kMaxConfigAccess)
                                             : input_.ConsumeIntegral<std::uint64_t>();
    const auto len = input_.ConsumeIntegralInRange<std::size_t>(0, data.size());
    if (input_.ConsumeBool()) {
      for (std::uint8_t& b : data) b = input_.ConsumeIntegral<std::uint8_t>();
      device_->write_config(offset, std::span(data).first(len));
    } else {
      device_->read_config(offset, std::span(data).first(len));
    }
    std::array<std::uint8_t, sizeof(std::uint64_t)> raw{};
    device_->read_config(offsetof(virtio_blk_config, capacity), raw);
    std::uint64_t capacity = 0;
    std::memcpy(&capacity, raw.data(), sizeof(capacity));
    FUZZ_CHECK(capacity == kDriveSectors, "config space capacity {} after a config access", capacity);
  }

  Snapshot snapshot() const {
    Snapshot s;
    FUZZ_CHECK(memory_.read(GuestAddress(0), s.low).has_value(), "cannot read guest memory");
    FUZZ_CHECK(memory_.read(kHighStart, s.high).has_value(), "cannot read guest memory");
    s.next_avail = queues_[0].next_avail();
    s.next_used = queues_[0].next_used();
    s.used_signals = interrupt_.used;
    s.config_signals = interrupt_.config;
    s.requests = device_->stats().requests;
    return s;
  }

  Interval used_ring_area() const { return interval_of(kUsedRing.value, used_ring_size(queues_[0].size())); }

  // The indirect tables the walk from avail ring position `next_avail` may read: the same walk as
  // Queue::walk_chain, stopping no later than it does.
  void note_tables(std::uint16_t next_avail, std::vector<Interval>& tables) const {
    const Queue& queue = queues_[0];
    const std::uint64_t entry =
        kAvailRing.value + sizeof(VirtqAvailHeader) + sizeof(std::uint16_t) * (next_avail % queue.size());
    auto head = memory_.read_obj<std::uint16_t>(GuestAddress(entry));
    if (!head || *head >= queue.size()) return;
    std::uint64_t table = kDescTable.value;
    std::uint32_t table_size = queue.size();
    std::uint32_t index = *head;
    bool in_indirect = false;
    for (std::uint32_t visited = 1; visited <= table_size; ++visited) {
      auto desc = memory_.read_obj<VirtqDesc>(GuestAddress(table + sizeof(VirtqDesc) * index));
      if (!desc) return;
      if ((desc->flags & kDescFlagIndirect) != 0) {
        if (in_indirect) return;
        tables.push_back(interval_of(desc->addr, desc->len));
        if (desc->len == 0 || desc->len % sizeof(VirtqDesc) != 0 || desc->len / sizeof(VirtqDesc) > queue.size()) {
          return;
        }
        if (!memory_.contains(GuestAddress(desc->addr), desc->len)) return;
        table = desc->addr;
        table_size = desc->len / static_cast<std::uint32_t>(sizeof(VirtqDesc));
        in_indirect = true;
        index = 0;
        visited = 0;
        continue;
      }
      if ((desc->flags & kDescFlagNext) == 0 || desc->next >= table_size) return;
      index = desc->next;
    }
  }

  Prediction predict() const {
    Prediction prediction;
    Queue shadow = queues_[0];
    std::vector<Interval> tables;
    for (;;) {
      note_tables(shadow.next_avail(), tables);
      auto popped = shadow.pop(memory_);
      if (!popped) {
        prediction.error = true;
        break;
      }
      if (!*popped) break;
      prediction.chains.push_back(std::move(**popped));
      FUZZ_CHECK(prediction.chains.size() <= Queue::kMaxSize, "more than a ring of chains available");
    }
    const Interval metadata{0, kDataStart};
    const Interval used = used_ring_area();
    for (const Interval table : tables) prediction.predictable &= !overlaps(table, used);
    struct Span {
      Interval range;
      bool changes;
    };
    std::vector<Span> spans{{used, true}};
    for (const DescriptorChain& chain : prediction.chains) {
      for (const Segment& segment : chain.segments) {
        const Interval range = interval_of(segment.addr.value, segment.len);
        if (segment.device_writable) {
          prediction.predictable &= !overlaps(range, metadata);
          for (const Interval table : tables) prediction.predictable &= !overlaps(range, table);
        }
        if (segment.len > 0) spans.push_back({range, segment.device_writable});
      }
    }
    // Clean: sorted by start, no span begins inside an earlier changing one, no changing one inside any.
    std::ranges::sort(spans, {}, [](const Span& s) { return s.range.begin; });
    prediction.clean = prediction.predictable;
    std::uint64_t end_any = 0;
    std::uint64_t end_changing = 0;
    for (const Span& span : spans) {
      if (span.range.begin < end_changing || (span.changes && span.range.begin < end_any)) prediction.clean = false;
      end_any = std::max(end_any, span.range.end);
      if (span.changes) end_changing = std::max(end_changing, span.range.end);
    }
    return prediction;
  }

  std::vector<std::uint8_t> bytes_of(const DescriptorChain& chain, bool writable) const {
    std::vector<std::uint8_t> out;
    for (const Segment& segment : chain.segments) {
      if (segment.device_writable != writable) continue;
      auto bytes = memory_.slice(segment.addr, segment.len);
      FUZZ_CHECK(bytes.has_value(), "segment {:#x}+{:#x} of a popped chain", segment.addr.value, segment.len);
      for (const std::byte b : *bytes) out.push_back(static_cast<std::uint8_t>(b));
    }
    return out;
  }

  // §5.2.6 for one request the device completed with `used`, against the drive model (updated for writes).
  void check_request(const DescriptorChain& chain, const VirtqUsedElem& used) {
    const std::vector<std::uint8_t> readable = bytes_of(chain, false);
    const std::vector<std::uint8_t> writable = bytes_of(chain, true);
    if (writable.empty()) {  // nowhere for a status: nothing is done
      FUZZ_CHECK(used.len == 0, "used len {} for a request without a status byte", used.len);
      return;
    }
    const std::uint8_t status = writable.back();
    const std::span<const std::uint8_t> in = std::span(writable).first(writable.size() - 1);
    std::uint8_t expected = VIRTIO_BLK_S_IOERR;
    std::size_t written = 0;
    std::uint32_t type = 0;
    if (readable.size() >= kHeaderBytes) {
      virtio_blk_outhdr header{};
      std::memcpy(&header, readable.data(), sizeof(header));
      type = header.type;
      const std::span<const std::uint8_t> out = std::span(readable).subspan(kHeaderBytes);
      const auto in_range = [&](std::size_t len) {
        return len % kSector == 0 && header.sector <= kDriveSectors && len / kSector <= kDriveSectors - header.sector;
      };
      switch (header.type) {
        case VIRTIO_BLK_T_IN:
          if (out.empty() && in_range(in.size())) {
            expected = VIRTIO_BLK_S_OK;
            written = in.size();
            if (status == VIRTIO_BLK_S_OK) {
              FUZZ_CHECK(std::ranges::equal(in, std::span(model_).subspan(header.sector * kSector, in.size())),
                         "read of {} bytes at sector {} returned other bytes than the drive holds", in.size(),
                         header.sector);
            }
          }
          break;
        case VIRTIO_BLK_T_OUT:
          if (!read_only_ && in.empty() && in_range(out.size())) {
            expected = VIRTIO_BLK_S_OK;
            std::ranges::copy(out, model_.begin() + static_cast<std::ptrdiff_t>(header.sector * kSector));
          }
          break;
        case VIRTIO_BLK_T_FLUSH: expected = VIRTIO_BLK_S_OK; break;
        case VIRTIO_BLK_T_GET_ID:
          if (!in.empty()) {
            expected = VIRTIO_BLK_S_OK;
            written = std::min(in.size(), BlockDevice::kIdBytes);
            std::array<std::uint8_t, BlockDevice::kIdBytes> id{};
            std::memcpy(id.data(), kDriveId.data(), kDriveId.size());
            if (status == VIRTIO_BLK_S_OK) {
              FUZZ_CHECK(std::ranges::equal(in.first(written), std::span(id).first(written)),
                         "GET_ID wrote another id");
            }
          }
          break;
        default: expected = VIRTIO_BLK_S_UNSUPP; break;
      }
    }
    FUZZ_CHECK(status == expected, "request type {:#x} ({} readable, {} writable bytes): status {}, expected {}", type,
               readable.size(), writable.size(), status, expected);
    FUZZ_CHECK(used.len == written + 1, "request type {:#x}: used len {}, expected {}", type, used.len, written + 1);
  }

  // Bytes of guest memory that differ from `before` must lie in `allowed` (sorted, may overlap).
  void check_changes(const Snapshot& before, const Snapshot& after, std::vector<Interval> allowed) const {
    std::ranges::sort(allowed, {}, [](const Interval& i) { return i.begin; });
    std::vector<std::uint64_t> reach;  // the furthest end among allowed[0..i]
    for (const Interval& i : allowed) reach.push_back(std::max(reach.empty() ? 0 : reach.back(), i.end));
    const auto permitted = [&](std::uint64_t addr) {
      const auto it = std::ranges::upper_bound(allowed, addr, {}, [](const Interval& i) { return i.begin; });
      return it != allowed.begin() && reach[static_cast<std::size_t>(it - allowed.begin()) - 1] > addr;
    };
    const auto check = [&](std::span<const std::byte> old_bytes, std::span<const std::byte> new_bytes,
                           std::uint64_t base) {
      // Block by block with memcmp: a byte loop is slow under the fuzzer's comparison tracing.
      for (std::size_t block = 0; block < old_bytes.size(); block += kCompareBlock) {
        const std::size_t len = std::min(kCompareBlock, old_bytes.size() - block);
        if (std::memcmp(old_bytes.data() + block, new_bytes.data() + block, len) == 0) continue;
        for (std::size_t i = block; i < block + len; ++i) {
          if (old_bytes[i] != new_bytes[i]) {
            FUZZ_CHECK(permitted(base + i), "guest byte {:#x} changed outside the used buffers", base + i);
          }
        }
      }
    };
    check(before.low, after.low, 0);
    check(before.high, after.high, kHighStart.value);
  }

  // Until the device has nothing left to do: the worker idle, no deferred pump queued.
  void settle() {
    for (int round = 0;; ++round) {
      FUZZ_CHECK(round < 10'000, "the device keeps re-scheduling itself");
      device_->drain();
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }

  void notify(std::uint16_t queue_index) {
    const bool live = active_ && !interrupt_.failed && queue_index == 0;
    const Snapshot before = snapshot();
    std::optional<Prediction> prediction;
    if (live) prediction = predict();

    device_->notify(queue_index);
    settle();

    FUZZ_CHECK(drive_.size() == kDriveBytes, "the drive is {} bytes, was {}", drive_.size(), kDriveBytes);
    drive_.read(file_);
    if (read_only_) FUZZ_CHECK(file_ == drive_.pattern(), "a read-only drive changed");
    const Queue& queue = queues_[0];
    const Snapshot after = snapshot();
    const auto used_count = static_cast<std::uint16_t>(after.next_used - before.next_used);

    if (!live) {  // stopped, reset, or a queue it does not have: nothing at all happens
      FUZZ_CHECK(after.low == before.low && after.high == before.high, "an idle device changed guest memory");
      FUZZ_CHECK(after.next_avail == before.next_avail && used_count == 0, "an idle device used its queue");
      FUZZ_CHECK(after.used_signals == before.used_signals && after.config_signals == before.config_signals,
                 "an idle device interrupted");
      FUZZ_CHECK(after.requests == before.requests, "an idle device served requests");
      FUZZ_CHECK(file_ == model_, "an idle device changed the drive");
      return;
    }

    // Every chain taken is returned; an interrupt only for returned chains.
    FUZZ_CHECK(after.requests - before.requests == used_count, "{} requests served, {} chains returned",
               after.requests - before.requests, used_count);
    // The worker signals once per batch, and a batch is at most one pump's worth (kNotifyBudget chains).
    FUZZ_CHECK(
        after.used_signals - before.used_signals <= static_cast<int>((used_count + kNotifyBudget - 1) / kNotifyBudget),
        "{} used buffer notifications for {} chains", after.used_signals - before.used_signals, used_count);
    FUZZ_CHECK(after.config_signals == before.config_signals, "virtio-blk sent a configuration change");

    if (prediction->predictable) {
      FUZZ_CHECK(used_count == prediction->chains.size(), "{} chains returned, {} were available", used_count,
                 prediction->chains.size());
      FUZZ_CHECK(interrupt_.failed == prediction->error, "device error {}, expected {}", interrupt_.failed,
                 prediction->error);
      std::vector<Interval> allowed{used_ring_area()};
      for (std::uint16_t i = 0; i < used_count; ++i) {
        const DescriptorChain& chain = prediction->chains[i];
        const std::uint64_t slot =
            kUsedRing.value + sizeof(VirtqUsedHeader) +
            sizeof(VirtqUsedElem) * (static_cast<std::uint16_t>(before.next_used + i) % queue.size());
        auto used = memory_.read_obj<VirtqUsedElem>(GuestAddress(slot));
        FUZZ_CHECK(used.has_value(), "cannot read used ring entry {:#x}", slot);
        FUZZ_CHECK(used->id == chain.head, "used entry {} names {}, chain {} was popped", i, used->id, chain.head);
        FUZZ_CHECK(used->len <= chain.writable_len(), "used len {} for a chain of {} writable bytes", used->len,
                   chain.writable_len());
        for (const Segment& segment : chain.segments) {
          if (segment.device_writable) allowed.push_back(interval_of(segment.addr.value, segment.len));
        }
        if (prediction->clean) check_request(chain, *used);
      }
      check_changes(before, after, std::move(allowed));
    }
    driver_.avail_idx = queue.next_avail();  // where a driver goes on after the device took what it took
    if (prediction->predictable && prediction->clean) {
      FUZZ_CHECK(file_ == model_, "the drive does not hold what the guest wrote");
    } else {
      model_ = file_;  // what happened cannot be told apart: go on from what the drive holds
    }
  }

  FuzzedDataProvider& input_;
  const Drive& drive_;
  const bool read_only_;
  const GuestMemory memory_;
  boost::asio::io_context io_;  // the device's deferred pumps run here, when notify() settles it
  std::unique_ptr<BlockDevice> device_;
  std::array<Queue, 1> queues_{};
  FakeInterrupt interrupt_;
  bool active_ = false;
  microvm::fuzz::Hostility hostility_;  // 0-4: how often (in 16) a descriptor or avail entry is twisted
  microvm::fuzz::ChainPlacer placer_;
  microvm::fuzz::BufferArena arena_;
  microvm::fuzz::DriverQueue driver_;
  std::vector<std::uint8_t> model_;  // what the drive must hold
  std::vector<std::uint8_t> file_;   // what it holds (read after every notify)
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  microvm::fuzz::silence_logging();
  (void)Drive::instance();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const bool read_only = input.ConsumeIntegral<std::uint8_t>() % 4 == 3;  // the mode byte
  Harness harness(input, read_only);
  harness.run();
  return 0;
}
