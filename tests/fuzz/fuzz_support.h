// What the fuzz targets share: invariant checks that survive NDEBUG, quiet logging, the guest memory
// a fuzz input fills, and a hostile driver's tools for the device targets: rings at fixed places in
// that memory, a queue configured the way the input says, descriptor chains placed (and twisted) in
// the descriptor table and indirect tables, and an Interrupt that checks the device's contract.
#pragma once

#include <fmt/format.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

// FUZZ_CHECK(cond, "fmt", args...): an invariant that must hold for every input. Unlike assert() it
// stays in RelWithDebInfo builds; the abort is what libFuzzer reports as a crash (with the input).
#define FUZZ_CHECK(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fmt::print(stderr, "fuzz invariant failed at {}:{}: {}: ", __FILE__, __LINE__, #cond); \
      fmt::print(stderr, __VA_ARGS__);                                                       \
      fmt::print(stderr, "\n");                                                              \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

namespace microvm::fuzz {

// Guest RAM for one input: the low region is what the input fills (rings, descriptors, tables), then
// a one-page hole, then one more page. Anything straddling the hole or past the end must be refused.
inline constexpr std::uint64_t kLowSize = 64 * 1024;
inline constexpr GuestAddress kHighStart{kLowSize + 0x1000};
inline constexpr std::uint64_t kHighSize = 0x1000;

// The memory with `image` copied to guest address 0 (the rest zero). Aborts if it cannot be mapped:
// that is the harness failing, not the code under test.
inline GuestMemory make_memory(std::span<const std::uint8_t> image) {
  const std::vector ranges{MemoryRange{GuestAddress(0), kLowSize}, MemoryRange{kHighStart, kHighSize}};
  auto memory = GuestMemory::create(ranges);
  FUZZ_CHECK(memory.has_value(), "cannot create guest memory: {}", memory.error().message);
  const auto bytes = std::as_bytes(image.first(std::min<std::size_t>(image.size(), kLowSize)));
  auto written = memory->write(GuestAddress(0), bytes);
  FUZZ_CHECK(written.has_value(), "cannot fill guest memory: {}", written.error().message);
  return std::move(*memory);
}

// Writes `value` at `addr` for the harness (the driver's side); aborts if that is not guest memory.
template <typename T>
void poke(const GuestMemory& memory, std::uint64_t addr, const T& value) {
  auto written = memory.write_obj(GuestAddress(addr), value);
  FUZZ_CHECK(written.has_value(), "harness write at {:#x}: {}", addr, written.error().message);
}

// Where queue `index` of a device keeps its rings in the low region: a descriptor table, an avail
// ring and a used ring, each with room for Queue::kMaxSize entries, one page each.
struct QueueLayout {
  GuestAddress desc;
  GuestAddress avail;
  GuestAddress used;
};
inline constexpr std::uint64_t kQueueAreaSize = 0x3000;
constexpr QueueLayout queue_layout(unsigned index) {
  const std::uint64_t base = index * kQueueAreaSize;
  return {GuestAddress(base), GuestAddress(base + 0x1000), GuestAddress(base + 0x2000)};
}
static_assert(devices::virtio::desc_table_size(devices::virtio::Queue::kMaxSize) <= 0x1000);
static_assert(devices::virtio::avail_ring_size(devices::virtio::Queue::kMaxSize) <= 0x1000);
static_assert(devices::virtio::used_ring_size(devices::virtio::Queue::kMaxSize) <= 0x1000);

// A queue as the fuzzed driver set it up, and where the driver goes on from.
struct DriverQueue {
  QueueLayout layout;
  std::uint16_t size = 0;
  std::uint16_t avail_idx = 0;  // the driver's next avail idx
};

// The driver's bring-up of one queue (§2.7.13, §3.1.1) as the input says: a size the driver may
// choose, ring positions anywhere (a restored queue, near the 16-bit wrap) or 0, zeroed rings, any
// avail flags and used_event. EVENT_IDX and INDIRECT_DESC are the device's negotiated features.
inline DriverQueue set_up_queue(FuzzedDataProvider& input, const GuestMemory& memory, devices::virtio::Queue& queue,
                                const QueueLayout& layout, bool event_idx, bool indirect) {
  using devices::virtio::Queue;
  queue.reset();
  const auto size = static_cast<std::uint16_t>(Queue::kMaxSize >> input.ConsumeIntegralInRange(0, 8));
  const bool wrap = input.ConsumeBool();
  const auto next_avail = wrap ? input.ConsumeIntegral<std::uint16_t>() : std::uint16_t{0};
  const auto next_used = wrap ? input.ConsumeIntegral<std::uint16_t>() : std::uint16_t{0};
  queue.set_size(size);
  queue.set_descriptor_table(layout.desc);
  queue.set_driver_area(layout.avail);
  queue.set_device_area(layout.used);
  queue.set_event_idx(event_idx);
  queue.set_indirect(indirect);
  queue.set_next_avail(next_avail);
  queue.set_next_used(next_used);

  const std::vector<std::byte> zero(kQueueAreaSize);
  FUZZ_CHECK(memory.write(layout.desc, zero).has_value(), "cannot clear the rings at {:#x}", layout.desc.value);
  poke(memory, layout.avail.value,
       devices::virtio::VirtqAvailHeader{input.ConsumeIntegral<std::uint16_t>(), next_avail});
  // used_event (§2.7.10), after the avail ring.
  poke(memory, layout.avail.value + sizeof(devices::virtio::VirtqAvailHeader) + sizeof(std::uint16_t) * size,
       input.ConsumeIntegral<std::uint16_t>());
  poke(memory, layout.used.value, devices::virtio::VirtqUsedHeader{0, next_used});
  auto valid = queue.validate(memory);
  FUZZ_CHECK(valid.has_value(), "the harness's queue is invalid: {}", valid.error().message);
  queue.set_ready(true);
  return DriverQueue{layout, size, next_avail};
}

// The driver makes `entry` available (§2.7.13): the avail ring slot, then (publish) the avail idx.
inline void offer(const GuestMemory& memory, DriverQueue& queue, std::uint16_t entry) {
  poke(memory,
       queue.layout.avail.value + sizeof(devices::virtio::VirtqAvailHeader) +
           sizeof(std::uint16_t) * (queue.avail_idx % queue.size),
       entry);
  ++queue.avail_idx;
}
inline void publish(const GuestMemory& memory, const DriverQueue& queue) {
  poke(memory, queue.layout.avail.value + offsetof(devices::virtio::VirtqAvailHeader, idx), queue.avail_idx);
}

// The used ring entry at free-running position `position`.
inline devices::virtio::VirtqUsedElem used_elem(const GuestMemory& memory, const DriverQueue& queue,
                                                std::uint16_t position) {
  const std::uint64_t slot = queue.layout.used.value + sizeof(devices::virtio::VirtqUsedHeader) +
                             sizeof(devices::virtio::VirtqUsedElem) * (position % queue.size);
  auto used = memory.read_obj<devices::virtio::VirtqUsedElem>(GuestAddress(slot));
  FUZZ_CHECK(used.has_value(), "cannot read used ring entry {:#x}", slot);
  return *used;
}

// A hostile driver's choices, as often as the input's hostility (0-4) says.
class Hostility {
 public:
  Hostility(FuzzedDataProvider& input, int level) : input_(input), level_(level) {}

  // A twist, as often as the hostility says (never at 0, nor once the input is used up:
  // FuzzedDataProvider then returns the low end of every range).
  bool twist() { return level_ > 0 && input_.ConsumeIntegralInRange(0, 15) >= 16 - level_; }

  // An address a hostile driver may give a buffer or table: the rings, the edge of the low region,
  // the hole, the high region, just below 2^64, anything.
  std::uint64_t address() {
    const auto offset = input_.ConsumeIntegral<std::uint16_t>();
    switch (input_.ConsumeIntegralInRange(0, 5)) {
      case 0: return offset % kLowSize;
      case 1: return kLowSize - offset % 0x100;
      case 2: return kLowSize + offset % (kHighStart.value - kLowSize);
      case 3: return kHighStart.value + offset % kHighSize;
      case 4: return UINT64_MAX - offset;
      default: return input_.ConsumeIntegral<std::uint64_t>();
    }
  }

  // A hostile driver's change to one descriptor.
  void twist_descriptor(devices::virtio::VirtqDesc& desc) {
    switch (input_.ConsumeIntegralInRange(0, 4)) {
      case 0: desc.flags ^= input_.ConsumeIntegralInRange<std::uint16_t>(1, 7); break;  // NEXT, WRITE, INDIRECT
      case 1: desc.next = input_.ConsumeIntegral<std::uint16_t>(); break;
      case 2: desc.len = input_.ConsumeIntegral<std::uint32_t>(); break;
      case 3: desc.len += input_.ConsumeIntegralInRange<std::uint32_t>(1, 32); break;
      default: desc.addr = address(); break;
    }
  }

  [[nodiscard]] int level() const { return level_; }

 private:
  FuzzedDataProvider& input_;
  const int level_;
};

// Puts descriptor chains into a queue's descriptor table (from slot 0 each round) and into indirect
// tables carved from [tables_begin, tables_end): all direct, all in an indirect table, or direct
// ones followed by an indirect table, as the input says; each descriptor may be twisted.
class ChainPlacer {
 public:
  ChainPlacer(FuzzedDataProvider& input, const GuestMemory& memory, Hostility& hostility, std::uint64_t tables_begin,
              std::uint64_t tables_end)
      : input_(input), memory_(memory), hostility_(hostility), tables_begin_(tables_begin), tables_end_(tables_end) {}

  // A new round: the device returned every earlier chain (or stopped for good).
  void start_round() {
    slot_ = 0;
    table_cursor_ = tables_begin_;
  }

  // The chain's head, or nullopt when the table or the indirect area is full. `descs` carry
  // addresses, lengths and the WRITE flag; NEXT and `next` are filled in here.
  std::optional<std::uint16_t> place(const DriverQueue& queue, std::vector<devices::virtio::VirtqDesc> descs) {
    using devices::virtio::kDescFlagIndirect;
    using devices::virtio::kDescFlagNext;
    using devices::virtio::VirtqDesc;
    const std::size_t count = descs.size();
    if (count == 0) return std::nullopt;
    std::size_t direct = count;
    switch (input_.ConsumeIntegralInRange(0, 3)) {
      case 2: direct = 0; break;
      case 3: direct = input_.ConsumeIntegralInRange<std::size_t>(0, count - 1); break;
      default: break;
    }
    const std::size_t slots = direct + (direct < count ? 1 : 0);
    const std::size_t table_bytes = sizeof(VirtqDesc) * (count - direct);
    if (slot_ + slots > queue.size || table_cursor_ + table_bytes > tables_end_) return std::nullopt;

    const auto head = static_cast<std::uint16_t>(slot_);
    for (std::size_t i = 0; i < count; ++i) {
      VirtqDesc& desc = descs[i];
      const bool in_table = i >= direct;
      const bool last = in_table ? i + 1 == count : i + 1 == count && direct == count;
      if (!last) desc.flags |= kDescFlagNext;
      desc.next = static_cast<std::uint16_t>(in_table ? i - direct + 1 : slot_ + i + 1);
      if (hostility_.twist()) hostility_.twist_descriptor(desc);
      const std::uint64_t at = in_table ? table_cursor_ + sizeof(VirtqDesc) * (i - direct)
                                        : queue.layout.desc.value + sizeof(VirtqDesc) * (slot_ + i);
      poke(memory_, at, desc);
    }
    if (direct < count) {
      VirtqDesc desc{table_cursor_, static_cast<std::uint32_t>(table_bytes), kDescFlagIndirect, 0};
      if (hostility_.twist()) hostility_.twist_descriptor(desc);
      poke(memory_, queue.layout.desc.value + sizeof(VirtqDesc) * (slot_ + direct), desc);
      table_cursor_ += table_bytes;
    }
    slot_ += slots;
    return head;
  }

 private:
  FuzzedDataProvider& input_;
  const GuestMemory& memory_;
  Hostility& hostility_;
  const std::uint64_t tables_begin_;
  const std::uint64_t tables_end_;
  std::size_t slot_ = 0;            // next free descriptor this round
  std::uint64_t table_cursor_ = 0;  // next free indirect table byte this round
};

// Buffers carved from [begin, end) in order, wrapping to the start (overlapping earlier ones) when full.
class BufferArena {
 public:
  BufferArena(std::uint64_t begin, std::uint64_t end) : begin_(begin), end_(end), cursor_(begin) {}
  void start_round() { cursor_ = begin_; }
  std::uint64_t allocate(std::uint64_t len) {
    if (cursor_ + len >= end_) cursor_ = begin_;
    const std::uint64_t addr = cursor_;
    cursor_ += len;
    return addr;
  }

 private:
  const std::uint64_t begin_;
  const std::uint64_t end_;
  std::uint64_t cursor_;
};

// An Interrupt that holds the device to its side of the contract (virtio_device.h): no notification
// after a device error, at most one device error per activation, and always with a message.
class CheckedInterrupt final : public devices::virtio::Interrupt {
 public:
  void signal_used_buffers() override {
    FUZZ_CHECK(!failed, "used buffer notification after a device error");
    ++used;
  }
  void signal_config_change() override {
    FUZZ_CHECK(!failed, "configuration change notification after a device error");
    ++config;
  }
  void signal_device_error(const Error& error) override {
    FUZZ_CHECK(!failed, "a second device error before reset: {}", error.message);
    FUZZ_CHECK(!error.message.empty(), "device error without a message");
    failed = true;
  }

  int used = 0;
  int config = 0;
  bool failed = false;  // the harness clears it when it resets the device
};

// What a device does with a popped chain: reads every device-readable segment and fills every
// device-writable one with `fill` (also where the guest pointed them at its own rings). Every segment
// must be guest memory: descriptor_chain.h promises so.
inline void use_chain(const GuestMemory& memory, std::span<const devices::virtio::Segment> segments, std::byte fill) {
  for (const devices::virtio::Segment& segment : segments) {
    auto bytes = memory.slice(segment.addr, segment.len);
    FUZZ_CHECK(bytes.has_value(), "chain segment {:#x}+{:#x}: {}", segment.addr.value, segment.len,
               bytes.error().message);
    if (segment.device_writable) {
      std::ranges::fill(*bytes, fill);
    } else {
      std::byte seen{0};
      for (const std::byte b : *bytes) seen ^= b;
      [[maybe_unused]] const volatile std::byte sink = seen;  // the reads are not optimized away
    }
  }
}

// Guest-triggerable warnings (a bad queue configuration, say) would flood the fuzzer's output.
inline void silence_logging() {
  spdlog::set_level(spdlog::level::off);
}

}  // namespace microvm::fuzz
