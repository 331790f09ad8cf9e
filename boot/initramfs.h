// A Linux initramfs built in memory: a cpio archive in the "newc" format that the kernel unpacks
// into its rootfs (Linux Documentation/driver-api/early-userspace/buffer-format.rst). microvm uses
// it to hand its container init and the container spec to the guest without touching the image.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace microvm::boot {

struct CpioEntry {
  std::string path;             // relative, no leading '/': "init", "dev/console"
  std::uint32_t mode = 0;       // file type and permission bits (S_IFREG | 0755, S_IFDIR | 0755, S_IFCHR | 0600)
  std::vector<std::byte> data;  // file contents (regular files only)
  std::uint32_t rdev_major = 0, rdev_minor = 0;  // device nodes only
};

// The archive, ending with the TRAILER!!! record. Fails on a path that is empty, absolute, has a
// ".." component, or does not fit the format's 32-bit fields.
[[nodiscard]] Result<std::vector<std::byte>> build_cpio(std::span<const CpioEntry> entries);

}  // namespace microvm::boot
