// Synthetic kernel images for the loader and boot tests: a minimal ELF64 vmlinux and a minimal
// bzImage (Documentation/x86/boot.rst). Tests corrupt them with test::edit() to hit each check.
#pragma once

#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "boot/x86_64/boot_params.h"
#include "tests/unit/test_support.h"

namespace microvm::test {

struct ElfSegment {
  std::uint32_t type = PT_LOAD;
  std::uint64_t paddr = 0;
  std::vector<std::byte> data;  // file contents (p_filesz bytes)
  std::uint64_t memsz = 0;      // 0: same as data.size()
};

inline constexpr std::size_t kPhdrTableOffset = sizeof(Elf64_Ehdr);

inline std::size_t phdr_offset(std::size_t index) {
  return kPhdrTableOffset + index * sizeof(Elf64_Phdr);
}

// ELF header, then the program header table, then each segment's bytes in order.
inline std::vector<std::byte> make_elf(const std::vector<ElfSegment>& segments, std::uint64_t entry) {
  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_X86_64;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_entry = entry;
  ehdr.e_phoff = kPhdrTableOffset;
  ehdr.e_ehsize = sizeof(Elf64_Ehdr);
  ehdr.e_phentsize = sizeof(Elf64_Phdr);
  ehdr.e_phnum = static_cast<Elf64_Half>(segments.size());

  std::vector<std::byte> image(phdr_offset(segments.size()));
  store(image, 0, ehdr);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const ElfSegment& s = segments[i];
    Elf64_Phdr phdr{};
    phdr.p_type = s.type;
    phdr.p_flags = PF_R | PF_X;
    phdr.p_offset = image.size();
    phdr.p_vaddr = 0xffffffff80000000ULL + s.paddr;  // like vmlinux: virtual != physical
    phdr.p_paddr = s.paddr;
    phdr.p_filesz = s.data.size();
    phdr.p_memsz = s.memsz != 0 ? s.memsz : s.data.size();
    phdr.p_align = 0x1000;
    store(image, phdr_offset(i), phdr);
    image.insert(image.end(), s.data.begin(), s.data.end());
  }
  return image;
}

// A one-segment vmlinux at 1 MiB with its entry at the start.
inline std::vector<std::byte> make_simple_elf(std::size_t size = 0x1000) {
  return make_elf({ElfSegment{PT_LOAD, boot::layout::kHighMemory.value, pattern(size), 0}},
                  boot::layout::kHighMemory.value);
}

template <typename F>
void edit_ehdr(std::vector<std::byte>& image, F&& change) {
  edit<Elf64_Ehdr>(image, 0, change);
}

template <typename F>
void edit_phdr(std::vector<std::byte>& image, std::size_t index, F&& change) {
  edit<Elf64_Phdr>(image, phdr_offset(index), change);
}

struct BzImageSpec {
  std::uint8_t setup_sects = 4;
  std::size_t payload_size = 0x3000;  // protected-mode kernel bytes after the setup sectors
  std::uint16_t version = 0x020f;
  std::uint16_t xloadflags = XLF_KERNEL_64;
  std::uint64_t pref_address = 0x1000000;  // 16 MiB, as LOAD_PHYSICAL_ADDR
  std::uint32_t init_size = 0x400000;      // 4 MiB
  std::uint32_t initrd_addr_max = 0x7fffffff;
  std::uint32_t cmdline_size = 2047;
};

inline std::size_t bzimage_setup_bytes(const BzImageSpec& spec) {
  const std::size_t sects = spec.setup_sects == 0 ? boot::kDefaultSetupSects : spec.setup_sects;
  return (sects + 1) * boot::kSectorSize;
}

// The real-mode setup sectors (with the setup header at 0x1f1) followed by the payload.
inline std::vector<std::byte> make_bzimage(const BzImageSpec& spec = {}) {
  boot::SetupHeader hdr{};
  hdr.setup_sects = spec.setup_sects;
  hdr.syssize = static_cast<std::uint32_t>(spec.payload_size / 16);
  hdr.boot_flag = boot::kBootFlagMagic;
  hdr.header = boot::kHeaderMagic;
  hdr.version = spec.version;
  hdr.loadflags = LOADED_HIGH;
  hdr.code32_start = static_cast<std::uint32_t>(boot::layout::kHighMemory.value);
  hdr.initrd_addr_max = spec.initrd_addr_max;
  hdr.kernel_alignment = 0x200000;
  hdr.relocatable_kernel = 1;
  hdr.xloadflags = spec.xloadflags;
  hdr.cmdline_size = spec.cmdline_size;
  hdr.pref_address = spec.pref_address;
  hdr.init_size = spec.init_size;

  std::vector<std::byte> image(bzimage_setup_bytes(spec));
  store(image, boot::kSetupHeaderOffset, hdr);
  const std::vector<std::byte> payload = pattern(spec.payload_size, 0x42);
  image.insert(image.end(), payload.begin(), payload.end());
  return image;
}

template <typename F>
void edit_setup_header(std::vector<std::byte>& image, F&& change) {
  edit<boot::SetupHeader>(image, boot::kSetupHeaderOffset, change);
}

}  // namespace microvm::test
