// The spec exchange of a template boot (guest/protocol/spec_channel.h): the init's receive_spec
// against the VMM's status port device (devices/status_port.h), register for register, as
// microvm-init drives it with inl/outl/rep insb; and the checks each side makes of the other's
// input (a length over the limit, an unclaimed port, a cursor past the end, odd access sizes).
#include "guest/protocol/spec_channel.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/status_port.h"
#include "guest/protocol/spec.h"
#include "guest/protocol/status_port.h"
#include "tests/unit/test_support.h"

namespace microvm::guest::status_port {
namespace {

// The guest's port I/O, straight into a device (what KVM's exits do, one element at a time).
class DevicePorts final : public PortIo {
 public:
  explicit DevicePorts(devices::BusDevice& device) : device_(device) {}
  std::uint32_t in32(std::uint16_t offset) override {
    std::uint8_t bytes[4] = {0xff, 0xff, 0xff, 0xff};
    device_.read(offset, bytes);
    std::uint32_t value = 0;
    std::memcpy(&value, bytes, sizeof(value));
    return value;
  }
  void out32(std::uint16_t offset, std::uint32_t value) override {
    std::uint8_t bytes[4];
    std::memcpy(bytes, &value, sizeof(value));
    device_.write(offset, bytes);
  }
  void in8_string(std::uint16_t offset, std::span<std::uint8_t> bytes) override {
    ++string_reads;
    for (std::uint8_t& byte : bytes) device_.read(offset, std::span(&byte, 1));
  }
  int string_reads = 0;

 private:
  devices::BusDevice& device_;
};

// No device at all: an unclaimed port reads all ones.
class NoDevice final : public PortIo {
 public:
  std::uint32_t in32(std::uint16_t) override { return kNoDevice; }
  void out32(std::uint16_t, std::uint32_t) override {}
  void in8_string(std::uint16_t, std::span<std::uint8_t> bytes) override {
    std::fill(bytes.begin(), bytes.end(), 0xff);
  }
};

struct Recorded {
  devices::StatusPort::Event event;
  std::uint32_t payload;
};

class SpecChannelTest : public ::testing::Test {
 protected:
  SpecChannelTest()
      : port_([this](devices::StatusPort::Event event, std::uint32_t payload, std::chrono::steady_clock::time_point) {
          events_.push_back({event, payload});
        }),
        io_(port_) {}

  std::vector<Recorded> events_;
  devices::StatusPort port_;
  DevicePorts io_;
};

TEST_F(SpecChannelTest, ASpecTheHostPublishesArrivesWhole) {
  Spec spec;
  spec.args = {"/bin/sh", "-c", "echo warm"};
  spec.env = {"A=1"};
  spec.cwd = "/work";
  spec.realtime_ns = 1'796'000'000'123'456'789ULL;
  const std::string json = spec_to_json(spec);
  port_.set_spec(json);
  int waits = 0;
  auto got = receive_spec(io_, kMaxSpecBytes, [&] { return ++waits < 5; });
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, json);
  EXPECT_EQ(waits, 0);  // it was there at the first poll
  auto parsed = parse_spec(*got);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, spec);
}

TEST_F(SpecChannelTest, TheGuestPollsUntilTheHostHasOne) {
  const std::string json = R"({"args": ["true"]})";
  int waits = 0;
  auto got = receive_spec(io_, kMaxSpecBytes, [&] {
    if (++waits == 3) port_.set_spec(json);  // the host restores the template, then hands it over
    return true;
  });
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, json);
  EXPECT_EQ(waits, 3);
}

TEST_F(SpecChannelTest, ALargeSpecIsReadOnePageAtATime) {
  std::string big(3 * kSpecChunkBytes + 17, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  port_.set_spec(big);
  auto got = receive_spec(io_, kMaxSpecBytes, [] { return false; });
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, big);
  EXPECT_EQ(io_.string_reads, 4);
}

TEST_F(SpecChannelTest, GivingUpNoDeviceAndAnOversizedSpecAreErrors) {
  EXPECT_ERROR_CONTAINS(receive_spec(io_, kMaxSpecBytes, [] { return false; }), "no spec from the host");
  NoDevice none;
  EXPECT_ERROR_CONTAINS(receive_spec(none, kMaxSpecBytes, [] { return false; }), "no status device");
  port_.set_spec(std::string(100, 'x'));
  EXPECT_ERROR_CONTAINS(receive_spec(io_, 99, [] { return false; }), "100 bytes, more than 99");
}

TEST_F(SpecChannelTest, TheDeviceNeverReadsPastTheSpecAndIgnoresOddAccesses) {
  port_.set_spec("abc");
  EXPECT_EQ(io_.in32(kSpecLengthOffset), 3u);
  io_.out32(kSpecCursorOffset, 0xfffffff0U);  // hostile cursor: clamped to the end
  std::uint8_t byte = 0x55;
  port_.read(kSpecDataOffset, std::span(&byte, 1));
  EXPECT_EQ(byte, 0);
  io_.out32(kSpecCursorOffset, 1);
  port_.read(kSpecDataOffset, std::span(&byte, 1));
  EXPECT_EQ(byte, 'b');
  std::uint8_t wide[4] = {1, 2, 3, 4};  // a 32-bit read of the data register is not defined: zeros
  port_.read(kSpecDataOffset, wide);
  EXPECT_EQ(std::vector<std::uint8_t>(wide, wide + 4), std::vector<std::uint8_t>(4, 0));
  std::uint8_t narrow[2] = {9, 9};  // nor a 16-bit read of the length
  port_.read(kSpecLengthOffset, narrow);
  EXPECT_EQ(std::vector<std::uint8_t>(narrow, narrow + 2), std::vector<std::uint8_t>(2, 0));
  // The cursor register did not move past 'b' with the odd accesses.
  port_.read(kSpecDataOffset, std::span(&byte, 1));
  EXPECT_EQ(byte, 'c');
  EXPECT_TRUE(events_.empty());  // none of this is an event
}

TEST_F(SpecChannelTest, SpecWantedIsAnEventAndTheStatusRegisterStillWorks) {
  io_.out32(0, encode(Event::kSpecWanted, 0));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].event, Event::kSpecWanted);
  port_.set_spec("{}");
  EXPECT_FALSE(stop_requested(io_.in32(0)));
  port_.request_stop();
  EXPECT_TRUE(stop_requested(io_.in32(0)));
}

TEST(SpecRealtime, RoundTripsAndIsCheckedAndOptional) {
  auto parsed = parse_spec(R"({"args": ["true"], "realtime_ns": 1796000000000000000})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->realtime_ns, 1796000000000000000ULL);
  auto again = parse_spec(spec_to_json(*parsed));
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(*again, *parsed);
  EXPECT_ERROR_CONTAINS(parse_spec(R"({"args": ["true"], "realtime_ns": -1})"), "realtime_ns");
  EXPECT_ERROR_CONTAINS(parse_spec(R"({"args": ["true"], "realtime_ns": "now"})"), "realtime_ns");
  auto without = parse_spec(R"({"args": ["true"]})");
  ASSERT_TRUE(without.has_value());
  EXPECT_FALSE(without->realtime_ns.has_value());
  EXPECT_EQ(spec_to_json(*without).find("realtime_ns"), std::string::npos);
}

}  // namespace
}  // namespace microvm::guest::status_port
