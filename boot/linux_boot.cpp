#include "boot/linux_boot.h"

#include <algorithm>
#include <cstring>

#include "boot/cmdline.h"
#include "boot/layout.h"
#include "boot/x86_64/acpi.h"
#include "boot/x86_64/e820.h"
#include "boot/x86_64/page_tables.h"

namespace microvm::boot {

namespace {
constexpr std::uint64_t kPageSize = 4096;
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}
constexpr std::uint64_t align_down(std::uint64_t v, std::uint64_t a) {
  return v / a * a;
}
}  // namespace

Result<GuestAddress> place_initrd(const GuestMemory& memory, GuestAddress kernel_end, std::uint64_t size,
                                  std::uint64_t initrd_addr_max) {
  const std::uint64_t limit = std::min(memory.end_below_4g().value, initrd_addr_max + 1);
  const std::uint64_t lowest = align_up(kernel_end.value, kPageSize);
  if (size > limit || align_down(limit - size, kPageSize) < lowest) {
    return fail("initrd ({} KiB) does not fit in guest memory above the kernel; raise --memory", size >> 10);
  }
  return GuestAddress(align_down(limit - size, kPageSize));
}

Result<LinuxBootInfo> setup_linux_boot(const GuestMemory& memory, const LinuxBootConfig& config) {
  if (memory.end_below_4g() <= layout::kHighMemory) return fail("guest memory must extend past 1 MiB");
  const LoadedKernel kernel = TRY(load_kernel(memory, config.kernel));

  BootParams params{};
  if (kernel.header) {
    params.hdr = *kernel.header;
  } else {
    params.hdr.boot_flag = kBootFlagMagic;
    params.hdr.header = kHeaderMagic;
    params.hdr.kernel_alignment = kDefaultKernelAlignment;
  }
  SetupHeader& hdr = params.hdr;
  hdr.type_of_loader = kLoaderUndefined;

  const std::uint32_t cmdline_max = kernel.header && hdr.cmdline_size != 0 ? hdr.cmdline_size : kDefaultCmdlineSize;
  TRY_VOID(validate_cmdline(config.cmdline, std::min<std::uint64_t>(cmdline_max, layout::kCmdlineReserved - 1)));
  std::vector<std::byte> cmdline(config.cmdline.size() + 1);  // NUL-terminated
  std::memcpy(cmdline.data(), config.cmdline.data(), config.cmdline.size());
  TRY_VOID(memory.write(layout::kCmdline, cmdline));
  hdr.cmd_line_ptr = static_cast<std::uint32_t>(layout::kCmdline.value);
  hdr.cmdline_size = static_cast<std::uint32_t>(config.cmdline.size());

  LinuxBootInfo info;
  info.format = kernel.format;
  if (config.initrd) {
    const std::uint64_t addr_max = kernel.header ? hdr.initrd_addr_max : kDefaultInitrdAddrMax;
    const GuestAddress at = TRY(place_initrd(memory, kernel.end, config.initrd->size(), addr_max));
    TRY_VOID(memory.populate(at, config.initrd->size()));
    TRY_VOID(memory.write(at, *config.initrd));
    hdr.ramdisk_image = static_cast<std::uint32_t>(at.value);
    hdr.ramdisk_size = static_cast<std::uint32_t>(config.initrd->size());
    info.initrd_address = at;
    info.initrd_size = config.initrd->size();
  }

  const std::vector<E820Entry> e820 = build_e820(memory);
  if (e820.size() > std::size(params.e820_table)) return fail("e820 map has too many entries");
  std::copy(e820.begin(), e820.end(), params.e820_table);
  params.e820_entries = static_cast<std::uint8_t>(e820.size());

  params.acpi_rsdp_addr = TRY(write_acpi_tables(memory, config.vcpus)).value;
  TRY_VOID(memory.write_obj(layout::kBootParams, params));

  info.cpu.cr3 = TRY(write_identity_page_tables(memory));
  info.cpu.segments = TRY(write_boot_gdt(memory));
  info.cpu.rip = kernel.entry.value;
  info.cpu.rsi = layout::kBootParams.value;
  info.cpu.rsp = layout::kBootStack.value;
  return info;
}

}  // namespace microvm::boot
