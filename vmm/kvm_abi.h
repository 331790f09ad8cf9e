// C-ABI views of KVM's flexible-array structs. Debian's uapi headers declare their trailing arrays
// with __DECLARE_FLEX_ARRAY, which in C++ inserts a 1-byte empty struct: sizeof(kvm_cpuid2) becomes
// 12 instead of 8, the array moves to offset 12, and the ioctl numbers (which encode the size) are
// ones the kernel rejects with EINVAL. These headers restore the kernel's layout (api.rst 4.46, 4.19).
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace microvm::vmm::abi {

struct Cpuid2Header {     // struct kvm_cpuid2 without its array
  std::uint32_t nent;     // 0
  std::uint32_t padding;  // 4
};                        // entries[] at 8
static_assert(sizeof(Cpuid2Header) == 8);

struct MsrsHeader {     // struct kvm_msrs without its array
  std::uint32_t nmsrs;  // 0
  std::uint32_t pad;    // 4
};                      // entries[] at 8
static_assert(sizeof(MsrsHeader) == 8);

static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

}  // namespace microvm::vmm::abi
