// Kernel image loaders (Documentation/x86/boot.rst): an ELF vmlinux or a bzImage, detected by
// content. Each validates the image fully before writing to guest memory and fails with a message
// naming what is wrong with the file.
#pragma once

#include <cstddef>
#include <optional>
#include <span>

#include "boot/x86_64/boot_params.h"
#include "memory/guest_memory.h"

namespace microvm::boot {

enum class KernelFormat { kElf, kBzImage };

struct LoadedKernel {
  KernelFormat format = KernelFormat::kElf;
  GuestAddress entry;                 // 64-bit entry point (long mode, paging on, %rsi = boot_params)
  GuestAddress end;                   // one past the highest byte the kernel occupies, including decompression room
  std::optional<SetupHeader> header;  // the image's setup header (bzImage only)
};

[[nodiscard]] Result<LoadedKernel> load_elf(const GuestMemory& memory, std::span<const std::byte> image);
[[nodiscard]] Result<LoadedKernel> load_bzimage(const GuestMemory& memory, std::span<const std::byte> image);
// Detects the format (ELF magic, else bzImage header) and loads accordingly.
[[nodiscard]] Result<LoadedKernel> load_kernel(const GuestMemory& memory, std::span<const std::byte> image);

}  // namespace microvm::boot
