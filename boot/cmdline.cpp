#include "boot/cmdline.h"

namespace microvm::boot {

Result<void> validate_cmdline(std::string_view cmdline, std::uint32_t max_size) {
  if (cmdline.find('\0') != std::string_view::npos) return fail("kernel command line contains a NUL byte");
  if (cmdline.size() > max_size) {
    return fail("kernel command line is {} bytes; this kernel accepts at most {}", cmdline.size(), max_size);
  }
  return {};
}

}  // namespace microvm::boot
