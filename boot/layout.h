// Guest physical memory layout for x86-64 boots. Each address is where microvm places one thing;
// the values follow the PC conventions Linux expects (Documentation/x86/boot.rst, zero-page.rst).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace microvm::boot::layout {

inline constexpr GuestAddress kGdt{0x500};  // boot GDT (first free byte after the BIOS data area)
inline constexpr GuestAddress kIdt{
    0x540};  // empty IDT (GDT gets 64 bytes before it): interrupts stay off until Linux sets its own
inline constexpr GuestAddress kBootParams{0x7000};                 // struct boot_params, the "zero page" (4 KiB)
inline constexpr GuestAddress kBootStack{0x8ff0};                  // initial %rsp; grows down towards the zero page
inline constexpr GuestAddress kPml4{0x9000};                       // identity page tables: PML4 ...
inline constexpr GuestAddress kPdpt{0xa000};                       // ... one PDPT ...
inline constexpr GuestAddress kPageDirectories{0xb000};            // ... and 4 PDs of 2 MiB pages (0xb000-0xefff)
inline constexpr std::uint64_t kIdentityMappedBytes = 4ULL << 30;  // page tables map [0, 4 GiB)
inline constexpr GuestAddress kCmdline{0x20000};                   // kernel command line (NUL-terminated)
inline constexpr std::uint64_t kCmdlineReserved = 0x10000;         // bytes reserved for it (64 KiB)
inline constexpr GuestAddress kEbda{0x9fc00};                      // end of usable conventional RAM (EBDA starts here)
inline constexpr GuestAddress kAcpiTables{0xe0000};                // RSDP and ACPI tables, in the BIOS area Linux scans
inline constexpr std::uint64_t kAcpiReserved = 0x20000;            // [0xe0000, 1 MiB) is e820-reserved for them
inline constexpr GuestAddress kHighMemory{0x100000};               // 1 MiB: protected-mode kernel load address
inline constexpr GuestAddress kMmioHoleStart{0xc0000000};          // 3 GiB: 32-bit MMIO hole (LAPIC, IOAPIC, virtio)
inline constexpr GuestAddress kMmioHoleEnd{1ULL << 32};            // RAM resumes above 4 GiB
inline constexpr GuestAddress kIoApic{0xfec00000};                 // I/O APIC base (KVM in-kernel irqchip)
inline constexpr GuestAddress kLocalApic{0xfee00000};              // local APIC base (KVM in-kernel irqchip)
inline constexpr GuestAddress kKvmIdentityMap{0xfeffc000};         // KVM_SET_IDENTITY_MAP_ADDR: 1 page (VMX real mode)
inline constexpr GuestAddress kKvmTss{0xfeffd000};                 // KVM_SET_TSS_ADDR: 3 pages (VMX real mode)

// I/O ports of the platform devices microvm emulates.
inline constexpr std::uint16_t kPortI8042Data = 0x60;        // i8042 data port
inline constexpr std::uint16_t kPortI8042Command = 0x64;     // i8042 status/command port
inline constexpr std::uint16_t kPortCom1 = 0x3f8;            // 16550A UART, 8 registers
inline constexpr std::uint32_t kIrqCom1 = 4;                 // COM1's ISA IRQ
inline constexpr std::uint16_t kPortAcpiPm1Event = 0x600;    // FADT PM1a_EVT_BLK: PM1 status + enable (4 bytes)
inline constexpr std::uint16_t kPortAcpiPm1Control = 0x604;  // FADT PM1a_CNT_BLK: PM1 control (2 bytes)
inline constexpr std::uint8_t kIrqAcpiSci = 9;               // FADT SCI_INT: the ACPI interrupt (never raised)

// virtio-mmio devices (virtio 1.2 §4.2.2): one 4 KiB register window each, from the start of the
// MMIO hole, announced on the kernel command line as virtio_mmio.device=4K@ADDR:IRQ
// (Linux drivers/virtio/virtio_mmio.c). Each gets an ISA IRQ of its own: Linux maps IRQs below 16
// one-to-one to IOAPIC pins (edge-triggered, active high with no MADT override), which is what an
// irqfd delivers; IRQs 0-2, 4 (COM1), 8 (RTC), 9 (SCI), 1/12 (i8042) and 13 (FPU) are taken.
inline constexpr GuestAddress kVirtioMmioBase{kMmioHoleStart.value};
inline constexpr std::uint64_t kVirtioMmioStride = 0x1000;
inline constexpr std::array<std::uint32_t, 8> kVirtioIrqs{5, 6, 7, 10, 11, 14, 15, 3};

// The boot structures fit their slots without overlapping one another (zero-page.rst, boot.rst).
static_assert(kGdt.value + 8 * 8 <= kIdt.value, "the GDT has 8 entries' room before the IDT");
static_assert(kBootParams.value + 4096 <= kBootStack.value, "the zero page ends below the boot stack");
static_assert(kBootStack.value < kPml4.value, "the boot stack grows down from below the page tables");
static_assert(kPdpt.value == kPml4.value + 4096 && kPageDirectories.value == kPdpt.value + 4096);
static_assert(kPageDirectories.value + 4 * 4096 <= kCmdline.value, "4 page directories before the command line");
static_assert(4 * 512 * (2ULL << 20) == kIdentityMappedBytes, "4 PDs of 512 2-MiB pages map the first 4 GiB");
static_assert(kCmdline.value + kCmdlineReserved <= kEbda.value, "the command line ends below the EBDA");
static_assert(kEbda.value <= kAcpiTables.value && kAcpiTables.value + kAcpiReserved == kHighMemory.value);

// The APICs, KVM's real-mode pages and the virtio-mmio windows lie in the MMIO hole, apart.
constexpr bool in_mmio_hole(GuestAddress address, std::uint64_t size = 1) {
  return address.value >= kMmioHoleStart.value && address.value + size <= kMmioHoleEnd.value;
}
static_assert(in_mmio_hole(kIoApic) && in_mmio_hole(kLocalApic));
static_assert(in_mmio_hole(kKvmIdentityMap, 0x1000) && in_mmio_hole(kKvmTss, 0x3000));
static_assert(kKvmIdentityMap.value + 0x1000 <= kKvmTss.value, "identity map page, then the 3 TSS pages");
static_assert(in_mmio_hole(kVirtioMmioBase, kVirtioMmioStride* kVirtioIrqs.size()) &&
                  kVirtioMmioBase.value + kVirtioMmioStride * kVirtioIrqs.size() <= kIoApic.value,
              "the virtio-mmio windows end below the I/O APIC");

// RAM ranges for a guest of `bytes` of memory: below the MMIO hole, then above 4 GiB.
inline std::vector<MemoryRange> ram_ranges(std::uint64_t bytes) {
  const std::uint64_t low = std::min(bytes, kMmioHoleStart.value);
  std::vector<MemoryRange> ranges{MemoryRange{GuestAddress(0), low}};
  if (bytes > low) ranges.push_back(MemoryRange{kMmioHoleEnd, bytes - low});
  return ranges;
}

}  // namespace microvm::boot::layout
