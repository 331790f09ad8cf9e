// vmm::Bus: routes an access to the device whose range holds all of it, at the right offset.
#include "vmm/bus.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/test_support.h"

namespace microvm::vmm {
namespace {

// Remembers each access; reads return `fill` in every byte.
class RecordingDevice final : public devices::BusDevice {
 public:
  struct Access {
    bool write;
    std::uint64_t offset;
    std::vector<std::uint8_t> data;
    bool operator==(const Access&) const = default;
  };

  explicit RecordingDevice(std::uint8_t fill = 0) : fill_(fill) {}

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    for (auto& b : data) b = fill_;
    accesses.push_back({false, offset, {data.begin(), data.end()}});
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    accesses.push_back({true, offset, {data.begin(), data.end()}});
  }

  std::vector<Access> accesses;

 private:
  std::uint8_t fill_;
};

class BusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(bus_.insert(0x3f8, 8, serial_, "serial").has_value());
    ASSERT_TRUE(bus_.insert(0x60, 1, keyboard_, "i8042-data").has_value());
    ASSERT_TRUE(bus_.insert(0x600, 2, sleep_, "acpi-sleep").has_value());
  }

  bool write(std::uint64_t address, std::vector<std::uint8_t> data) { return bus_.write(address, data); }
  bool read(std::uint64_t address, std::size_t size) {
    std::vector<std::uint8_t> data(size);
    return bus_.read(address, data);
  }

  bool untouched() const { return serial_.accesses.empty() && keyboard_.accesses.empty() && sleep_.accesses.empty(); }

  Bus bus_;
  RecordingDevice serial_{0x11};
  RecordingDevice keyboard_{0x22};
  RecordingDevice sleep_{0x33};
};

TEST_F(BusTest, WriteGoesToTheOwningDeviceAtItsOffset) {
  EXPECT_TRUE(write(0x3fb, {0x83}));
  ASSERT_EQ(serial_.accesses.size(), 1U);
  EXPECT_EQ(serial_.accesses[0], (RecordingDevice::Access{true, 3, {0x83}}));
  EXPECT_TRUE(keyboard_.accesses.empty());
  EXPECT_TRUE(sleep_.accesses.empty());

  EXPECT_TRUE(write(0x601, {0x20}));
  EXPECT_EQ(sleep_.accesses.back(), (RecordingDevice::Access{true, 1, {0x20}}));
}

TEST_F(BusTest, ReadReturnsTheDevicesData) {
  std::uint8_t data[2] = {0, 0};
  EXPECT_TRUE(bus_.read(0x3f8, data));
  EXPECT_EQ(data[0], 0x11);
  EXPECT_EQ(data[1], 0x11);
  EXPECT_EQ(serial_.accesses.back(), (RecordingDevice::Access{false, 0, {0x11, 0x11}}));
  EXPECT_TRUE(bus_.read(0x60, std::span(data, 1)));
  EXPECT_EQ(data[0], 0x22);
}

TEST_F(BusTest, UnclaimedAddressesAreNotRouted) {
  EXPECT_FALSE(read(0x3f7, 1));
  EXPECT_FALSE(read(0x400, 1));
  EXPECT_FALSE(write(0x61, {0}));
  EXPECT_FALSE(write(0x0, {0}));
  EXPECT_FALSE(read(UINT64_MAX, 1));
  EXPECT_TRUE(untouched());
}

TEST_F(BusTest, AccessStraddlingADeviceEndIsNotRouted) {
  EXPECT_FALSE(read(0x3fe, 4));
  EXPECT_FALSE(write(0x3ff, {1, 2}));
  EXPECT_FALSE(write(0x60, {1, 2}));
  EXPECT_FALSE(read(0x3f6, 4));  // starts before the device
  EXPECT_TRUE(untouched());
  EXPECT_TRUE(read(0x3fc, 4));  // ends exactly at the device's end
  EXPECT_EQ(serial_.accesses.back().offset, 4U);
}

TEST_F(BusTest, OverlappingInsertsAreRejected) {
  RecordingDevice other;
  EXPECT_ERROR_CONTAINS(bus_.insert(0x3f8, 8, other, "dup"), "overlaps serial");
  EXPECT_ERROR_CONTAINS(bus_.insert(0x3f0, 9, other, "low"), "overlaps");   // covers the first byte
  EXPECT_ERROR_CONTAINS(bus_.insert(0x3ff, 4, other, "high"), "overlaps");  // covers the last byte
  EXPECT_ERROR_CONTAINS(bus_.insert(0x3fa, 1, other, "inside"), "overlaps");
  EXPECT_ERROR_CONTAINS(bus_.insert(0x300, 0x200, other, "around"), "overlaps");
  EXPECT_TRUE(bus_.insert(0x3f0, 8, other, "adjacent-below").has_value());
  EXPECT_TRUE(bus_.insert(0x400, 8, other, "adjacent-above").has_value());
  // The rejected inserts did not claim anything, and the serial port still owns its range.
  EXPECT_TRUE(write(0x3f8, {7}));
  EXPECT_EQ(serial_.accesses.size(), 1U);
  EXPECT_TRUE(write(0x3f7, {7}));
  EXPECT_EQ(other.accesses.back().offset, 7U);
}

TEST_F(BusTest, EmptyOrWrappingRangesAreRejected) {
  RecordingDevice other;
  EXPECT_ERROR_CONTAINS(bus_.insert(0x1000, 0, other, "empty"), "empty or wrapping");
  EXPECT_ERROR_CONTAINS(bus_.insert(UINT64_MAX - 1, 4, other, "wrap"), "empty or wrapping");
}

TEST(Bus, RoutesRegardlessOfInsertionOrder) {
  Bus bus;
  RecordingDevice a;
  RecordingDevice b;
  RecordingDevice c;
  ASSERT_TRUE(bus.insert(0xd0000000, 0x1000, c, "c").has_value());
  ASSERT_TRUE(bus.insert(0x10000, 0x100, a, "a").has_value());
  ASSERT_TRUE(bus.insert(0x20000, 0x100, b, "b").has_value());
  std::uint8_t value = 9;
  EXPECT_TRUE(bus.write(0x200ff, std::span(&value, 1)));
  EXPECT_TRUE(bus.write(0xd0000800, std::span(&value, 1)));
  EXPECT_TRUE(bus.write(0x10000, std::span(&value, 1)));
  EXPECT_FALSE(bus.write(0x10100, std::span(&value, 1)));
  ASSERT_EQ(a.accesses.size(), 1U);
  ASSERT_EQ(b.accesses.size(), 1U);
  ASSERT_EQ(c.accesses.size(), 1U);
  EXPECT_EQ(a.accesses[0].offset, 0U);
  EXPECT_EQ(b.accesses[0].offset, 0xffU);
  EXPECT_EQ(c.accesses[0].offset, 0x800U);
}

TEST(Bus, EmptyBusClaimsNothing) {
  const Bus bus;
  std::uint8_t value = 0;
  EXPECT_FALSE(bus.read(0, std::span(&value, 1)));
  EXPECT_FALSE(bus.write(0x3f8, std::span(&value, 1)));
}

}  // namespace
}  // namespace microvm::vmm
