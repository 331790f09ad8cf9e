// bzImage loader (Documentation/x86/boot.rst): the protected-mode part goes to 1 MiB and is entered
// through its 64-bit entry point; the setup header is kept for boot_params.
#include <algorithm>
#include <cstring>

#include "boot/kernel_loader.h"
#include "boot/layout.h"

namespace microvm::boot {

Result<LoadedKernel> load_bzimage(const GuestMemory& memory, std::span<const std::byte> image) {
  if (image.size() < kSetupHeaderOffset + sizeof(SetupHeader)) {
    return fail("not a kernel: {} bytes is too short for an ELF vmlinux or a bzImage", image.size());
  }
  SetupHeader hdr;
  std::memcpy(&hdr, image.data() + kSetupHeaderOffset, sizeof(hdr));
  if (hdr.boot_flag != kBootFlagMagic || hdr.header != kHeaderMagic) {
    return fail("not a kernel: no ELF magic and no bzImage header (\"HdrS\" at 0x202)");
  }
  if (hdr.version < kMinProtocol) {
    return fail("bzImage boot protocol {}.{} is too old; 2.12 or newer is needed", hdr.version >> 8,
                hdr.version & 0xff);
  }
  if ((hdr.xloadflags & kXlfKernel64) == 0)
    return fail("bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)");

  const std::uint64_t setup_sects = hdr.setup_sects == 0 ? kDefaultSetupSects : hdr.setup_sects;
  const std::uint64_t kernel_offset = (setup_sects + 1) * kSectorSize;
  if (kernel_offset >= image.size())
    return fail("truncated bzImage: setup code claims {} bytes of a {}-byte file", kernel_offset, image.size());
  const std::uint64_t kernel_size = image.size() - kernel_offset;
  const std::uint64_t declared = std::uint64_t{hdr.syssize} * 16;  // syssize counts 16-byte paragraphs
  if (declared > kernel_size)
    return fail("truncated bzImage: header says {} bytes of kernel, file has {}", declared, kernel_size);

  // The decompressor works in [pref_address, pref_address + init_size); it must all be RAM.
  const GuestAddress load = layout::kHighMemory;
  const std::uint64_t work_start = std::max<std::uint64_t>(hdr.pref_address, load.value);
  const auto init_end = GuestAddress(work_start).checked_add(hdr.init_size);
  if (!init_end) return fail("malformed bzImage: pref_address {:#x} + init_size wraps around", work_start);
  const std::uint64_t work_end = std::max(load.value + kernel_size, init_end->value);
  if (!memory.contains(load, work_end - load.value)) {
    return fail("guest memory too small for this kernel: it needs {} MiB; raise --memory", (work_end >> 20) + 1);
  }
  TRY_VOID(memory.populate(load, kernel_size));  // not a fault per 4 KiB page of the copy
  TRY_VOID(memory.write(load, image.subspan(kernel_offset)));
  return LoadedKernel{KernelFormat::kBzImage, GuestAddress(load.value + kEntry64Offset), GuestAddress(work_end), hdr};
}

}  // namespace microvm::boot
