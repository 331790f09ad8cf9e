#include "base/mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "base/unique_fd.h"

namespace microvm {

Result<Mapping> Mapping::anonymous(std::size_t size) {
  // Huge-page alignment: reserve the size plus one huge page less a base page, then give back the
  // unaligned head and the tail.
  const bool huge = size >= kHugePageSize;
  const std::size_t slack = huge ? kHugePageSize - static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
  if (size > SIZE_MAX - slack) return fail_host("cannot reserve {} MiB of guest memory: too large", size >> 20);
  void* p = ::mmap(nullptr, size + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return fail_host("cannot reserve {} MiB of guest memory: {}", size >> 20, errno_text(errno));
  }
  auto* start = static_cast<std::byte*>(p);
  if (huge) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    const std::size_t head = (kHugePageSize - address % kHugePageSize) % kHugePageSize;
    if (head != 0) ::munmap(p, head);
    if (slack != head) ::munmap(start + head + size, slack - head);
    start += head;
    // Advice only: a host without THP (or with it "never") refuses or ignores it, and the
    // mapping works the same with 4 KiB pages.
    ::madvise(start, size, MADV_HUGEPAGE);
  }
  return Mapping(start, size);
}

Result<Mapping> Mapping::file_read_only(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return fail("cannot open '{}': {}", path, errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("cannot stat '{}': {}", path, errno_text(errno));
  if (!S_ISREG(st.st_mode)) return fail("'{}' is not a regular file", path);
  if (st.st_size == 0) return fail("'{}' is empty", path);
  auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) return fail("cannot map '{}': {}", path, errno_text(errno));
  return Mapping(static_cast<std::byte*>(p), size);
}

Result<Mapping> Mapping::shared(int fd, std::size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail_host("cannot map fd {}: {}", fd, errno_text(errno));
  return Mapping(static_cast<std::byte*>(p), size);
}

Result<Mapping> Mapping::file_private(int fd, std::uint64_t offset, std::size_t size) {
  if (size == 0) return fail("cannot map 0 bytes of fd {}", fd);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    return fail_host("cannot map {} MiB of fd {} at offset {:#x}: {}", size >> 20, fd, offset, errno_text(errno));
  }
  return Mapping(static_cast<std::byte*>(p), size);
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  release();
}

void Mapping::release() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace microvm
