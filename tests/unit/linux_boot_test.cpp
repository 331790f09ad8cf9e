// setup_linux_boot and place_initrd: the zero page, command line, e820 map, initrd, ACPI tables
// and the boot vCPU's register state, checked from the bytes left in guest memory.
#include "boot/linux_boot.h"

#include <gtest/gtest.h>

#include <string>

#include "boot/layout.h"
#include "boot/x86_64/acpi.h"
#include "boot/x86_64/e820.h"
#include "boot/x86_64/page_tables.h"
#include "tests/unit/kernel_images.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::kGiB;
using test::kMiB;

// The boot structs are packed (<asm/bootparam.h>): `+field` compares a copy, because EXPECT_EQ would bind
// a reference to a misaligned member (undefined behaviour; UBSan aborts).
constexpr std::uint64_t kPage = 4096;
constexpr std::string_view kCmdline = "console=ttyS0 reboot=k panic=1";

class LinuxBoot : public ::testing::Test {
 protected:
  Result<LinuxBootInfo> boot(const std::vector<std::byte>& kernel, std::string cmdline = std::string(kCmdline),
                             const std::vector<std::byte>* initrd = nullptr, unsigned vcpus = 1) {
    LinuxBootConfig config;
    config.kernel = kernel;
    if (initrd != nullptr) config.initrd = std::span<const std::byte>(*initrd);
    config.cmdline = std::move(cmdline);
    config.vcpus = vcpus;
    return setup_linux_boot(memory_, config);
  }

  BootParams params() const { return test::guest_obj<BootParams>(memory_, layout::kBootParams); }

  std::string cmdline_in_memory() const {
    auto bytes = test::guest_bytes(memory_, layout::kCmdline, layout::kCmdlineReserved);
    const std::string text = test::text_of(bytes);
    return text.substr(0, text.find('\0'));
  }

  GuestMemory memory_ = test::make_memory(64 * kMiB);
};

TEST_F(LinuxBoot, WritesTheZeroPageForAnElfKernel) {
  auto info = boot(test::make_simple_elf());
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->format, KernelFormat::kElf);

  const BootParams p = params();
  EXPECT_EQ(p.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+p.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(+p.hdr.header, 0x53726448U);  // "HdrS"
  EXPECT_EQ(+p.hdr.kernel_alignment, kDefaultKernelAlignment);
  EXPECT_EQ(+p.hdr.cmd_line_ptr, layout::kCmdline.value);
  EXPECT_EQ(+p.acpi_rsdp_addr, layout::kAcpiTables.value);
  EXPECT_EQ(+p.hdr.ramdisk_image, 0U);
  EXPECT_EQ(+p.hdr.ramdisk_size, 0U);
  EXPECT_EQ(info->initrd_size, 0U);
}

TEST_F(LinuxBoot, CommandLineIsNulTerminatedAtItsAddress) {
  test::fill(memory_, layout::kCmdline, 0x100, 'X');
  ASSERT_TRUE(boot(test::make_simple_elf()).has_value());
  EXPECT_EQ(cmdline_in_memory(), kCmdline);
  EXPECT_EQ(test::guest_obj<char>(memory_, GuestAddress(layout::kCmdline.value + kCmdline.size())), '\0');
}

TEST_F(LinuxBoot, E820MatchesBuildE820) {
  ASSERT_TRUE(boot(test::make_simple_elf()).has_value());
  const BootParams p = params();
  const auto expected = build_e820(memory_);
  ASSERT_EQ(p.e820_entries, expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(+p.e820_table[i].addr, +expected[i].addr);
    EXPECT_EQ(+p.e820_table[i].size, +expected[i].size);
    EXPECT_EQ(+p.e820_table[i].type, +expected[i].type);
  }
  // 64 MiB of RAM: the last entry runs from 1 MiB to the end of memory.
  EXPECT_EQ(p.e820_table[p.e820_entries - 1].addr + p.e820_table[p.e820_entries - 1].size, 64 * kMiB);
}

TEST_F(LinuxBoot, WritesAcpiTablesForEveryVcpu) {
  ASSERT_TRUE(boot(test::make_simple_elf(), std::string(kCmdline), nullptr, 4).has_value());
  const auto expected = build_acpi_tables(layout::kAcpiTables, 4);
  EXPECT_EQ(test::guest_bytes(memory_, layout::kAcpiTables, expected.size()), expected);
  EXPECT_EQ(test::text_of(test::guest_bytes(memory_, layout::kAcpiTables, 8)), "RSD PTR ");
}

TEST_F(LinuxBoot, ReturnsTheBootCpuState) {
  const auto kernel = test::make_elf({test::ElfSegment{PT_LOAD, 2 * kMiB, test::pattern(0x100), 0}}, 2 * kMiB + 0x40);
  auto info = boot(kernel);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->cpu.rip, 2 * kMiB + 0x40);
  EXPECT_EQ(info->cpu.rsi, layout::kBootParams.value);
  EXPECT_EQ(info->cpu.rsp, layout::kBootStack.value);
  EXPECT_EQ(info->cpu.cr3, layout::kPml4.value);
  EXPECT_EQ(info->cpu.segments.code.selector, kBootCsSelector);
  EXPECT_TRUE(info->cpu.segments.code.l);
  EXPECT_EQ(info->cpu.segments.data.selector, kBootDsSelector);
  EXPECT_EQ(info->cpu.segments.gdt_base, layout::kGdt);
  // The page tables and the GDT are in guest memory, not just described.
  EXPECT_EQ(test::guest_obj<std::uint64_t>(memory_, layout::kPml4), layout::kPdpt.value | kPtePresent | kPteWritable);
  EXPECT_NE(test::guest_obj<std::uint64_t>(memory_, GuestAddress(layout::kGdt.value + kBootCsSelector)), 0U);
}

TEST_F(LinuxBoot, BzImageKeepsItsSetupHeader) {
  auto info = boot(test::make_bzimage({.cmdline_size = 255}));
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->format, KernelFormat::kBzImage);
  EXPECT_EQ(info->cpu.rip, layout::kHighMemory.value + 0x200);
  const BootParams p = params();
  EXPECT_EQ(+p.hdr.version, 0x020f);
  EXPECT_EQ(+p.hdr.xloadflags, XLF_KERNEL_64);
  EXPECT_EQ(+p.hdr.init_size, 0x400000U);
  EXPECT_EQ(p.hdr.type_of_loader, 0xff);  // overrides whatever the image had
  EXPECT_EQ(+p.hdr.cmd_line_ptr, layout::kCmdline.value);
}

TEST_F(LinuxBoot, CommandLineLimitComesFromTheKernelHeader) {
  const auto kernel = test::make_bzimage({.cmdline_size = 16});
  EXPECT_TRUE(boot(kernel, std::string(16, 'a')).has_value());
  EXPECT_ERROR_CONTAINS(boot(kernel, std::string(17, 'a')), "at most 16");
}

TEST_F(LinuxBoot, CommandLineLimitDefaultsTo2048ForElf) {
  EXPECT_TRUE(boot(test::make_simple_elf(), std::string(kDefaultCmdlineSize, 'a')).has_value());
  EXPECT_EQ(cmdline_in_memory().size(), kDefaultCmdlineSize);
  EXPECT_ERROR_CONTAINS(boot(test::make_simple_elf(), std::string(kDefaultCmdlineSize + 1, 'a')), "command line");
}

TEST_F(LinuxBoot, CommandLineWithNulIsRejected) {
  EXPECT_ERROR_CONTAINS(boot(test::make_simple_elf(), std::string("console=ttyS0\0init=/x", 21)), "NUL");
}

TEST_F(LinuxBoot, InitrdGoesPageAlignedToTheTopOfRam) {
  const auto initrd = test::pattern(10000, 5);
  auto info = boot(test::make_simple_elf(), std::string(kCmdline), &initrd);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  const std::uint64_t expected = (64 * kMiB - initrd.size()) / kPage * kPage;
  EXPECT_EQ(info->initrd_address, GuestAddress(expected));
  EXPECT_EQ(info->initrd_size, initrd.size());
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(expected), initrd.size()), initrd);

  const BootParams p = params();
  EXPECT_EQ(+p.hdr.ramdisk_image, expected);
  EXPECT_EQ(+p.hdr.ramdisk_size, initrd.size());
}

TEST_F(LinuxBoot, InitrdRespectsInitrdAddrMax) {
  const auto initrd = test::pattern(0x3000);
  auto info = boot(test::make_bzimage({.initrd_addr_max = 0x1ffffff}), std::string(kCmdline), &initrd);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->initrd_address, GuestAddress(32 * kMiB - 0x3000));
}

TEST_F(LinuxBoot, InitrdTooBigIsRejected) {
  memory_ = test::make_memory(4 * kMiB);
  const auto initrd = test::pattern(3 * kMiB);  // the kernel occupies [1 MiB, 1 MiB + 4 KiB)
  const auto result = boot(test::make_simple_elf(), std::string(kCmdline), &initrd);
  EXPECT_ERROR_CONTAINS(result, "initrd");
  EXPECT_ERROR_CONTAINS(result, "does not fit");
}

TEST_F(LinuxBoot, KernelErrorsPropagate) {
  EXPECT_ERROR_CONTAINS(boot(test::pattern(0x1000)), "not a kernel");
}

TEST_F(LinuxBoot, MemoryMustExtendPast1MiB) {
  memory_ = test::make_memory(kMiB);
  EXPECT_ERROR_CONTAINS(boot(test::make_simple_elf()), "1 MiB");
}

class LinuxBootLarge : public ::testing::Test {
 protected:
  Result<LinuxBootInfo> boot(const std::vector<std::byte>& kernel) {
    return setup_linux_boot(memory_, {kernel, std::span<const std::byte>(initrd_), std::string(kCmdline), 2});
  }

  GuestMemory memory_ = test::make_memory(4 * kGiB);
  std::vector<std::byte> initrd_ = test::pattern(0x2000);
};

TEST_F(LinuxBootLarge, InitrdGoesBelowTheMmioHoleIn4GiBGuest) {
  auto info = boot(test::make_bzimage({.initrd_addr_max = 0xffffffff}));
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->initrd_address, GuestAddress(3 * kGiB - 0x2000));
  EXPECT_EQ(test::guest_bytes(memory_, info->initrd_address, initrd_.size()), initrd_);
  const auto p = test::guest_obj<BootParams>(memory_, layout::kBootParams);
  EXPECT_EQ(+p.hdr.ramdisk_image, 3 * kGiB - 0x2000);
  EXPECT_EQ(p.e820_entries, 4U);
  EXPECT_EQ(+p.e820_table[3].addr, 4 * kGiB);
  EXPECT_EQ(+p.e820_table[3].size, kGiB);
}

TEST_F(LinuxBootLarge, ElfKernelUsesTheDefaultInitrdAddrMax) {
  auto info = boot(test::make_simple_elf());
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->initrd_address, GuestAddress(kDefaultInitrdAddrMax + 1 - 0x2000));  // below 2 GiB
}

class PlaceInitrd : public ::testing::Test {
 protected:
  GuestMemory memory_ = test::make_memory(16 * kMiB);
};

TEST_F(PlaceInitrd, HighestPageAlignedAddressThatFits) {
  EXPECT_EQ(place_initrd(memory_, GuestAddress(2 * kMiB), kPage, UINT32_MAX).value(), GuestAddress(16 * kMiB - kPage));
  EXPECT_EQ(place_initrd(memory_, GuestAddress(2 * kMiB), kPage + 1, UINT32_MAX).value(),
            GuestAddress(16 * kMiB - 2 * kPage));
  EXPECT_EQ(place_initrd(memory_, GuestAddress(2 * kMiB), 1, 8 * kMiB - 1).value(), GuestAddress(8 * kMiB - kPage));
}

TEST_F(PlaceInitrd, ExactlyFillsTheSpaceAboveTheKernel) {
  // The kernel ends mid-page; the initrd may start at the next page boundary but not below it.
  const GuestAddress kernel_end(2 * kMiB + 1);
  const std::uint64_t room = 16 * kMiB - (2 * kMiB + kPage);
  EXPECT_EQ(place_initrd(memory_, kernel_end, room, UINT32_MAX).value(), GuestAddress(2 * kMiB + kPage));
  EXPECT_ERROR_CONTAINS(place_initrd(memory_, kernel_end, room + 1, UINT32_MAX), "does not fit");
}

TEST_F(PlaceInitrd, RejectsSizesLargerThanMemory) {
  EXPECT_FALSE(place_initrd(memory_, GuestAddress(kMiB), 16 * kMiB + 1, UINT32_MAX).has_value());
  EXPECT_FALSE(place_initrd(memory_, GuestAddress(kMiB), UINT64_MAX, UINT32_MAX).has_value());
  EXPECT_FALSE(place_initrd(memory_, GuestAddress(kMiB), kPage, kMiB - 1).has_value());  // addr_max below kernel
}

}  // namespace
}  // namespace microvm::boot
