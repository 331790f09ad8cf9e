// struct boot_params and struct setup_header come from the kernel's uapi (<asm/bootparam.h>, from
// linux-libc-dev). The offsets microvm relies on are pinned here (Documentation/x86/zero-page.rst
// and boot.rst), so a header mismatch fails the build instead of the boot.
#pragma once

#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>

namespace microvm::boot {

using BootParams = ::boot_params;
using SetupHeader = ::setup_header;
using E820Entry = ::boot_e820_entry;

static_assert(sizeof(BootParams) == 4096);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, hdr) == 0x1f1);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(sizeof(E820Entry) == 20);
static_assert(offsetof(SetupHeader, setup_sects) == 0x1f1 - 0x1f1);
static_assert(offsetof(SetupHeader, boot_flag) == 0x1fe - 0x1f1);
static_assert(offsetof(SetupHeader, header) == 0x202 - 0x1f1);
static_assert(offsetof(SetupHeader, version) == 0x206 - 0x1f1);
static_assert(offsetof(SetupHeader, type_of_loader) == 0x210 - 0x1f1);
static_assert(offsetof(SetupHeader, loadflags) == 0x211 - 0x1f1);
static_assert(offsetof(SetupHeader, ramdisk_image) == 0x218 - 0x1f1);
static_assert(offsetof(SetupHeader, cmd_line_ptr) == 0x228 - 0x1f1);
static_assert(offsetof(SetupHeader, initrd_addr_max) == 0x22c - 0x1f1);
static_assert(offsetof(SetupHeader, kernel_alignment) == 0x230 - 0x1f1);
static_assert(offsetof(SetupHeader, xloadflags) == 0x236 - 0x1f1);
static_assert(offsetof(SetupHeader, cmdline_size) == 0x238 - 0x1f1);
static_assert(offsetof(SetupHeader, pref_address) == 0x258 - 0x1f1);
static_assert(offsetof(SetupHeader, init_size) == 0x260 - 0x1f1);

// Values defined by Documentation/x86/boot.rst.
inline constexpr std::uint64_t kSetupHeaderOffset = 0x1f1;           // setup header's offset in the image
inline constexpr std::uint16_t kBootFlagMagic = 0xaa55;              // boot_flag
inline constexpr std::uint32_t kHeaderMagic = 0x53726448;            // header: "HdrS"
inline constexpr std::uint16_t kMinProtocol = 0x020c;                // 2.12: first with xloadflags (64-bit entry)
inline constexpr std::uint16_t kXlfKernel64 = 1U << 0;               // xloadflags: has the 64-bit entry at +0x200
inline constexpr std::uint64_t kEntry64Offset = 0x200;               // 64-bit entry = load address + 0x200
inline constexpr std::uint8_t kDefaultSetupSects = 4;                // setup_sects == 0 means 4
inline constexpr std::uint64_t kSectorSize = 512;                    // setup code is counted in 512-byte sectors
inline constexpr std::uint8_t kLoaderUndefined = 0xff;               // type_of_loader: "undefined" boot loader
inline constexpr std::uint32_t kDefaultKernelAlignment = 0x1000000;  // 16 MiB (vmlinux has no header)
inline constexpr std::uint32_t kDefaultInitrdAddrMax = 0x7fffffff;   // for kernels without a header
inline constexpr std::uint32_t kDefaultCmdlineSize = 2048;           // x86 COMMAND_LINE_SIZE
inline constexpr std::uint32_t kE820Ram = 1;                         // e820 type: usable RAM
inline constexpr std::uint32_t kE820Reserved = 2;                    // e820 type: reserved

}  // namespace microvm::boot
