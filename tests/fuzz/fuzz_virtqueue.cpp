// Fuzzes the device side of a split virtqueue (devices/virtio/queue.h, virtio 1.2 §2.7) against a
// hostile driver, in one of two modes the input picks:
//   raw:        the input is the guest memory image (rings, descriptors, indirect tables) and the
//               queue configuration (any size, ring addresses anywhere, including outside guest memory
//               and just below 2^64);
//   corrupted:  the harness lays out a well-formed queue with chains the input describes (direct and
//               indirect, readable and writable buffers), then the input corrupts bytes of it. Deep
//               chain-walking paths are reached in seconds this way.
// In both, the input picks EVENT_IDX / INDIRECT_DESC, ring positions (near the 16-bit wrap too) and
// driver writes made between pops. The harness then does what a device does: pop chains, read and
// fill their buffers (which may overlap the rings), return them with add_used and ask
// needs_notification, until the ring is empty or the queue reports the driver's error. Whatever the
// input, nothing may crash and every chain pop() returns keeps the promises of descriptor_chain.h.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/queue.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::GuestAddress;
using microvm::GuestMemory;
using microvm::devices::virtio::DescriptorChain;
using microvm::devices::virtio::kDescFlagIndirect;
using microvm::devices::virtio::kDescFlagNext;
using microvm::devices::virtio::kDescFlagWrite;
using microvm::devices::virtio::Queue;
using microvm::devices::virtio::Segment;
using microvm::devices::virtio::VirtqAvailHeader;
using microvm::devices::virtio::VirtqDesc;
using microvm::devices::virtio::VirtqUsedHeader;
using microvm::fuzz::poke;

// More pops than any ring holds, so a driver that keeps the ring full is cut off by the bound.
constexpr int kMaxIterations = 2 * Queue::kMaxSize + 16;
// Largest guest memory image taken from the input in raw mode (the rest of the low region stays zero).
constexpr std::size_t kMaxImage = 16 * 1024;
// At most this many driver writes between pops, and this many corrupted bytes in corrupted mode.
constexpr std::size_t kMaxDriverWrites = 64;
constexpr std::size_t kMaxCorruptions = 32;

// Where the well-formed queue of corrupted mode lives (each part fits a queue of kMaxSize).
constexpr microvm::fuzz::QueueLayout kLayout = microvm::fuzz::queue_layout(0);  // 0x0000-0x2fff
constexpr GuestAddress kDescTable = kLayout.desc;
constexpr GuestAddress kAvailRing = kLayout.avail;
constexpr GuestAddress kUsedRing = kLayout.used;
constexpr std::uint64_t kIndirectTables = 0x4000;
constexpr std::uint64_t kIndirectTablesEnd = 0x8000;
constexpr std::uint64_t kBuffers = 0x8000;  // up to the end of the low region
constexpr std::uint32_t kMaxBuffer = 0x400;
constexpr int kMaxChainSegments = 4;

// A ring address: mostly inside the input-filled region, sometimes in the hole or the second region,
// sometimes just below 2^64 (every offset added to it must be checked for wrapping).
GuestAddress ring_address(FuzzedDataProvider& input) {
  const auto offset = input.ConsumeIntegral<std::uint16_t>();
  switch (input.ConsumeIntegralInRange(0, 3)) {
    case 0: return GuestAddress(offset & ~std::uint64_t{15});  // aligned for every part
    case 1: return GuestAddress(offset);
    case 2: return GuestAddress(microvm::fuzz::kLowSize + offset);
    default: return GuestAddress(UINT64_MAX - offset);
  }
}

std::uint16_t queue_size(FuzzedDataProvider& input) {
  return static_cast<std::uint16_t>(1U << input.ConsumeIntegralInRange(0, 8));  // what a driver may choose
}

// Corrupted mode, step 1: what a driver does (§2.7.13): chains the input describes, each in
// consecutive descriptor slots or an indirect table, offered in the avail ring from `next_avail` on.
void lay_out_chains(FuzzedDataProvider& input, const GuestMemory& memory, std::uint16_t size, bool indirect,
                    std::uint16_t next_avail) {
  const int chains = input.ConsumeIntegralInRange<int>(0, size);
  std::uint16_t slot = 0;
  std::uint64_t table_cursor = kIndirectTables;
  std::uint64_t buffer_cursor = kBuffers;
  for (int c = 0; c < chains; ++c) {
    const int segments = input.ConsumeIntegralInRange(1, kMaxChainSegments);
    const int first_writable = input.ConsumeIntegralInRange(0, segments);  // readable ones come first
    const bool use_table = indirect && input.ConsumeBool();
    const std::uint64_t table = table_cursor;
    if (use_table) table_cursor += sizeof(VirtqDesc) * segments;
    if (table_cursor > kIndirectTablesEnd) break;
    const std::uint16_t head = slot;
    for (int i = 0; i < segments; ++i) {
      VirtqDesc desc{};
      desc.len = input.ConsumeIntegralInRange<std::uint32_t>(0, kMaxBuffer);
      if (buffer_cursor + desc.len > microvm::fuzz::kLowSize) buffer_cursor = kBuffers;  // reuse: overlaps are fine
      desc.addr = buffer_cursor;
      buffer_cursor += desc.len;
      const bool last = i + 1 == segments;
      desc.flags = static_cast<std::uint16_t>((last ? 0 : kDescFlagNext) | (i >= first_writable ? kDescFlagWrite : 0));
      if (use_table) {
        desc.next = static_cast<std::uint16_t>(i + 1);
        poke(memory, table + sizeof(VirtqDesc) * i, desc);
      } else {
        desc.next = static_cast<std::uint16_t>((slot + 1) % size);
        poke(memory, kDescTable.value + sizeof(VirtqDesc) * slot, desc);
        slot = desc.next;
      }
    }
    if (use_table) {
      const VirtqDesc desc{table, static_cast<std::uint32_t>(sizeof(VirtqDesc) * segments), kDescFlagIndirect, 0};
      poke(memory, kDescTable.value + sizeof(VirtqDesc) * slot, desc);
      slot = static_cast<std::uint16_t>((slot + 1) % size);
    }
    const auto position = static_cast<std::uint16_t>(next_avail + c);
    poke(memory, kAvailRing.value + sizeof(VirtqAvailHeader) + sizeof(std::uint16_t) * (position % size), head);
    poke(memory, kAvailRing.value + offsetof(VirtqAvailHeader, idx), static_cast<std::uint16_t>(position + 1));
  }
}

// Corrupted mode, step 2: the hostile part. Bytes anywhere in the rings, tables and buffers.
void corrupt(FuzzedDataProvider& input, const GuestMemory& memory) {
  const auto count = input.ConsumeIntegralInRange<std::size_t>(0, kMaxCorruptions);
  for (std::size_t i = 0; i < count; ++i) {
    const auto addr = input.ConsumeIntegralInRange<std::uint64_t>(kDescTable.value, kBuffers - 1);
    poke(memory, addr, input.ConsumeIntegral<std::uint8_t>());
  }
}

struct DriverWrite {  // the driver stores `value` at `addr` before the next pop (a new avail idx, say)
  GuestAddress addr;
  std::uint16_t value = 0;
};

// What descriptor_chain.h promises about every chain pop() returns.
void check_chain(const GuestMemory& memory, const Queue& queue, const DescriptorChain& chain) {
  FUZZ_CHECK(chain.head < queue.size(), "head {} of a queue of size {}", chain.head, queue.size());
  FUZZ_CHECK(!chain.segments.empty(), "chain from head {} has no segments", chain.head);
  // At most size - 1 direct descriptors before an indirect one, and at most size in its table.
  FUZZ_CHECK(chain.segments.size() <= 2U * queue.size(), "chain of {} segments in a queue of size {}",
             chain.segments.size(), queue.size());
  bool seen_writable = false;
  std::uint64_t total = 0;
  for (const Segment& segment : chain.segments) {
    FUZZ_CHECK(!(seen_writable && !segment.device_writable), "readable segment after a writable one");
    seen_writable = segment.device_writable;
    auto bytes = memory.slice(segment.addr, segment.len);
    FUZZ_CHECK(bytes.has_value(), "segment {:#x}+{:#x} is not guest memory", segment.addr.value, segment.len);
    total += segment.len;
  }
  FUZZ_CHECK(total < (1ULL << 32), "chain from head {} holds {} bytes", chain.head, total);
  FUZZ_CHECK(std::uint64_t{chain.readable_len()} + chain.writable_len() == total, "chain lengths do not add up");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  microvm::fuzz::silence_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);

  Queue queue;
  queue.set_event_idx(input.ConsumeBool());
  queue.set_indirect(input.ConsumeBool());
  queue.set_next_avail(input.ConsumeIntegral<std::uint16_t>());
  queue.set_next_used(input.ConsumeIntegral<std::uint16_t>());
  // The transport validates the configuration before the queue goes live; pop() must cope without.
  const bool validate_first = input.ConsumeBool();
  const bool corrupted_mode = input.ConsumeBool();

  std::vector<DriverWrite> writes(input.ConsumeIntegralInRange<std::size_t>(0, kMaxDriverWrites));
  for (DriverWrite& write : writes) {
    write.addr = GuestAddress(input.ConsumeIntegral<std::uint16_t>());
    write.value = input.ConsumeIntegral<std::uint16_t>();
  }

  std::optional<GuestMemory> memory_storage;
  if (corrupted_mode) {
    memory_storage = microvm::fuzz::make_memory({});
    queue.set_size(queue_size(input));
    queue.set_descriptor_table(kDescTable);
    queue.set_driver_area(kAvailRing);
    queue.set_device_area(kUsedRing);
    poke(*memory_storage, kUsedRing.value + offsetof(VirtqUsedHeader, idx), queue.next_used());
    poke(*memory_storage, kAvailRing.value + offsetof(VirtqAvailHeader, idx), queue.next_avail());
    lay_out_chains(input, *memory_storage, queue.size(), input.ConsumeBool(), queue.next_avail());
    corrupt(input, *memory_storage);
  } else {
    // Mostly a size a driver may choose, sometimes anything (0, not a power of two, too large).
    queue.set_size(input.ConsumeBool() ? queue_size(input) : input.ConsumeIntegral<std::uint16_t>());
    queue.set_descriptor_table(ring_address(input));
    queue.set_driver_area(ring_address(input));
    queue.set_device_area(ring_address(input));
    memory_storage = microvm::fuzz::make_memory(input.ConsumeBytes<std::uint8_t>(kMaxImage));
  }
  const GuestMemory& memory = *memory_storage;

  if (validate_first && !queue.validate(memory)) return 0;
  queue.set_ready(true);

  for (int i = 0; i < kMaxIterations; ++i) {
    if (static_cast<std::size_t>(i) < writes.size()) (void)memory.write_obj(writes[i].addr, writes[i].value);

    const std::uint16_t next_avail = queue.next_avail();
    auto popped = queue.pop(memory);
    if (!popped) {
      FUZZ_CHECK(!popped.error().message.empty(), "pop failed without saying why");
      break;  // a device stops here and reports the driver's error
    }
    if (!*popped) break;  // the ring is empty
    const DescriptorChain& chain = **popped;
    FUZZ_CHECK(queue.next_avail() == static_cast<std::uint16_t>(next_avail + 1), "pop moved next_avail from {} to {}",
               next_avail, queue.next_avail());
    check_chain(memory, queue, chain);
    // The device reads and fills the buffers (which the guest may have pointed at its own rings).
    microvm::fuzz::use_chain(memory, chain.segments, static_cast<std::byte>(i));

    const std::uint16_t next_used = queue.next_used();
    if (!queue.add_used(memory, chain.head, chain.writable_len())) break;
    FUZZ_CHECK(queue.next_used() == static_cast<std::uint16_t>(next_used + 1), "add_used moved next_used from {} to {}",
               next_used, queue.next_used());
    // The published used idx is what the device counted (the write cannot fail: add_used just did it).
    auto used_idx =
        memory.read_obj<std::uint16_t>(GuestAddress(queue.device_area().value + offsetof(VirtqUsedHeader, idx)));
    FUZZ_CHECK(used_idx.has_value() && *used_idx == queue.next_used(), "used idx in guest memory is not {}",
               queue.next_used());

    if (!queue.needs_notification(memory)) break;
  }
  return 0;
}
