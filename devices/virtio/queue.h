// The device side of a split virtqueue (virtio 1.2 §2.7). It knows no device type and no
// notification mechanism: a transport configures it, a device pops descriptor chains and returns
// them as used, and asks whether the driver needs an interrupt. Everything the driver wrote is
// untrusted: each violation is an Error naming what the guest did wrong (the device then sets
// DEVICE_NEEDS_RESET); guest memory is only touched through GuestMemory's checked accessors.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/error.h"
#include "devices/virtio/descriptor_chain.h"
#include "memory/guest_memory.h"

namespace microvm::devices::virtio {

// Rings are little-endian (§2.7, non-legacy interface); the host is too, so fields are plain integers.
static_assert(std::endian::native == std::endian::little);

// Feature bits (§6 "Reserved Feature Bits").
inline constexpr unsigned kFeatureIndirectDesc = 28;  // §2.7.5.3: descriptors may refer to indirect tables
inline constexpr unsigned kFeatureEventIdx = 29;      // §2.7.7, §2.7.10: used_event / avail_event
inline constexpr unsigned kFeatureVersion1 = 32;      // §6: compliant with virtio 1.x (not legacy)
static_assert(kFeatureVersion1 == 32);

// Descriptor flags (§2.7.5).
inline constexpr std::uint16_t kDescFlagNext = 1;      // the buffer continues via `next`
inline constexpr std::uint16_t kDescFlagWrite = 2;     // device write-only (otherwise device read-only)
inline constexpr std::uint16_t kDescFlagIndirect = 4;  // the buffer is a table of descriptors (§2.7.5.3)
// Avail ring flags (§2.7.6): the driver does not want used buffer notifications (no EVENT_IDX only).
inline constexpr std::uint16_t kAvailFlagNoInterrupt = 1;
// Used ring flags (§2.7.8): the device does not want available buffer notifications.
inline constexpr std::uint16_t kUsedFlagNoNotify = 1;

struct VirtqDesc {      // §2.7.5 struct virtq_desc
  std::uint64_t addr;   // 0: guest-physical address of the buffer
  std::uint32_t len;    // 8
  std::uint16_t flags;  // 12: kDescFlag*
  std::uint16_t next;   // 14: next descriptor when flags & NEXT

  constexpr bool operator==(const VirtqDesc&) const = default;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, len) == 8 && offsetof(VirtqDesc, flags) == 12 && offsetof(VirtqDesc, next) == 14);

struct VirtqAvailHeader {  // §2.7.6 struct virtq_avail, followed by le16 ring[size] and le16 used_event
  std::uint16_t flags;     // 0: kAvailFlag*
  std::uint16_t idx;       // 2: where the driver puts the next entry (free-running)
};
static_assert(sizeof(VirtqAvailHeader) == 4);
using VirtqAvailElem = std::uint16_t;  // head index of a descriptor chain
static_assert(sizeof(VirtqAvailElem) == 2);

struct VirtqUsedHeader {  // §2.7.8 struct virtq_used, followed by virtq_used_elem ring[size] and le16 avail_event
  std::uint16_t flags;    // 0: kUsedFlag*
  std::uint16_t idx;      // 2: where the device puts the next entry (free-running)
};
static_assert(sizeof(VirtqUsedHeader) == 4);

struct VirtqUsedElem {  // §2.7.8 struct virtq_used_elem
  std::uint32_t id;     // 0: head of the used descriptor chain
  std::uint32_t len;    // 4: bytes written into the chain's device-writable buffers

  constexpr bool operator==(const VirtqUsedElem&) const = default;
};
static_assert(sizeof(VirtqUsedElem) == 8 && offsetof(VirtqUsedElem, len) == 4);

// Part sizes and alignments (§2.7 table "Virtqueue Part / Alignment / Size").
inline constexpr std::uint64_t kDescTableAlign = 16;
inline constexpr std::uint64_t kAvailRingAlign = 2;
inline constexpr std::uint64_t kUsedRingAlign = 4;
constexpr std::uint64_t desc_table_size(std::uint16_t size) {
  return sizeof(VirtqDesc) * size;
}
constexpr std::uint64_t avail_ring_size(std::uint16_t size) {
  return 6 + sizeof(VirtqAvailElem) * size;
}
constexpr std::uint64_t used_ring_size(std::uint16_t size) {
  return 6 + sizeof(VirtqUsedElem) * size;
}

class Queue {
 public:
  static constexpr std::uint16_t kMaxSize = 256;  // what the device offers; the spec allows up to 32768

  // Transport side. The queue size starts at max_size(); the driver may lower it.
  [[nodiscard]] static constexpr std::uint16_t max_size() { return kMaxSize; }
  void set_size(std::uint16_t size) { size_ = size; }
  void set_descriptor_table(GuestAddress addr) { desc_table_ = addr; }
  void set_driver_area(GuestAddress addr) { avail_ring_ = addr; }  // the avail ring
  void set_device_area(GuestAddress addr) { used_ring_ = addr; }   // the used ring
  void set_ready(bool ready) { ready_ = ready; }
  void set_event_idx(bool enabled) { event_idx_ = enabled; }  // kFeatureEventIdx negotiated
  void set_indirect(bool enabled) { indirect_ = enabled; }    // kFeatureIndirectDesc negotiated
  // Ring positions, for restoring a saved queue (and for tests near the 16-bit wrap).
  void set_next_avail(std::uint16_t index) { next_avail_ = index; }
  void set_next_used(std::uint16_t index) { next_used_ = signalled_used_ = index; }
  // Back to the state after device reset (§2.4): not ready, max size, no areas, no features.
  void reset() { *this = Queue(); }

  // Everything the queue knows, for a snapshot: its configuration, the negotiated features and the
  // device's ring positions (the driver's live in guest memory).
  struct State {
    std::uint16_t size = kMaxSize;
    bool ready = false;
    std::uint64_t desc_table = 0;
    std::uint64_t avail_ring = 0;
    std::uint64_t used_ring = 0;
    bool event_idx = false;
    bool indirect = false;
    std::uint16_t next_avail = 0;
    std::uint16_t next_used = 0;
    std::uint16_t signalled_used = 0;

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const;
  // Takes `state` over; a ready queue must pass validate() against `memory`, as when the driver set it up.
  [[nodiscard]] Result<void> restore(const State& state, const GuestMemory& memory);

  [[nodiscard]] std::uint16_t size() const { return size_; }
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] GuestAddress descriptor_table() const { return desc_table_; }
  [[nodiscard]] GuestAddress driver_area() const { return avail_ring_; }
  [[nodiscard]] GuestAddress device_area() const { return used_ring_; }
  [[nodiscard]] std::uint16_t next_avail() const { return next_avail_; }
  [[nodiscard]] std::uint16_t next_used() const { return next_used_; }

  // Checks the configuration the driver wrote; the transport calls it when the driver sets ready.
  [[nodiscard]] Result<void> validate(const GuestMemory& memory) const;

  // Device side. The next available chain, or nullopt when the ring is empty (or the queue is not ready).
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop(const GuestMemory& memory);
  // Returns chain `head` to the driver with `written_len` bytes written, and publishes the used idx.
  [[nodiscard]] Result<void> add_used(const GuestMemory& memory, std::uint16_t head, std::uint32_t written_len);
  // Whether the driver wants a used buffer notification for the entries added since the last call.
  [[nodiscard]] Result<bool> needs_notification(const GuestMemory& memory);

 private:
  [[nodiscard]] Result<void> check_size() const;
  [[nodiscard]] Result<DescriptorChain> walk_chain(const GuestMemory& memory, std::uint16_t head) const;

  std::uint16_t size_ = kMaxSize;
  GuestAddress desc_table_;
  GuestAddress avail_ring_;
  GuestAddress used_ring_;
  bool ready_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  std::uint16_t next_avail_ = 0;      // avail ring position of the next chain to pop
  std::uint16_t next_used_ = 0;       // used ring position of the next entry (= the published used idx)
  std::uint16_t signalled_used_ = 0;  // next_used_ at the last needs_notification()
};

}  // namespace microvm::devices::virtio
