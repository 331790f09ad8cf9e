// read_config_window (devices/virtio/config_space.h): the one bounds-checked copy out of a device's
// configuration space that virtio-blk, virtio-net and virtio-console share. In-range, partial,
// out-of-range and overflowing offsets; empty reads; structs.
#include "devices/virtio/config_space.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace microvm::devices::virtio {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

const std::array<std::byte, 8> kConfig{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                       std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};

std::vector<std::uint8_t> window(std::uint64_t offset, std::size_t len) {
  std::vector<std::uint8_t> out(len, 0xaa);  // 0xaa: never written
  read_config_window(kConfig, offset, out);
  return out;
}

TEST(ConfigWindowTest, InsideReadsTheBytes) {
  EXPECT_EQ(window(0, 8), (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(window(2, 4), (std::vector<std::uint8_t>{3, 4, 5, 6}));
  EXPECT_EQ(window(7, 1), (std::vector<std::uint8_t>{8}));
}

TEST(ConfigWindowTest, PartlyOutsideReadsTheInsideBytesThenZeros) {
  EXPECT_EQ(window(6, 4), (std::vector<std::uint8_t>{7, 8, 0, 0}));
  EXPECT_EQ(window(0, 12), (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0}));
}

TEST(ConfigWindowTest, OutsideReadsZeros) {
  EXPECT_EQ(window(8, 4), (std::vector<std::uint8_t>(4, 0)));
  EXPECT_EQ(window(0x1000, 2), (std::vector<std::uint8_t>(2, 0)));
}

TEST(ConfigWindowTest, OffsetsNearTwoToTheSixtyFourDoNotWrap) {
  // offset + len wraps around 2^64 for these: a naive bounds check would read from the start.
  EXPECT_EQ(window(kMax, 4), (std::vector<std::uint8_t>(4, 0)));
  EXPECT_EQ(window(kMax - 1, 8), (std::vector<std::uint8_t>(8, 0)));
  EXPECT_EQ(window(kMax - 7, 16), (std::vector<std::uint8_t>(16, 0)));
}

TEST(ConfigWindowTest, EmptyReadAndEmptyConfig) {
  EXPECT_TRUE(window(3, 0).empty());
  std::vector<std::uint8_t> out(3, 0xaa);
  read_config_window(std::span<const std::byte>{}, 0, out);
  EXPECT_EQ(out, (std::vector<std::uint8_t>(3, 0)));
}

struct FakeConfig {  // little-endian fields, as a device's config struct
  std::uint32_t a;   // 0
  std::uint16_t b;   // 4
  std::uint16_t c;   // 6
};
static_assert(sizeof(FakeConfig) == 8);

TEST(ConfigWindowTest, StructOverload) {
  const FakeConfig config{0x04030201, 0x0605, 0x0807};
  std::array<std::uint8_t, 4> out{};
  read_config_window(config, 3, out);
  EXPECT_EQ(out, (std::array<std::uint8_t, 4>{0x04, 0x05, 0x06, 0x07}));
  read_config_window(config, 6, out);
  EXPECT_EQ(out, (std::array<std::uint8_t, 4>{0x07, 0x08, 0, 0}));
}

}  // namespace
}  // namespace microvm::devices::virtio
