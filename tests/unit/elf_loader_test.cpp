// ELF vmlinux loader: PT_LOAD segments land at p_paddr with their BSS zeroed; every malformed
// image is rejected with a message naming the problem, before guest memory is touched.
#include <elf.h>
#include <gtest/gtest.h>

#include "boot/kernel_loader.h"
#include "boot/layout.h"
#include "tests/unit/kernel_images.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::edit_ehdr;
using test::edit_phdr;
using test::ElfSegment;
using test::kMiB;

constexpr std::uint64_t kLoad = 0x100000;  // 1 MiB
constexpr std::uint8_t kDirt = 0xcc;       // pre-fill, so "zeroed" and "untouched" are observable

class ElfLoader : public ::testing::Test {
 protected:
  void SetUp() override { test::fill(memory_, GuestAddress(kLoad), 4 * kMiB, kDirt); }

  Result<LoadedKernel> load(const std::vector<std::byte>& image) { return load_elf(memory_, image); }

  // Loads a valid one-segment image after changing its ELF header or its program header.
  template <typename F>
  Result<LoadedKernel> load_with_ehdr(F&& change, std::size_t segment_size = 0x100) {
    auto image = test::make_simple_elf(segment_size);
    edit_ehdr(image, change);
    return load(image);
  }
  template <typename F>
  Result<LoadedKernel> load_with_phdr(F&& change) {
    auto image = test::make_simple_elf(0x100);
    edit_phdr(image, 0, change);
    return load(image);
  }

  bool untouched(std::uint64_t addr, std::size_t len) {
    return test::guest_bytes(memory_, GuestAddress(addr), len) == std::vector<std::byte>(len, std::byte{kDirt});
  }

  GuestMemory memory_ = test::make_memory(16 * kMiB);
};

TEST_F(ElfLoader, LoadsSegmentsAtPhysicalAddresses) {
  const auto text = test::pattern(0x200, 3);
  const auto data = test::pattern(0x80, 9);
  const auto image = test::make_elf(
      {ElfSegment{PT_LOAD, kLoad, text, 0}, ElfSegment{PT_NOTE, 0, test::pattern(16), 0},  // not loaded, not checked
       ElfSegment{PT_LOAD, 2 * kMiB, data, 0x1000}},
      kLoad + 0x10);
  auto kernel = load(image);
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kElf);
  EXPECT_EQ(kernel->entry, GuestAddress(kLoad + 0x10));
  EXPECT_EQ(kernel->end, GuestAddress(2 * kMiB + 0x1000));
  EXPECT_FALSE(kernel->header.has_value());

  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(kLoad), text.size()), text);
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(2 * kMiB), data.size()), data);
  // memsz > filesz: the rest of the segment (BSS) is zero-filled.
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(2 * kMiB + data.size()), 0x1000 - data.size()),
            std::vector<std::byte>(0x1000 - data.size()));
  // Nothing past the segment's memory size is written.
  EXPECT_TRUE(untouched(kLoad + text.size(), 16));
  EXPECT_TRUE(untouched(2 * kMiB + 0x1000, 16));
}

TEST_F(ElfLoader, EntryAtTheLastByteOfASegment) {
  auto kernel = load(test::make_elf({ElfSegment{PT_LOAD, kLoad, test::pattern(0x100), 0}}, kLoad + 0xff));
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->end, GuestAddress(kLoad + 0x100));
}

TEST_F(ElfLoader, RejectsBadMagic) {
  auto image = test::make_simple_elf();
  image[1] = std::byte{'X'};
  EXPECT_ERROR_CONTAINS(load(image), "magic");
  EXPECT_ERROR_CONTAINS(load_elf(memory_, std::span<const std::byte>()), "magic");
}

TEST_F(ElfLoader, RejectsTruncatedHeader) {
  auto image = test::make_simple_elf();
  image.resize(sizeof(Elf64_Ehdr) - 1);
  EXPECT_ERROR_CONTAINS(load(image), "truncated");
}

TEST_F(ElfLoader, Rejects32BitElf) {
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_ident[EI_CLASS] = ELFCLASS32; }), "32-bit");
}

TEST_F(ElfLoader, RejectsBigEndian) {
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_ident[EI_DATA] = ELFDATA2MSB; }), "big-endian");
}

TEST_F(ElfLoader, RejectsWrongMachine) {
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_machine = EM_AARCH64; }), "not x86-64");
}

TEST_F(ElfLoader, RejectsSharedObject) {
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_type = ET_DYN; }), "ET_EXEC");
}

TEST_F(ElfLoader, RejectsMalformedProgramHeaderTable) {
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_phentsize = sizeof(Elf32_Phdr); }),
                        "program header size");
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_phnum = 0; }), "no program headers");
}

TEST_F(ElfLoader, RejectsTruncatedProgramHeaderTable) {
  // Only one entry (and 16 bytes of data) follow the header.
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_phnum = 3; }, 16), "truncated");
  // The table's offset plus its size would wrap around 2^64.
  EXPECT_ERROR_CONTAINS(load_with_ehdr([](Elf64_Ehdr& h) { h.e_phoff = UINT64_MAX - 8; }, 16), "truncated");
}

TEST_F(ElfLoader, RejectsSegmentDataPastEndOfFile) {
  EXPECT_ERROR_CONTAINS(load_with_phdr([](Elf64_Phdr& p) { p.p_filesz = 0x101; }), "past the end");
  EXPECT_ERROR_CONTAINS(load_with_phdr([](Elf64_Phdr& p) {
                          p.p_offset = UINT64_MAX - 0x10;
                          p.p_filesz = 0x20;
                        }),
                        "truncated");
}

TEST_F(ElfLoader, RejectsFileSizeLargerThanMemorySize) {
  EXPECT_ERROR_CONTAINS(load_with_phdr([](Elf64_Phdr& p) { p.p_memsz = 0x80; }), "file size > memory size");
}

TEST_F(ElfLoader, RejectsSegmentBelow1MiB) {
  const auto image = test::make_elf({ElfSegment{PT_LOAD, 0x7000, test::pattern(0x100), 0}}, 0x7000);
  EXPECT_ERROR_CONTAINS(load(image), "below 1 MiB");
}

TEST_F(ElfLoader, RejectsSegmentOutsideGuestMemory) {
  auto image = test::make_elf({ElfSegment{PT_LOAD, 64 * kMiB, test::pattern(0x100), 0}}, 64 * kMiB);
  const auto beyond = load(image);
  EXPECT_ERROR_CONTAINS(beyond, "outside guest memory");
  EXPECT_ERROR_CONTAINS(beyond, "--memory");

  // Starts inside RAM but its BSS runs past the end.
  image = test::make_elf({ElfSegment{PT_LOAD, 16 * kMiB - 0x100, test::pattern(0x10), 0x200}}, 16 * kMiB - 0x100);
  EXPECT_ERROR_CONTAINS(load(image), "outside guest memory");

  // p_paddr + p_memsz wraps around 2^64.
  EXPECT_ERROR_CONTAINS(load_with_phdr([](Elf64_Phdr& p) { p.p_memsz = UINT64_MAX - 0x1000; }), "outside guest memory");
}

TEST_F(ElfLoader, RejectsEntryOutsideSegments) {
  auto image = test::make_elf({ElfSegment{PT_LOAD, kLoad, test::pattern(0x100), 0}}, kLoad + 0x100);
  EXPECT_ERROR_CONTAINS(load(image), "entry point");
  edit_ehdr(image, [](Elf64_Ehdr& h) { h.e_entry = kLoad - 1; });
  EXPECT_ERROR_CONTAINS(load(image), "entry point");
}

TEST_F(ElfLoader, RejectsImageWithoutLoadableSegments) {
  const auto image = test::make_elf({ElfSegment{PT_NOTE, kLoad, test::pattern(0x10), 0}}, kLoad);
  EXPECT_ERROR_CONTAINS(load(image), "PT_LOAD");
}

TEST_F(ElfLoader, InvalidLaterSegmentLeavesMemoryUntouched) {
  const auto image = test::make_elf({ElfSegment{PT_LOAD, kLoad, test::pattern(0x100), 0},
                                     ElfSegment{PT_LOAD, 0x1000, test::pattern(0x100), 0}},  // below 1 MiB
                                    kLoad);
  EXPECT_ERROR_CONTAINS(load(image), "segment 1");
  EXPECT_TRUE(untouched(kLoad, 0x100));
}

TEST_F(ElfLoader, BadEntryPointLeavesMemoryUntouched) {
  const auto image = test::make_elf({ElfSegment{PT_LOAD, kLoad, test::pattern(0x100), 0}}, 8 * kMiB);
  EXPECT_ERROR_CONTAINS(load(image), "entry point");
  EXPECT_TRUE(untouched(kLoad, 0x100));
}

TEST_F(ElfLoader, RejectsEntryBetweenSegments) {
  const auto image = test::make_elf(
      {ElfSegment{PT_LOAD, kLoad, test::pattern(0x100), 0}, ElfSegment{PT_LOAD, 2 * kMiB, test::pattern(0x100), 0}},
      kLoad + kMiB / 2);  // in neither segment
  EXPECT_ERROR_CONTAINS(load(image), "entry point");
  EXPECT_TRUE(untouched(kLoad, 0x100));
}

TEST_F(ElfLoader, LoadKernelDetectsElf) {
  auto kernel = load_kernel(memory_, test::make_simple_elf());
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kElf);
  EXPECT_EQ(kernel->entry, GuestAddress(kLoad));
}

}  // namespace
}  // namespace microvm::boot
