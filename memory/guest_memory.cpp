#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace microvm {

namespace {
constexpr std::uint64_t kFourGiB = 1ULL << 32;

Result<void> check_ranges(std::span<const MemoryRange> ranges) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::uint64_t previous_end = 0;
  bool first = true;
  for (const MemoryRange& range : ranges) {
    if (range.size == 0 || range.start.value % page != 0 || range.size % page != 0) {
      return fail("guest memory range {:#x}+{:#x} is empty or not page-aligned", range.start.value, range.size);
    }
    if (!range.start.checked_add(range.size) || (!first && range.start.value < previous_end)) {
      return fail("guest memory range {:#x}+{:#x} overlaps or is out of order", range.start.value, range.size);
    }
    previous_end = range.end();
    first = false;
  }
  if (ranges.empty()) return fail("guest memory needs at least one range");
  return {};
}

bool all_zero(const std::byte* data, std::size_t size) {
  // Word at a time: a page of guest RAM is page-aligned, so 8-byte loads are aligned.
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i < size; i += sizeof(std::uint64_t)) {
    std::uint64_t word;
    std::memcpy(&word, data + i, sizeof(word));
    acc |= word;
  }
  return acc == 0;
}

Result<void> write_all(int fd, const std::byte* data, std::size_t size, std::uint64_t offset, std::string_view what) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_host("cannot write {}: {}", what, n < 0 ? errno_text(errno) : "no progress");
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

}  // namespace

Result<GuestMemory> GuestMemory::create(std::span<const MemoryRange> ranges) {
  TRY_VOID(check_ranges(ranges));
  std::vector<Region> regions;
  for (const MemoryRange& range : ranges) regions.push_back(Region{range, TRY(Mapping::anonymous(range.size))});
  return GuestMemory(std::move(regions));
}

Result<GuestMemory> GuestMemory::from_file(std::span<const FileRange> ranges, int fd, std::string_view what) {
  std::vector<MemoryRange> plain;
  for (const FileRange& r : ranges) plain.push_back(r.range);
  TRY_VOID(check_ranges(plain));
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("cannot stat {}: {}", what, errno_text(errno));
  if (!S_ISREG(st.st_mode)) return fail("{} is not a regular file", what);
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::vector<Region> regions;
  for (const FileRange& r : ranges) {
    if (r.file_offset % page != 0) return fail("{}: offset {:#x} is not page-aligned", what, r.file_offset);
    if (r.file_offset > file_size || r.range.size > file_size - r.file_offset) {
      return fail("{} is truncated: {} bytes, guest memory {:#x}+{:#x} needs it to reach byte {}", what, file_size,
                  r.range.start.value, r.range.size, r.file_offset + r.range.size);
    }
    regions.push_back(Region{r.range, TRY(Mapping::file_private(fd, r.file_offset, r.range.size))});
  }
  return GuestMemory(std::move(regions));
}

Result<std::vector<GuestMemory::FileRange>> GuestMemory::save_to(int fd, std::string_view what) const {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<FileRange> out;
  std::uint64_t offset = 0;
  for (const Region& region : regions_) {
    out.push_back(FileRange{region.range, offset});
    offset += region.range.size;
  }
  // Sized first, so every page not written below is a hole that reads as zero.
  if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(offset)) != 0) {
    return fail_host("cannot size {} to {} bytes: {}", what, offset, errno_text(errno));
  }
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    const Region& region = regions_[i];
    const std::byte* data = region.mapping.data();
    const std::size_t size = region.range.size;
    // Runs of pages with data, written in one call each.
    std::size_t at = 0;
    while (at < size) {
      while (at < size && all_zero(data + at, page)) at += page;
      std::size_t end = at;
      while (end < size && !all_zero(data + end, page)) end += page;
      if (end > at) TRY_VOID(write_all(fd, data + at, end - at, out[i].file_offset + at, what));
      at = end;
    }
  }
  return out;
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
