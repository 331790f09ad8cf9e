// Kernel command line checks (Documentation/x86/boot.rst, "cmdline_size").
#pragma once

#include <cstdint>
#include <string_view>

#include "base/error.h"

namespace microvm::boot {

// The line must fit the kernel's limit (max_size excludes the terminating NUL) and hold no NUL.
[[nodiscard]] Result<void> validate_cmdline(std::string_view cmdline, std::uint32_t max_size);

}  // namespace microvm::boot
