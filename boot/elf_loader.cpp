// ELF vmlinux loader: copies each PT_LOAD segment to its physical address (p_paddr).
#include <elf.h>

#include <algorithm>
#include <cstring>

#include "boot/kernel_loader.h"
#include "boot/layout.h"

namespace microvm::boot {

namespace {

template <typename T>
T read_struct(std::span<const std::byte> image, std::size_t offset) {
  T value;
  std::memcpy(&value, image.data() + offset, sizeof(T));
  return value;
}

bool has_elf_magic(std::span<const std::byte> image) {
  return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

}  // namespace

Result<LoadedKernel> load_elf(const GuestMemory& memory, std::span<const std::byte> image) {
  if (!has_elf_magic(image)) return fail("not an ELF file (bad magic)");
  if (image.size() < sizeof(Elf64_Ehdr))
    return fail("truncated ELF: {} bytes, header needs {}", image.size(), sizeof(Elf64_Ehdr));
  const auto ehdr = read_struct<Elf64_Ehdr>(image, 0);
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64)
    return fail("32-bit ELF kernels are not supported; use a 64-bit vmlinux or a bzImage");
  if (ehdr.e_ident[EI_DATA] != ELFDATA2LSB) return fail("big-endian ELF is not an x86-64 kernel");
  if (ehdr.e_machine != EM_X86_64) return fail("ELF machine {} is not x86-64", ehdr.e_machine);
  if (ehdr.e_type != ET_EXEC) return fail("ELF type {} is not an executable (ET_EXEC) kernel", ehdr.e_type);
  if (ehdr.e_phentsize != sizeof(Elf64_Phdr))
    return fail("malformed ELF: program header size {} (expected {})", ehdr.e_phentsize, sizeof(Elf64_Phdr));
  if (ehdr.e_phnum == 0) return fail("malformed ELF: no program headers");
  const std::uint64_t table_bytes = std::uint64_t{ehdr.e_phnum} * sizeof(Elf64_Phdr);
  if (ehdr.e_phoff > image.size() || table_bytes > image.size() - ehdr.e_phoff) {
    return fail("truncated ELF: program headers at {:#x} run past the end of the {}-byte file", ehdr.e_phoff,
                image.size());
  }

  // Validate every segment before writing any of them.
  std::vector<Elf64_Phdr> loads;
  for (std::uint16_t i = 0; i < ehdr.e_phnum; ++i) {
    const auto phdr = read_struct<Elf64_Phdr>(image, ehdr.e_phoff + i * sizeof(Elf64_Phdr));
    if (phdr.p_type != PT_LOAD) continue;
    if (phdr.p_offset > image.size() || phdr.p_filesz > image.size() - phdr.p_offset) {
      return fail("truncated ELF: segment {} (offset {:#x}, {} bytes) runs past the end of the file", i, phdr.p_offset,
                  phdr.p_filesz);
    }
    if (phdr.p_filesz > phdr.p_memsz) return fail("malformed ELF: segment {} has file size > memory size", i);
    if (phdr.p_paddr < layout::kHighMemory.value) {
      return fail("ELF segment {} loads at {:#x}, below 1 MiB where the boot structures live", i, phdr.p_paddr);
    }
    if (!memory.contains(GuestAddress(phdr.p_paddr), phdr.p_memsz)) {
      return fail("ELF segment {} ({:#x}+{:#x}) lies outside guest memory; give the VM more memory (--memory)", i,
                  phdr.p_paddr, phdr.p_memsz);
    }
    loads.push_back(phdr);
  }
  if (loads.empty()) return fail("malformed ELF: no loadable (PT_LOAD) segments");

  std::uint64_t high = 0;
  bool entry_loaded = false;
  for (const Elf64_Phdr& phdr : loads) {
    high = std::max(high, phdr.p_paddr + phdr.p_memsz);  // no wrap: contains() checked the range
    entry_loaded |= ehdr.e_entry >= phdr.p_paddr && ehdr.e_entry - phdr.p_paddr < phdr.p_memsz;
  }
  if (!entry_loaded) return fail("malformed ELF: entry point {:#x} is outside the loaded segments", ehdr.e_entry);
  // Only a fully valid image touches guest memory.
  for (const Elf64_Phdr& phdr : loads) {
    TRY_VOID(memory.populate(GuestAddress(phdr.p_paddr), phdr.p_memsz));  // not a fault per 4 KiB page
    auto dest = TRY(memory.slice(GuestAddress(phdr.p_paddr), phdr.p_memsz));
    std::memcpy(dest.data(), image.data() + phdr.p_offset, phdr.p_filesz);
    std::memset(dest.data() + phdr.p_filesz, 0, phdr.p_memsz - phdr.p_filesz);
  }
  return LoadedKernel{KernelFormat::kElf, GuestAddress(ehdr.e_entry), GuestAddress(high), std::nullopt};
}

Result<LoadedKernel> load_kernel(const GuestMemory& memory, std::span<const std::byte> image) {
  if (has_elf_magic(image)) return load_elf(memory, image);
  return load_bzimage(memory, image);
}

}  // namespace microvm::boot
