// bzImage loader: the protected-mode part goes to 1 MiB, entry at +0x200; images that are not
// 64-bit-bootable bzImages, or that do not fit guest memory, are rejected before any write.
#include <gtest/gtest.h>

#include "boot/kernel_loader.h"
#include "boot/layout.h"
#include "tests/unit/kernel_images.h"
#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

using test::BzImageSpec;
using test::edit_setup_header;
using test::kMiB;

// The boot structs are packed (<asm/bootparam.h>): `+field` compares a copy, because EXPECT_EQ would bind
// a reference to a misaligned member (undefined behaviour; UBSan aborts).
constexpr std::uint64_t kLoad = 0x100000;
constexpr std::uint8_t kDirt = 0xcc;

class BzImageLoader : public ::testing::Test {
 protected:
  void SetUp() override { test::fill(memory_, GuestAddress(kLoad), kMiB, kDirt); }

  Result<LoadedKernel> load(const std::vector<std::byte>& image) { return load_bzimage(memory_, image); }
  Result<LoadedKernel> load(const BzImageSpec& spec) { return load(test::make_bzimage(spec)); }

  // Loads a valid image after changing its setup header.
  template <typename F>
  Result<LoadedKernel> load_with_header(F&& change) {
    auto image = test::make_bzimage();
    edit_setup_header(image, change);
    return load(image);
  }

  bool load_area_untouched() {
    return test::guest_bytes(memory_, GuestAddress(kLoad), 64) == std::vector<std::byte>(64, std::byte{kDirt});
  }

  GuestMemory memory_ = test::make_memory(32 * kMiB);
};

TEST_F(BzImageLoader, LoadsProtectedModeKernelAt1MiB) {
  const BzImageSpec spec;
  const auto image = test::make_bzimage(spec);
  auto kernel = load(image);
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kBzImage);
  EXPECT_EQ(kernel->entry, GuestAddress(kLoad + 0x200));
  // The decompressor's area [pref_address, pref_address + init_size) is the end of the kernel.
  EXPECT_EQ(kernel->end, GuestAddress(spec.pref_address + spec.init_size));

  const std::size_t setup = test::bzimage_setup_bytes(spec);
  ASSERT_EQ(setup, 5U * 512);
  const std::vector<std::byte> payload(image.begin() + static_cast<std::ptrdiff_t>(setup), image.end());
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(kLoad), payload.size()), payload);

  ASSERT_TRUE(kernel->header.has_value());
  EXPECT_EQ(+kernel->header->version, 0x020f);
  EXPECT_EQ(+kernel->header->boot_flag, 0xaa55);
  EXPECT_EQ(+kernel->header->header, 0x53726448U);
  EXPECT_EQ(+kernel->header->init_size, spec.init_size);
  EXPECT_EQ(+kernel->header->pref_address, spec.pref_address);
}

TEST_F(BzImageLoader, ZeroSetupSectsMeansFour) {
  const BzImageSpec spec{.setup_sects = 0};
  const auto image = test::make_bzimage(spec);
  auto kernel = load(image);
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(test::guest_bytes(memory_, GuestAddress(kLoad), 16),
            std::vector<std::byte>(image.begin() + 5 * 512, image.begin() + 5 * 512 + 16));
}

TEST_F(BzImageLoader, EndCoversTheKernelWhenItIsLargerThanInitSize) {
  const BzImageSpec spec{.payload_size = 0x40000, .pref_address = 0, .init_size = 0x1000};
  auto kernel = load(test::make_bzimage(spec));
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->end, GuestAddress(kLoad + 0x40000));
}

TEST_F(BzImageLoader, RejectsImageWithoutMagic) {
  EXPECT_ERROR_CONTAINS(load_with_header([](SetupHeader& h) { h.boot_flag = 0; }), "not a kernel");
  EXPECT_ERROR_CONTAINS(load_with_header([](SetupHeader& h) { h.header = 0x53726449; }), "not a kernel");
  EXPECT_TRUE(load_area_untouched());
}

TEST_F(BzImageLoader, RejectsTooShortImage) {
  EXPECT_ERROR_CONTAINS(load(std::vector<std::byte>(0x200)), "not a kernel");
}

TEST_F(BzImageLoader, RejectsOldBootProtocol) {
  auto result = load(BzImageSpec{.version = 0x020b});
  EXPECT_ERROR_CONTAINS(result, "2.11");
  EXPECT_ERROR_CONTAINS(result, "2.12");
  EXPECT_TRUE(load(BzImageSpec{.version = 0x020c}).has_value());
}

TEST_F(BzImageLoader, RejectsKernelWithout64BitEntry) {
  EXPECT_ERROR_CONTAINS(load(BzImageSpec{.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G}), "XLF_KERNEL_64");
  EXPECT_TRUE(load_area_untouched());
}

TEST_F(BzImageLoader, RejectsTruncatedImage) {
  // syssize counts 16-byte units: one more than the file has.
  EXPECT_ERROR_CONTAINS(load_with_header([](SetupHeader& h) { h.syssize += 1; }), "truncated");

  auto image = test::make_bzimage({.setup_sects = 200});  // setup code longer than the whole file
  image.resize(0x1000);
  EXPECT_ERROR_CONTAINS(load(image), "truncated");
  EXPECT_TRUE(load_area_untouched());
}

TEST_F(BzImageLoader, RejectsMemoryTooSmall) {
  // 16 MiB + 16 MiB of decompression room does not fit 32 MiB of RAM; exactly 32 MiB does.
  const auto too_big = load(BzImageSpec{.init_size = 16 * kMiB + 0x1000});
  EXPECT_ERROR_CONTAINS(too_big, "too small");
  EXPECT_ERROR_CONTAINS(too_big, "--memory");
  EXPECT_TRUE(load_area_untouched());
  EXPECT_TRUE(load(BzImageSpec{.init_size = 16 * kMiB}).has_value());
}

TEST_F(BzImageLoader, RejectsPreferredAddressBeyondMemory) {
  EXPECT_ERROR_CONTAINS(load(BzImageSpec{.pref_address = 0x80000000, .init_size = 0x1000}), "too small");
}

TEST_F(BzImageLoader, RejectsDecompressionAreaThatWrapsAround) {
  EXPECT_ERROR_CONTAINS(load(BzImageSpec{.pref_address = UINT64_MAX - 0xfff, .init_size = 0x2000}), "wraps");
  EXPECT_TRUE(load_area_untouched());
}

TEST(LoadKernel, DetectsBzImage) {
  const GuestMemory memory = test::make_memory(32 * kMiB);
  auto kernel = load_kernel(memory, test::make_bzimage());
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kBzImage);
  EXPECT_EQ(kernel->entry, GuestAddress(kLoad + 0x200));
}

TEST(LoadKernel, RejectsNeitherFormat) {
  const GuestMemory memory = test::make_memory(32 * kMiB);
  EXPECT_ERROR_CONTAINS(load_kernel(memory, test::pattern(0x4000)), "not a kernel");
  EXPECT_ERROR_CONTAINS(load_kernel(memory, std::vector<std::byte>(3)), "not a kernel");
}

}  // namespace
}  // namespace microvm::boot
