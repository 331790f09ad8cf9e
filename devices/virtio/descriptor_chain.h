// A descriptor chain popped from a virtqueue, already validated: every segment lies inside guest
// memory, device-readable segments come before device-writable ones, and the total length fits in
// 32 bits. Devices read and write the segments through GuestMemory; the chain holds no host pointers.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace microvm::devices::virtio {

// One buffer element of a chain (virtio 1.2 §2.7.5: one descriptor, or one entry of an indirect table).
struct Segment {
  GuestAddress addr;
  std::uint32_t len = 0;
  bool device_writable = false;

  constexpr bool operator==(const Segment&) const = default;
};

struct DescriptorChain {
  std::uint16_t head = 0;         // descriptor table index the driver put in the avail ring; goes back in add_used
  std::vector<Segment> segments;  // in chain order: readable ones first, then writable ones

  // Bytes the device may read / write over the whole chain (fits in 32 bits: the walk checks it).
  [[nodiscard]] std::uint32_t readable_len() const { return total(false); }
  [[nodiscard]] std::uint32_t writable_len() const { return total(true); }

 private:
  [[nodiscard]] std::uint32_t total(bool writable) const {
    std::uint32_t sum = 0;
    for (const Segment& segment : segments) {
      if (segment.device_writable == writable) sum += segment.len;
    }
    return sum;
  }
};

}  // namespace microvm::devices::virtio
