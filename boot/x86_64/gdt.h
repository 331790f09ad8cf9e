// The boot GDT required by the 64-bit boot protocol (boot.rst: __BOOT_CS 0x10, __BOOT_DS 0x18, flat)
// and the decoded segments a vCPU is loaded with. Descriptor format: Intel SDM vol. 3, 3.4.5.
#pragma once

#include <cstdint>

#include "memory/guest_memory.h"

namespace microvm::boot {

// A segment register's hidden part, decoded from a descriptor (independent of KVM's struct).
struct Segment {
  std::uint64_t base = 0;
  std::uint32_t limit = 0;  // in bytes (granularity applied)
  std::uint16_t selector = 0;
  std::uint8_t type = 0;
  bool present = false;
  std::uint8_t dpl = 0;
  bool db = false;
  bool s = false;
  bool l = false;
  bool g = false;
  bool avl = false;
};

inline constexpr std::uint16_t kBootCsSelector = 0x10;   // __BOOT_CS
inline constexpr std::uint16_t kBootDsSelector = 0x18;   // __BOOT_DS
inline constexpr std::uint16_t kBootTssSelector = 0x20;  // a busy TSS, so TR is valid
inline constexpr std::uint16_t kGdtEntries = 5;          // null, unused, CS, DS, TSS

// Packs flags (bits 8-15: access byte; 12-15 of the high nibble: G, D/B, L, AVL), base and limit.
[[nodiscard]] constexpr std::uint64_t gdt_entry(std::uint16_t flags, std::uint32_t base, std::uint32_t limit) {
  return ((std::uint64_t{base} & 0xff000000ULL) << (56 - 24)) | ((std::uint64_t{flags} & 0x0000f0ffULL) << 40) |
         ((std::uint64_t{limit} & 0x000f0000ULL) << (48 - 16)) | ((std::uint64_t{base} & 0x00ffffffULL) << 16) |
         (std::uint64_t{limit} & 0x0000ffffULL);
}
[[nodiscard]] Segment decode_segment(std::uint64_t entry, std::uint16_t selector);

// boot.rst's selectors, each inside the table.
static_assert(kBootCsSelector == 0x10 && kBootDsSelector == 0x18, "boot.rst: __BOOT_CS 0x10, __BOOT_DS 0x18");
static_assert(kBootTssSelector % 8 == 0 && kBootTssSelector / 8 < kGdtEntries);
// Intel SDM vol. 3, figure 3-8: base 31:24 in bits 63:56, flags 55:52, limit 19:16 in 51:48, access
// byte in 47:40, base 23:0 in 39:16, limit 15:0 in 15:0.
static_assert(gdt_entry(0xa09b, 0, 0xfffff) == 0x00af9b000000ffffULL, "64-bit code, flat");
static_assert(gdt_entry(0xc093, 0, 0xfffff) == 0x00cf93000000ffffULL, "32-bit data, flat");
static_assert(gdt_entry(0x0089, 0x12345678, 0x67) == 0x1200893456780067ULL, "a TSS: every base and limit bit");

struct BootSegments {
  Segment code, data, tss;
  GuestAddress gdt_base;
  std::uint16_t gdt_limit = 0;
  GuestAddress idt_base;
  std::uint16_t idt_limit = 0;
};

// Writes the GDT and an empty IDT at their layout addresses.
[[nodiscard]] Result<BootSegments> write_boot_gdt(const GuestMemory& memory);

}  // namespace microvm::boot
