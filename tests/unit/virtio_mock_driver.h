// A driver-side mock of a split virtqueue (virtio 1.2 §2.7.13, §2.7.14) in fake guest memory: it
// lays out the three parts, writes descriptors (directly or through an indirect table), publishes
// the avail idx and reads the used ring back, so tests can drive devices::virtio::Queue from the
// driver's side. Raw setters let tests write whatever a hostile driver would. Several drivers can
// share one guest memory (one per queue of a multi-queue device), each laid out `base` bytes higher.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace microvm::test {

class MockVirtqDriver {
 public:
  static constexpr std::uint64_t kMemorySize = 1ULL << 20;  // default: 1 MiB of guest RAM at 0
  static constexpr GuestAddress kDescTable{0x1000};
  static constexpr GuestAddress kAvailRing{0x3000};
  static constexpr GuestAddress kUsedRing{0x4000};
  static constexpr GuestAddress kIndirectTables{0x8000};  // indirect tables are carved from here
  static constexpr GuestAddress kBuffers{0x10000};        // data buffers are carved from here
  // (The addresses above are those of a driver at base 0; one at `base` has each of them `base` higher.)

  struct Buffer {
    std::uint32_t len = 0;
    bool writable = false;
  };

  explicit MockVirtqDriver(std::uint16_t size, std::uint64_t memory_size = kMemorySize)
      : size_(size), memory_(std::make_shared<const GuestMemory>(create_memory(memory_size))) {}
  // Another queue in `other`'s guest memory, with its rings, tables and buffers in [base, base + kMemorySize).
  MockVirtqDriver(std::uint16_t size, const MockVirtqDriver& other, std::uint64_t base)
      : size_(size),
        memory_(other.memory_),
        base_(base),
        next_buffer_(base + kBuffers.value),
        next_indirect_(base + kIndirectTables.value) {
    if (!memory_->contains(GuestAddress(base), kMemorySize)) {
      throw std::runtime_error("mock driver: the shared guest memory has no room at the base");
    }
  }

  [[nodiscard]] const GuestMemory& memory() const { return *memory_; }
  [[nodiscard]] std::uint16_t size() const { return size_; }
  [[nodiscard]] GuestAddress desc_table() const { return at(kDescTable); }
  [[nodiscard]] GuestAddress avail_ring() const { return at(kAvailRing); }
  [[nodiscard]] GuestAddress used_ring() const { return at(kUsedRing); }

  // Points `queue` at this driver's rings with its size, negotiated features, and sets it ready.
  void configure(devices::virtio::Queue& queue, bool event_idx = false, bool indirect = true) const {
    queue.set_size(size_);
    queue.set_descriptor_table(desc_table());
    queue.set_driver_area(avail_ring());
    queue.set_device_area(used_ring());
    queue.set_event_idx(event_idx);
    queue.set_indirect(indirect);
    queue.set_ready(true);
  }

  // A buffer in guest memory, 16-byte aligned; the area is reused round-robin once the first MiB is used up.
  GuestAddress alloc_buffer(std::uint32_t len) {
    return bump(next_buffer_, len, base_ + kBuffers.value, base_ + kMemorySize);
  }

  // Raw descriptor writes, for chains a well-behaved driver would never build.
  void write_desc(std::uint16_t index, const devices::virtio::VirtqDesc& desc) {
    write(GuestAddress(desc_table().value + 16ULL * index), desc);
  }
  void write_table_desc(GuestAddress table, std::uint16_t index, const devices::virtio::VirtqDesc& desc) {
    write(GuestAddress(table.value + 16ULL * index), desc);
  }
  GuestAddress alloc_indirect_table(std::uint32_t entries) {
    return bump(next_indirect_, 16ULL * entries, base_ + kIndirectTables.value, base_ + kBuffers.value);
  }

  // Builds a chain in free descriptor slots (one per buffer), offers it and returns the head.
  // The addresses of the buffers land in `addrs` (if given).
  std::uint16_t add_chain(const std::vector<Buffer>& buffers, std::vector<GuestAddress>* addrs = nullptr) {
    std::vector<std::uint16_t> slots;
    for (std::size_t i = 0; i < buffers.size(); ++i) slots.push_back(take_slot());
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      const GuestAddress addr = alloc_buffer(buffers[i].len);
      if (addrs != nullptr) addrs->push_back(addr);
      const bool last = i + 1 == buffers.size();
      write_desc(slots[i], desc_for(addr, buffers[i], last ? 0 : slots[i + 1], last));
    }
    offer(slots.front());
    return slots.front();
  }

  // The same chain described by an indirect table that one descriptor in the main table refers to.
  std::uint16_t add_indirect_chain(const std::vector<Buffer>& buffers, std::vector<GuestAddress>* addrs = nullptr) {
    const auto entries = static_cast<std::uint16_t>(buffers.size());
    const GuestAddress table = alloc_indirect_table(entries);
    for (std::uint16_t i = 0; i < entries; ++i) {
      const GuestAddress addr = alloc_buffer(buffers[i].len);
      if (addrs != nullptr) addrs->push_back(addr);
      const bool last = i + 1 == entries;
      write_table_desc(table, i, desc_for(addr, buffers[i], static_cast<std::uint16_t>(last ? 0 : i + 1), last));
    }
    const std::uint16_t head = take_slot();
    write_desc(head, {table.value, 16U * entries, devices::virtio::kDescFlagIndirect, 0});
    offer(head);
    return head;
  }

  // Puts `head` in the next avail ring entry and publishes the new avail idx (§2.7.13).
  void offer(std::uint16_t head) {
    write(GuestAddress(avail_ring().value + 4 + 2ULL * (avail_idx_ % size_)), head);
    set_avail_idx(static_cast<std::uint16_t>(avail_idx_ + 1));
  }
  void set_avail_idx(std::uint16_t idx) {
    avail_idx_ = idx;
    write(GuestAddress(avail_ring().value + 2), idx);
  }
  void set_avail_flags(std::uint16_t flags) { write(avail_ring(), flags); }
  void set_used_event(std::uint16_t value) { write(GuestAddress(avail_ring().value + 4 + 2ULL * size_), value); }
  // Starts both rings at `idx` (the device side must be told with set_next_avail / set_next_used).
  void start_at(std::uint16_t idx) {
    set_avail_idx(idx);
    write(GuestAddress(used_ring().value + 2), idx);
  }

  [[nodiscard]] std::uint16_t avail_idx() const { return avail_idx_; }
  // Chains offered and not yet returned in the used ring.
  [[nodiscard]] std::uint16_t outstanding() const { return static_cast<std::uint16_t>(avail_idx_ - used_idx()); }
  // With EVENT_IDX (§2.7.10): whether a driver that moved avail idx from `old_idx` to avail_idx() must
  // notify the device (vring_need_event against the device's avail_event); without it, always.
  [[nodiscard]] bool kick_needed(std::uint16_t old_idx, bool event_idx) const {
    if (!event_idx) return true;
    const std::uint16_t event = avail_event();
    return static_cast<std::uint16_t>(avail_idx_ - event - 1) < static_cast<std::uint16_t>(avail_idx_ - old_idx);
  }
  [[nodiscard]] std::uint16_t used_idx() const { return read<std::uint16_t>(GuestAddress(used_ring().value + 2)); }
  [[nodiscard]] std::uint16_t avail_event() const {
    return read<std::uint16_t>(GuestAddress(used_ring().value + 4 + 8ULL * size_));
  }
  // The used ring entry at free-running position `position`.
  [[nodiscard]] devices::virtio::VirtqUsedElem used_elem(std::uint16_t position) const {
    return read<devices::virtio::VirtqUsedElem>(GuestAddress(used_ring().value + 4 + 8ULL * (position % size_)));
  }

  template <typename T>
  void write(GuestAddress addr, const T& value) const {
    auto result = memory_->write_obj(addr, value);
    if (!result) throw std::runtime_error("mock driver write: " + result.error().message);
  }
  template <typename T>
  [[nodiscard]] T read(GuestAddress addr) const {
    auto result = memory_->read_obj<T>(addr);
    if (!result) throw std::runtime_error("mock driver read: " + result.error().message);
    return *result;
  }

 private:
  [[nodiscard]] GuestAddress at(GuestAddress base0) const { return GuestAddress(base_ + base0.value); }

  static GuestMemory create_memory(std::uint64_t memory_size) {
    const MemoryRange range{GuestAddress(0), memory_size};
    auto memory = GuestMemory::create(std::span(&range, 1));
    if (!memory) throw std::runtime_error("cannot create guest memory: " + memory.error().message);
    return std::move(*memory);
  }

  static devices::virtio::VirtqDesc desc_for(GuestAddress addr, const Buffer& buffer, std::uint16_t next, bool last) {
    std::uint16_t flags = buffer.writable ? devices::virtio::kDescFlagWrite : 0;
    if (!last) flags |= devices::virtio::kDescFlagNext;
    return {addr.value, buffer.len, flags, next};
  }

  std::uint16_t take_slot() {
    const std::uint16_t slot = next_slot_;
    next_slot_ = static_cast<std::uint16_t>((next_slot_ + 1) % size_);
    return slot;
  }

  // Carves len bytes (plus a 16-byte gap) from [first, limit), wrapping back to `first` when full.
  static GuestAddress bump(std::uint64_t& cursor, std::uint64_t len, std::uint64_t first, std::uint64_t limit) {
    const std::uint64_t span = (len + 15) / 16 * 16 + 16;
    if (span > limit - first) throw std::runtime_error("mock driver: allocation too large");
    if (cursor + span > limit) cursor = first;
    const GuestAddress addr(cursor);
    cursor += span;
    return addr;
  }

  std::uint16_t size_;
  std::shared_ptr<const GuestMemory> memory_;  // shared by the drivers of one device's queues
  std::uint64_t base_ = 0;                     // where this driver's layout starts in memory_
  std::uint16_t avail_idx_ = 0;
  std::uint16_t next_slot_ = 0;
  std::uint64_t next_buffer_ = kBuffers.value;
  std::uint64_t next_indirect_ = kIndirectTables.value;
};

}  // namespace microvm::test
