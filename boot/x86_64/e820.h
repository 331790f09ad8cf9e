// The BIOS e820 memory map handed to Linux in boot_params (Documentation/x86/zero-page.rst).
#pragma once

#include <vector>

#include "boot/x86_64/boot_params.h"
#include "memory/guest_memory.h"

namespace microvm::boot {

// Usable RAM below the EBDA, the reserved ACPI area, and RAM from 1 MiB on (split by the MMIO hole).
[[nodiscard]] std::vector<E820Entry> build_e820(const GuestMemory& memory);

}  // namespace microvm::boot
