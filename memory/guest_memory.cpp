#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace microvm {

namespace {
constexpr std::uint64_t kFourGiB = 1ULL << 32;
}

Result<GuestMemory> GuestMemory::create(std::span<const MemoryRange> ranges) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::vector<Region> regions;
  std::uint64_t previous_end = 0;
  for (const MemoryRange& range : ranges) {
    if (range.size == 0 || range.start.value % page != 0 || range.size % page != 0) {
      return fail("guest memory range {:#x}+{:#x} is empty or not page-aligned", range.start.value, range.size);
    }
    if (!range.start.checked_add(range.size) || (!regions.empty() && range.start.value < previous_end)) {
      return fail("guest memory range {:#x}+{:#x} overlaps or is out of order", range.start.value, range.size);
    }
    previous_end = range.end();
    regions.push_back(Region{range, TRY(Mapping::anonymous(range.size))});
  }
  if (regions.empty()) return fail("guest memory needs at least one range");
  return GuestMemory(std::move(regions));
}

const GuestMemory::Region* GuestMemory::find(GuestAddress addr, std::uint64_t len) const {
  for (const Region& region : regions_) {
    if (region.range.contains(addr, len)) return &region;
  }
  return nullptr;
}

bool GuestMemory::contains(GuestAddress addr, std::uint64_t len) const {
  return find(addr, len) != nullptr;
}

Result<std::span<std::byte>> GuestMemory::slice(GuestAddress addr, std::uint64_t len) const {
  const Region* region = find(addr, len);
  if (region == nullptr) {
    return fail("guest range {:#x}+{:#x} is outside guest memory", addr.value, len);
  }
  return std::span<std::byte>(region->mapping.data() + (addr.value - region->range.start.value),
                              static_cast<std::size_t>(len));
}

Result<void> GuestMemory::populate(GuestAddress addr, std::uint64_t len) const {
  auto host = TRY(slice(addr, len));
  if (host.empty()) return {};
  // The region's mapping is page-aligned, so rounding out to pages stays inside it.
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(host.data()) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(host.data()) + host.size() + page - 1) / page * page;
  [[maybe_unused]] const int rc = ::madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE);
  return {};
}

Result<void> GuestMemory::read(GuestAddress addr, std::span<std::byte> out) const {
  auto host = TRY(slice(addr, out.size()));
  if (!out.empty()) std::memcpy(out.data(), host.data(), out.size());
  return {};
}

Result<void> GuestMemory::write(GuestAddress addr, std::span<const std::byte> in) const {
  auto host = TRY(slice(addr, in.size()));
  if (!in.empty()) std::memcpy(host.data(), in.data(), in.size());
  return {};
}

std::uint64_t GuestMemory::size() const {
  std::uint64_t total = 0;
  for (const Region& region : regions_) total += region.range.size;
  return total;
}

GuestAddress GuestMemory::end_below_4g() const {
  std::uint64_t end = 0;
  for (const Region& region : regions_) {
    if (region.range.start.value < kFourGiB) end = std::min(region.range.end(), kFourGiB);
  }
  return GuestAddress(end);
}

}  // namespace microvm
