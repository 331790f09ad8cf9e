#include "devices/virtio/queue.h"

#include <atomic>
#include <bit>
#include <utility>

namespace microvm::devices::virtio {

namespace {

constexpr std::uint64_t kAvailFlagsOffset = offsetof(VirtqAvailHeader, flags);
constexpr std::uint64_t kAvailIdxOffset = offsetof(VirtqAvailHeader, idx);
constexpr std::uint64_t kAvailRingOffset = sizeof(VirtqAvailHeader);
constexpr std::uint64_t kUsedIdxOffset = offsetof(VirtqUsedHeader, idx);
constexpr std::uint64_t kUsedRingOffset = sizeof(VirtqUsedHeader);
// §2.7.5.2: drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total.
constexpr std::uint64_t kMaxChainBytes = 1ULL << 32;

Result<GuestAddress> at(GuestAddress base, std::uint64_t offset) {
  auto addr = base.checked_add(offset);
  if (!addr) return fail("virtqueue address {:#x}+{:#x} wraps around 2^64", base.value, offset);
  return *addr;
}

// The free-running 16-bit indices are written by one side while the other reads them: access them
// as single 16-bit atomics (never torn); the fences around the calls give the ordering.
Result<std::uint16_t> load_index(const GuestMemory& memory, GuestAddress addr) {
  auto bytes = TRY(memory.slice(addr, sizeof(std::uint16_t)));
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(std::uint16_t) != 0) {
    return fail("virtqueue index at {:#x} is misaligned", addr.value);
  }
  return std::atomic_ref(*reinterpret_cast<std::uint16_t*>(bytes.data())).load(std::memory_order_relaxed);
}

Result<void> store_index(const GuestMemory& memory, GuestAddress addr, std::uint16_t value) {
  auto bytes = TRY(memory.slice(addr, sizeof(std::uint16_t)));
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(std::uint16_t) != 0) {
    return fail("virtqueue index at {:#x} is misaligned", addr.value);
  }
  std::atomic_ref(*reinterpret_cast<std::uint16_t*>(bytes.data())).store(value, std::memory_order_relaxed);
  return {};
}

// virtio_queue.h vring_need_event (§2.7.7 with EVENT_IDX): notify when the entry at `event` is among
// those added in [old_idx, new_idx), all modulo 2^16.
bool vring_need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old_idx) {
  return static_cast<std::uint16_t>(new_idx - event - 1) < static_cast<std::uint16_t>(new_idx - old_idx);
}

Result<void> check_area(const GuestMemory& memory, const char* what, GuestAddress addr, std::uint64_t len,
                        std::uint64_t align) {
  if (addr.value % align != 0) return fail("{} at {:#x} is not {}-byte aligned", what, addr.value, align);
  if (!memory.contains(addr, len)) return fail("{} {:#x}+{:#x} is outside guest memory", what, addr.value, len);
  return {};
}

}  // namespace

Queue::State Queue::state() const {
  return State{size_,      ready_,    desc_table_.value, avail_ring_.value, used_ring_.value,
               event_idx_, indirect_, next_avail_,       next_used_,        signalled_used_};
}

Result<void> Queue::restore(const State& state, const GuestMemory& memory) {
  Queue restored;
  restored.size_ = state.size;
  restored.desc_table_ = GuestAddress(state.desc_table);
  restored.avail_ring_ = GuestAddress(state.avail_ring);
  restored.used_ring_ = GuestAddress(state.used_ring);
  restored.event_idx_ = state.event_idx;
  restored.indirect_ = state.indirect;
  restored.next_avail_ = state.next_avail;
  restored.next_used_ = state.next_used;
  restored.signalled_used_ = state.signalled_used;
  if (state.ready) {
    TRY_VOID(restored.validate(memory));
    restored.ready_ = true;
  }
  *this = restored;
  return {};
}

Result<void> Queue::check_size() const {
  if (size_ == 0 || size_ > kMaxSize || !std::has_single_bit(size_)) {
    return fail("queue size {} is not a power of two between 1 and {}", size_, kMaxSize);
  }
  return {};
}

Result<void> Queue::validate(const GuestMemory& memory) const {
  TRY_VOID(check_size());
  TRY_VOID(check_area(memory, "descriptor table", desc_table_, desc_table_size(size_), kDescTableAlign));
  TRY_VOID(check_area(memory, "avail ring", avail_ring_, avail_ring_size(size_), kAvailRingAlign));
  TRY_VOID(check_area(memory, "used ring", used_ring_, used_ring_size(size_), kUsedRingAlign));
  return {};
}

Result<std::optional<DescriptorChain>> Queue::pop(const GuestMemory& memory) {
  if (!ready_) return std::nullopt;
  TRY_VOID(check_size());
  const GuestAddress idx_addr = TRY(at(avail_ring_, kAvailIdxOffset));
  const std::uint16_t avail_idx = TRY(load_index(memory, idx_addr));
  const auto pending = static_cast<std::uint16_t>(avail_idx - next_avail_);
  if (pending > size_) {
    return fail("driver advanced avail idx by {} (from {} to {}), more than the queue size {}", pending, next_avail_,
                avail_idx, size_);
  }
  std::optional<DescriptorChain> chain;
  if (pending != 0) {
    std::atomic_thread_fence(std::memory_order_acquire);  // ring entry and descriptors are read after idx
    const GuestAddress slot = TRY(at(avail_ring_, kAvailRingOffset + sizeof(VirtqAvailElem) * (next_avail_ % size_)));
    const auto head = TRY(memory.read_obj<VirtqAvailElem>(slot));
    if (head >= size_) {
      return fail("avail ring entry {} names descriptor {}, beyond the queue size {}", next_avail_, head, size_);
    }
    chain = TRY(walk_chain(memory, head));
    ++next_avail_;
  }
  if (event_idx_) {
    // §2.7.10: ask for a notification when the driver adds the entry we will look at next. The full
    // fence orders this store before the next load of avail idx, so a new entry is never missed.
    const GuestAddress avail_event = TRY(at(used_ring_, kUsedRingOffset + sizeof(VirtqUsedElem) * size_));
    TRY_VOID(store_index(memory, avail_event, next_avail_));
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  return chain;
}

Result<DescriptorChain> Queue::walk_chain(const GuestMemory& memory, std::uint16_t head) const {
  DescriptorChain chain{head, {}};
  GuestAddress table = desc_table_;
  std::uint32_t table_size = size_;  // entries in the table being walked
  bool in_indirect = false;
  std::uint16_t index = head;  // always < table_size
  std::uint32_t visited = 0;   // descriptors read from this table: bounds the walk, so a loop ends
  std::uint64_t total_len = 0;
  bool seen_writable = false;
  const char* where = "descriptor";
  for (;;) {
    if (++visited > table_size) {
      return fail("descriptor chain from head {} has more than {} descriptors (a loop?)", head, table_size);
    }
    // One copy of the descriptor, validated and used as copied: the driver cannot change it under us.
    const GuestAddress desc_addr = TRY(at(table, sizeof(VirtqDesc) * index));
    const auto desc = TRY(memory.read_obj<VirtqDesc>(desc_addr));

    if ((desc.flags & kDescFlagIndirect) != 0) {
      if (!indirect_) return fail("{} {} is INDIRECT but kFeatureIndirectDesc was not negotiated", where, index);
      if (in_indirect) return fail("indirect descriptor {} refers to another indirect table", index);
      if ((desc.flags & kDescFlagNext) != 0) return fail("descriptor {} sets both INDIRECT and NEXT", index);
      // §2.7.5.3: the table holds len / 16 descriptors; §2.7.5.3.1: a chain is at most queue size long.
      if (desc.len == 0 || desc.len % sizeof(VirtqDesc) != 0 || desc.len / sizeof(VirtqDesc) > size_) {
        return fail(
            "descriptor {} refers to an indirect table of {} bytes (need a non-zero multiple of 16, at most {})", index,
            desc.len, desc_table_size(size_));
      }
      if (!memory.contains(GuestAddress(desc.addr), desc.len)) {
        return fail("descriptor {} refers to an indirect table {:#x}+{:#x} outside guest memory", index, desc.addr,
                    desc.len);
      }
      table = GuestAddress(desc.addr);
      table_size = desc.len / static_cast<std::uint32_t>(sizeof(VirtqDesc));
      in_indirect = true;
      where = "indirect descriptor";
      index = 0;
      visited = 0;
      continue;
    }

    if (!GuestAddress(desc.addr).checked_add(desc.len)) {
      return fail("{} {}: buffer {:#x}+{:#x} wraps around 2^64", where, index, desc.addr, desc.len);
    }
    if (!memory.contains(GuestAddress(desc.addr), desc.len)) {
      return fail("{} {}: buffer {:#x}+{:#x} is outside guest memory", where, index, desc.addr, desc.len);
    }
    const bool writable = (desc.flags & kDescFlagWrite) != 0;
    if (seen_writable && !writable) {  // §2.7.4.2: device-writable descriptors come last
      return fail("{} {} is device-readable but follows a device-writable one", where, index);
    }
    seen_writable = writable;
    total_len += desc.len;
    if (total_len >= kMaxChainBytes) {
      return fail("descriptor chain from head {} reaches {} bytes, over the 2^32 limit", head, total_len);
    }
    chain.segments.push_back(Segment{GuestAddress(desc.addr), desc.len, writable});

    if ((desc.flags & kDescFlagNext) == 0) return chain;
    if (desc.next >= table_size) {
      return fail("{} {} chains to {}, beyond the table of {} descriptors", where, index, desc.next, table_size);
    }
    index = desc.next;
  }
}

Result<void> Queue::add_used(const GuestMemory& memory, std::uint16_t head, std::uint32_t written_len) {
  if (!ready_) return fail("add_used on a virtqueue that is not ready");
  TRY_VOID(check_size());
  if (head >= size_) return fail("used descriptor head {} is beyond the queue size {}", head, size_);
  const GuestAddress slot = TRY(at(used_ring_, kUsedRingOffset + sizeof(VirtqUsedElem) * (next_used_ % size_)));
  TRY_VOID(memory.write_obj(slot, VirtqUsedElem{head, written_len}));
  // §2.7.8.2: the entry (and the data written to the buffers) is visible before the new used idx.
  std::atomic_thread_fence(std::memory_order_release);
  const GuestAddress idx_addr = TRY(at(used_ring_, kUsedIdxOffset));
  TRY_VOID(store_index(memory, idx_addr, static_cast<std::uint16_t>(next_used_ + 1)));
  ++next_used_;
  return {};
}

Result<bool> Queue::needs_notification(const GuestMemory& memory) {
  if (!ready_) return false;
  TRY_VOID(check_size());
  // The used idx we published must be visible before we read the driver's suppression fields.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint16_t old_used = std::exchange(signalled_used_, next_used_);
  if (event_idx_) {  // §2.7.7: notify when used idx moves past used_event
    const GuestAddress used_event_addr = TRY(at(avail_ring_, kAvailRingOffset + sizeof(VirtqAvailElem) * size_));
    const std::uint16_t used_event = TRY(load_index(memory, used_event_addr));
    return vring_need_event(used_event, next_used_, old_used);
  }
  if (old_used == next_used_) return false;  // nothing new to tell the driver
  const GuestAddress flags_addr = TRY(at(avail_ring_, kAvailFlagsOffset));
  const auto flags = TRY(memory.read_obj<std::uint16_t>(flags_addr));
  return (flags & kAvailFlagNoInterrupt) == 0;
}

}  // namespace microvm::devices::virtio
