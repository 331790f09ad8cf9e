// What kvm.cpp, vm.cpp and vcpu.cpp share: the result of an ioctl as an error value, and the
// "header with a count, then that many entries" arguments of KVM_SET_CPUID2 and KVM_SET_MSRS.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "base/error.h"

namespace microvm::vmm::detail {

inline constexpr std::size_t kMaxCpuidEntries = 256;
// KVM_GET_MSRS / KVM_SET_MSRS take at most MAX_IO_MSRS (256, arch/x86/kvm/x86.c) entries a call.
inline constexpr std::size_t kMaxMsrEntries = 255;

// A failed KVM ioctl (rc < 0, errno set) as an ErrorKind::kKvm error naming the ioctl.
[[nodiscard]] inline Result<void> check(int rc, const char* what) {
  if (rc < 0) return fail_kvm("{} failed: {}", what, errno_text(errno));
  return {};
}

// A kernel-layout "header with a count, then that many entries" argument (kvm_abi.h).
template <typename Header, typename Entry>
[[nodiscard]] std::vector<std::byte> counted_array(std::span<const Entry> entries) {
  std::vector<std::byte> buffer(sizeof(Header) + entries.size_bytes());
  const Header header{static_cast<std::uint32_t>(entries.size()), 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  std::memcpy(buffer.data() + sizeof(header), entries.data(), entries.size_bytes());
  return buffer;
}

}  // namespace microvm::vmm::detail
