// Minimal ACPI tables (ACPI 6.4 spec, chapter 5): RSDP -> XSDT -> {FADT -> DSDT, MADT}.
// The MADT lists every vCPU's local APIC and the I/O APIC, so all vCPUs come up. The FADT describes
// fixed-hardware ACPI (PM1a event and control blocks, devices/acpi_pm.h) and the DSDT's \_S5 object
// makes Linux's power-off write "SLP_TYP=5 | SLP_EN" to PM1a_CNT, which ends the VM.
// Not hardware-reduced on purpose: in that mode Linux drops the legacy PIC and with it the identity
// mapping of ISA IRQs 0-15, so COM1's IRQ 4 (and command-line virtio-mmio IRQs) would not work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace microvm::boot {

inline constexpr std::uint8_t kAcpiSleepTypeS5 = 5;  // value of \_S5 (soft-off); devices::AcpiPm checks it

// The tables as they will sit at `base` (RSDP first). Pure: unit tests inspect the bytes.
[[nodiscard]] std::vector<std::byte> build_acpi_tables(GuestAddress base, unsigned vcpus);
// Writes them at layout::kAcpiTables and returns the RSDP's address.
[[nodiscard]] Result<GuestAddress> write_acpi_tables(const GuestMemory& memory, unsigned vcpus);

}  // namespace microvm::boot
