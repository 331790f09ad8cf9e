// i8042: enough of the keyboard controller for Linux's probe and `reboot=k` (status polling,
// self-tests, the control byte, and the two ways of pulsing the CPU reset line).
#include "devices/i8042.h"

#include <gtest/gtest.h>

namespace microvm::devices {
namespace {

constexpr std::uint8_t kStatusOutputFull = 0x01;
constexpr std::uint8_t kStatusInputFull = 0x02;

class I8042Test : public ::testing::Test {
 protected:
  std::uint8_t status() { return read(I8042::kCommandOffset); }
  std::uint8_t data() { return read(I8042::kDataOffset); }
  void command(std::uint8_t value) { i8042_.write(I8042::kCommandOffset, std::span(&value, 1)); }
  void write_data(std::uint8_t value) { i8042_.write(I8042::kDataOffset, std::span(&value, 1)); }

  std::uint8_t read(std::uint64_t offset) {
    std::uint8_t value = 0;
    i8042_.read(offset, std::span(&value, 1));
    return value;
  }

  int resets_ = 0;
  I8042 i8042_{[this] { ++resets_; }};
};

TEST_F(I8042Test, InputBufferIsAlwaysEmpty) {
  EXPECT_EQ(status() & kStatusInputFull, 0);
  EXPECT_EQ(status() & kStatusOutputFull, 0);
  command(0xd1);  // even while a command waits for its data byte
  EXPECT_EQ(status() & kStatusInputFull, 0);
}

TEST_F(I8042Test, SelfTestAnswers0x55) {
  command(0xaa);
  EXPECT_EQ(status() & kStatusOutputFull, kStatusOutputFull);
  EXPECT_EQ(data(), 0x55);
  EXPECT_EQ(status() & kStatusOutputFull, 0);  // reading empties the output buffer
  EXPECT_EQ(data(), 0x00);
}

TEST_F(I8042Test, InterfaceTestsPass) {
  command(0xab);
  EXPECT_EQ(status() & kStatusOutputFull, kStatusOutputFull);
  EXPECT_EQ(data(), 0x00);
  command(0xa9);
  EXPECT_EQ(status() & kStatusOutputFull, kStatusOutputFull);
  EXPECT_EQ(data(), 0x00);
}

TEST_F(I8042Test, ControlByteReadAndWrite) {
  command(0x20);
  EXPECT_EQ(data(), 0x30);  // both port clocks disabled
  command(0x60);
  write_data(0x47);
  command(0x20);
  EXPECT_EQ(data(), 0x47);
  EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, PulseResetCommandResets) {
  command(0xfe);
  EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, OutputPortWithResetBitClearResets) {
  command(0xd1);
  write_data(0x01);  // bit 0 set: CPU keeps running
  EXPECT_EQ(resets_, 0);
  command(0xd1);
  write_data(0xfe);  // bit 0 clear: reset
  EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, DataWithoutPendingCommandDoesNotReset) {
  write_data(0x00);
  command(0xd1);
  command(0xad);  // a new command cancels the pending output-port write
  write_data(0x00);
  EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, NoOtherCommandResets) {
  for (unsigned value = 0; value <= 0xff; ++value) {
    if (value == 0xfe) continue;
    command(static_cast<std::uint8_t>(value));
    write_data(0x01);
    ASSERT_EQ(resets_, 0) << "command " << std::hex << value;
  }
}

TEST_F(I8042Test, OtherOffsetsReadAllOnes) {
  EXPECT_EQ(read(1), 0xff);
  EXPECT_EQ(read(5), 0xff);
}

}  // namespace
}  // namespace microvm::devices
