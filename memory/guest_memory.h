// Guest physical memory: the only place that turns a guest address into a host pointer.
// Every access is bounds-checked against the regions; a bad guest address is an Error, never UB.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
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

  // A range of guest RAM and where its bytes lie in a memory file (a snapshot's).
  struct FileRange {
    MemoryRange range;
    std::uint64_t file_offset = 0;
  };
  // Guest RAM restored from the memory file `fd`: each range a private mapping of its part of the
  // file (Mapping::file_private), so nothing is read up front and the file is never written. Ranges
  // as for create(); offsets page-aligned; a file too short for any range is refused (its pages
  // would fault the VMM with SIGBUS when the guest touched them). `what` names the file in messages.
  static Result<GuestMemory> from_file(std::span<const FileRange> ranges, int fd, std::string_view what);

  // Writes every region to `fd` back to back (region i at the sum of the sizes before it), sized to
  // the total, leaving pages that are all zero as holes: a sparse file where the guest never wrote.
  // Returns where each region went.
  [[nodiscard]] Result<std::vector<FileRange>> save_to(int fd, std::string_view what) const;

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
