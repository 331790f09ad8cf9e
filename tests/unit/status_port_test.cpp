// The status port (devices/status_port.h, layout in guest/protocol/status_port.h): events the init
// writes reach the listener with their payload; anything else is ignored; reads say whether the
// host asked for a stop.
#include "devices/status_port.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "guest/protocol/status_port.h"

namespace microvm::devices {
namespace {

namespace layout = guest::status_port;

struct Recorded {
  StatusPort::Event event;
  std::uint32_t payload;
};

class StatusPortTest : public ::testing::Test {
 protected:
  StatusPortTest()
      : port_([this](StatusPort::Event event, std::uint32_t payload, std::chrono::steady_clock::time_point) {
          events_.push_back({event, payload});
        }) {}

  void out32(std::uint64_t offset, std::uint32_t value) {
    std::uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);
    port_.write(offset, bytes);
  }
  std::uint32_t in32() {
    std::uint8_t bytes[4] = {0xff, 0xff, 0xff, 0xff};
    port_.read(0, bytes);
    std::uint32_t value;
    std::memcpy(&value, bytes, 4);
    return value;
  }

  std::vector<Recorded> events_;
  StatusPort port_;
};

TEST_F(StatusPortTest, EventsCarryTheirPayload) {
  out32(0, layout::encode(StatusPort::Event::kInitStarted, 0));
  out32(0, layout::encode(StatusPort::Event::kWorkloadStarted, 1234));
  out32(0, layout::encode(StatusPort::Event::kWorkloadExited, 42));
  ASSERT_EQ(events_.size(), 3U);
  EXPECT_EQ(events_[0].event, StatusPort::Event::kInitStarted);
  EXPECT_EQ(events_[1].event, StatusPort::Event::kWorkloadStarted);
  EXPECT_EQ(events_[1].payload, 1234U);
  EXPECT_EQ(events_[2].event, StatusPort::Event::kWorkloadExited);
  EXPECT_EQ(events_[2].payload, 42U);
}

TEST_F(StatusPortTest, OtherWritesAreIgnored) {
  out32(0, 0x00000001);                                             // event 0: no such event
  out32(0, 0x7f000001);                                             // nor 0x7f
  out32(2, layout::encode(StatusPort::Event::kWorkloadExited, 1));  // wrong offset
  const std::uint8_t byte = 3;
  port_.write(0, std::span(&byte, 1));  // wrong width
  EXPECT_TRUE(events_.empty());
}

TEST_F(StatusPortTest, ReadsReportAStopRequest) {
  EXPECT_EQ(in32(), 0U);
  port_.request_stop();
  EXPECT_EQ(in32(), layout::kStopRequested);
  std::uint8_t byte = 0xff;
  port_.read(0, std::span(&byte, 1));  // not a 32-bit read: 0
  EXPECT_EQ(byte, 0);
}

TEST(StatusPortLayout, EncodingKeepsTheEventAndMasksThePayload) {
  EXPECT_EQ(layout::encode(StatusPort::Event::kWorkloadExited, 255), 0x030000ffU);
  EXPECT_EQ(layout::encode(StatusPort::Event::kWorkloadStarted, 0x12345678), 0x02345678U);
}

}  // namespace
}  // namespace microvm::devices
