// Mapping: owns one mmap()ed range and unmaps it exactly once.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>

#include "base/error.h"

namespace microvm {

class Mapping {
 public:
  // Anonymous private memory, lazily backed (MAP_NORESERVE): guest RAM. From kHugePageSize up it is
  // aligned to kHugePageSize and advised MADV_HUGEPAGE: where the host has transparent huge pages
  // (enabled "always" or "madvise"), each 2 MiB of it is one host page, which KVM then maps with one
  // 2 MiB nested page-table entry instead of 512 faults of 4 KiB (KVM needs the guest-physical and
  // host-virtual addresses congruent modulo 2 MiB, hence the alignment). Elsewhere the advice is
  // ignored and nothing changes.
  static Result<Mapping> anonymous(std::size_t size);
  static constexpr std::size_t kHugePageSize = std::size_t{2} << 20;  // x86-64 PMD page
  // A whole file mapped read-only (kernel and initrd images).
  static Result<Mapping> file_read_only(const std::string& path);
  // A shared mapping of an fd (e.g. the kvm_run structure of a vCPU).
  static Result<Mapping> shared(int fd, std::size_t size);
  // `size` bytes of the file `fd` from `offset` (page-aligned), readable and writable, private
  // (MAP_PRIVATE | MAP_NORESERVE): a page is read from the file when first touched, and a write
  // copies it into anonymous memory, so the file never changes (guest RAM restored from a
  // snapshot's memory file). The caller checks that the file is long enough: touching a page past
  // its end would raise SIGBUS.
  static Result<Mapping> file_private(int fd, std::uint64_t offset, std::size_t size);

  Mapping() = default;
  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  [[nodiscard]] std::byte* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  Mapping(std::byte* data, std::size_t size) : data_(data), size_(size) {}
  void release();

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace microvm
