// C-ABI views of KVM's flexible-array structs (and the sizes of the fixed ones a snapshot saves). Debian's uapi headers
// declare their trailing arrays with __DECLARE_FLEX_ARRAY, which in C++ inserts a 1-byte empty struct:
// sizeof(kvm_cpuid2) becomes 12 instead of 8, the array moves to offset 12, and the ioctl numbers (which encode the
// size) are ones the kernel rejects with EINVAL. These headers restore the kernel's layout (api.rst 4.46, 4.19).
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

struct MsrListHeader {  // struct kvm_msr_list without its array (api.rst 4.3)
  std::uint32_t nmsrs;  // 0
};                      // indices[] at 4
static_assert(sizeof(MsrListHeader) == 4);

// struct kvm_xsave: 4 KiB of XSAVE area, then (KVM_CAP_XSAVE2) as many more bytes as
// KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) says on the VM fd (api.rst 4.42, 4.134). The ioctl numbers
// encode the 4 KiB; the kernel reads and writes the larger size where the capability says so.
struct XsaveRegion {
  std::uint32_t region[1024];  // 0
};
static_assert(sizeof(XsaveRegion) == 4096);

static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
// The fixed-size structs a snapshot saves (uapi asm/kvm.h, linux/kvm.h): their sizes are part of
// the state file's format (codec.h refuses a different size).
static_assert(sizeof(kvm_regs) == 144);
static_assert(sizeof(kvm_sregs) == 312);
static_assert(sizeof(kvm_lapic_state) == 1024);
static_assert(sizeof(kvm_xcrs) == 392);
static_assert(sizeof(kvm_debugregs) == 128);
static_assert(sizeof(kvm_vcpu_events) == 64);
static_assert(sizeof(kvm_mp_state) == 4);
static_assert(sizeof(kvm_irqchip) == 520);
static_assert(sizeof(kvm_pit_state2) == 112);
static_assert(sizeof(kvm_clock_data) == 48);

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, Cpuid2Header);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
inline constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
inline constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);

}  // namespace microvm::vmm::abi
