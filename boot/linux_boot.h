// Puts a Linux kernel, its initrd and command line into guest memory with everything the 64-bit
// boot protocol needs (boot_params, e820, GDT, identity page tables, ACPI tables), and returns the
// register state the boot vCPU starts with. Pure over a GuestMemory: no KVM involved.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "boot/kernel_loader.h"
#include "boot/x86_64/gdt.h"
#include "memory/guest_memory.h"

namespace microvm::boot {

struct LinuxBootConfig {
  std::span<const std::byte> kernel;
  std::optional<std::span<const std::byte>> initrd;
  std::string cmdline;
  unsigned vcpus = 1;
};

struct BootCpuState {
  std::uint64_t rip = 0;  // kernel's 64-bit entry
  std::uint64_t rsi = 0;  // boot_params address
  std::uint64_t rsp = 0;
  std::uint64_t cr3 = 0;
  BootSegments segments;
};

struct LinuxBootInfo {
  KernelFormat format = KernelFormat::kElf;
  BootCpuState cpu;
  GuestAddress initrd_address;
  std::uint64_t initrd_size = 0;
};

[[nodiscard]] Result<LinuxBootInfo> setup_linux_boot(const GuestMemory& memory, const LinuxBootConfig& config);

// Where the initrd goes: the highest page-aligned address below min(end of low RAM, initrd_addr_max)
// that is above the kernel. Fails when it cannot fit.
[[nodiscard]] Result<GuestAddress> place_initrd(const GuestMemory& memory, GuestAddress kernel_end, std::uint64_t size,
                                                std::uint64_t initrd_addr_max);

}  // namespace microvm::boot
