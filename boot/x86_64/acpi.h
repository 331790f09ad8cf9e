// Minimal ACPI tables (ACPI 6.4 spec, chapter 5): RSDP -> XSDT -> {FADT -> DSDT, MADT}.
// The MADT lists every vCPU's local APIC and the I/O APIC, so all vCPUs come up; the FADT declares
// hardware-reduced ACPI with a sleep control register, and the DSDT's \_S5 object makes Linux's
// power-off write "S5 + SLP_EN" to that register, which ends the VM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmm/memory/guest_memory.h"

namespace microvm::boot {

inline constexpr std::uint8_t kAcpiSleepTypeS5 = 5;          // value in \_S5 (soft-off)
inline constexpr std::uint8_t kAcpiSleepEnable = 0x20;       // SLP_EN bit of the sleep control register
inline constexpr std::uint8_t kAcpiSleepTypeShift = 2;       // SLP_TYPx field, bits 2-4
inline constexpr std::uint8_t kAcpiSleepTypeMask = 0x1c;

// The tables as they will sit at `base` (RSDP first). Pure: unit tests inspect the bytes.
[[nodiscard]] std::vector<std::byte> build_acpi_tables(GuestAddress base, unsigned vcpus);
// Writes them at layout::kAcpiTables and returns the RSDP's address.
[[nodiscard]] Result<GuestAddress> write_acpi_tables(const GuestMemory& memory, unsigned vcpus);

}  // namespace microvm::boot
