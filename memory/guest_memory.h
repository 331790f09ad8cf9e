// Guest physical memory: the only place that turns a guest address into a host pointer.
// Every access is bounds-checked against the regions; a bad guest address is an Error, never UB.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "base/mapping.h"

namespace microvm {

// A guest physical address. Distinct from host pointers and plain integers on purpose.
struct GuestAddress {
  std::uint64_t value = 0;

  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(std::uint64_t v) : value(v) {}
  // this + offset, or nothing when it would wrap around 2^64.
  [[nodiscard]] constexpr std::optional<GuestAddress> checked_add(std::uint64_t offset) const {
    if (offset > UINT64_MAX - value) return std::nullopt;
    return GuestAddress(value + offset);
  }
  constexpr auto operator<=>(const GuestAddress&) const = default;
};

// [start, start + size) in guest physical address space.
struct MemoryRange {
  GuestAddress start;
  std::uint64_t size = 0;
  [[nodiscard]] constexpr std::uint64_t end() const { return start.value + size; }
  [[nodiscard]] constexpr bool contains(GuestAddress addr, std::uint64_t len) const {
    return addr.value >= start.value && len <= size && addr.value - start.value <= size - len;
  }
};

class GuestMemory {
 public:
  struct Region {
    MemoryRange range;
    Mapping mapping;
  };

  // Maps anonymous memory for each range. Ranges must be page-aligned, sorted and disjoint.
  static Result<GuestMemory> create(std::span<const MemoryRange> ranges);

  [[nodiscard]] bool contains(GuestAddress addr, std::uint64_t len) const;
  // Host view of [addr, addr+len); fails unless the whole range lies in one region.
  [[nodiscard]] Result<std::span<std::byte>> slice(GuestAddress addr, std::uint64_t len) const;

  // Backs [addr, addr+len) with host pages now, in one call (MADV_POPULATE_WRITE, Linux 5.14),
  // instead of one page fault per page as a copy touches them: for bulk loads (kernel, initrd).
  // Advisory: a host kernel without it leaves the pages to fault in as before. Fails only for a
  // range outside guest memory.
  [[nodiscard]] Result<void> populate(GuestAddress addr, std::uint64_t len) const;

  [[nodiscard]] Result<void> read(GuestAddress addr, std::span<std::byte> out) const;
  [[nodiscard]] Result<void> write(GuestAddress addr, std::span<const std::byte> in) const;

  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<T> read_obj(GuestAddress addr) const {
    T value;
    TRY_VOID(read(addr, std::as_writable_bytes(std::span(&value, 1))));
    return value;
  }
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<void> write_obj(GuestAddress addr, const T& value) const {
    return write(addr, std::as_bytes(std::span(&value, 1)));
  }

  [[nodiscard]] std::span<const Region> regions() const { return regions_; }
  // Total bytes of guest RAM over all regions.
  [[nodiscard]] std::uint64_t size() const;
  // One past the highest RAM address below 4 GiB (where 32-bit-addressable data must go).
  [[nodiscard]] GuestAddress end_below_4g() const;

 private:
  explicit GuestMemory(std::vector<Region> regions) : regions_(std::move(regions)) {}
  [[nodiscard]] const Region* find(GuestAddress addr, std::uint64_t len) const;

  std::vector<Region> regions_;
};

}  // namespace microvm
