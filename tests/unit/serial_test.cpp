// 16550A UART as Linux's 8250 driver drives it: registers, divisor latch, FIFO reporting,
// interrupts for received data and THR empty, loopback, and the bounded host input buffer.
#include "devices/serial.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace microvm::devices {
namespace {

// Records every level change the device makes.
class RecordingIrq final : public InterruptLine {
 public:
  void set_level(bool high) override { changes.push_back(high); }
  bool level() const { return !changes.empty() && changes.back(); }
  std::vector<bool> changes;
};

constexpr std::uint8_t kIerRdi = 0x01;
constexpr std::uint8_t kIerThri = 0x02;
constexpr std::uint8_t kIirNone = 0x01;
constexpr std::uint8_t kIirThre = 0x02;
constexpr std::uint8_t kIirRdi = 0x04;
constexpr std::uint8_t kIirFifo = 0xc0;
constexpr std::uint8_t kLsrDr = 0x01;
constexpr std::uint8_t kLsrThreTemt = 0x60;
constexpr std::uint8_t kLcrDlab = 0x80;

class SerialTest : public ::testing::Test {
 protected:
  std::uint8_t in(std::uint64_t reg) {
    std::uint8_t value = 0;
    serial_.read(reg, std::span(&value, 1));
    return value;
  }
  void out(std::uint64_t reg, std::uint8_t value) { serial_.write(reg, std::span(&value, 1)); }
  std::size_t input(std::string_view text) {
    return serial_.enqueue_input(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
  std::string sink_text() const { return std::string(sink_.begin(), sink_.end()); }

  RecordingIrq irq_;
  std::vector<std::uint8_t> sink_;
  Serial serial_{
      irq_, [this](std::span<const std::uint8_t> bytes) { sink_.insert(sink_.end(), bytes.begin(), bytes.end()); }};
};

TEST_F(SerialTest, TransmittedBytesReachTheSink) {
  for (char c : std::string("hi\n")) out(Serial::kData, static_cast<std::uint8_t>(c));
  EXPECT_EQ(sink_text(), "hi\n");
  EXPECT_TRUE(irq_.changes.empty());  // no interrupts enabled
}

TEST_F(SerialTest, LineStatusReportsTransmitterEmptyAndDataReady) {
  EXPECT_EQ(in(Serial::kLsr), kLsrThreTemt);
  input("a");
  EXPECT_EQ(in(Serial::kLsr), kLsrThreTemt | kLsrDr);
  EXPECT_EQ(in(Serial::kData), 'a');
  EXPECT_EQ(in(Serial::kLsr), kLsrThreTemt);
  EXPECT_EQ(in(Serial::kData), 0);  // empty receiver reads 0
}

TEST_F(SerialTest, EnablingThriRaisesTheIrqUntilIirIsRead) {
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
  out(Serial::kIer, kIerThri);
  EXPECT_EQ(irq_.changes, std::vector<bool>{true});
  EXPECT_EQ(in(Serial::kIirFcr), kIirThre);
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
  EXPECT_EQ(irq_.changes, (std::vector<bool>{true, false}));
}

TEST_F(SerialTest, WritingThrReraisesThre) {
  out(Serial::kIer, kIerThri);
  in(Serial::kIirFcr);
  ASSERT_FALSE(irq_.level());
  out(Serial::kData, 'x');
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Serial::kIirFcr), kIirThre);
}

TEST_F(SerialTest, ReenablingThriReassertsThre) {
  // Linux's serial8250_do_startup() probes for UART_BUG_THRE this way; a real 16550A reasserts.
  out(Serial::kIer, kIerThri);
  EXPECT_EQ(in(Serial::kIirFcr), kIirThre);
  out(Serial::kIer, 0);
  out(Serial::kIer, kIerThri);
  EXPECT_EQ(in(Serial::kIirFcr), kIirThre);
  out(Serial::kIer, 0);
  EXPECT_FALSE(irq_.level());
}

TEST_F(SerialTest, ReceivedDataRaisesIrqUntilDrained) {
  out(Serial::kIer, kIerRdi);
  EXPECT_TRUE(irq_.changes.empty());
  EXPECT_EQ(input("xy"), 2U);
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Serial::kIirFcr), kIirRdi);
  EXPECT_EQ(in(Serial::kIirFcr), kIirRdi);  // reading IIR does not clear data-available
  EXPECT_EQ(in(Serial::kData), 'x');
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Serial::kData), 'y');
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
}

TEST_F(SerialTest, InputWithoutRdiEnabledDoesNotInterrupt) {
  input("z");
  EXPECT_TRUE(irq_.changes.empty());
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
  out(Serial::kIer, kIerRdi);  // enabling with data waiting raises it
  EXPECT_TRUE(irq_.level());
}

TEST_F(SerialTest, ReceivedDataHasPriorityOverThre) {
  out(Serial::kIer, kIerRdi | kIerThri);
  input("q");
  EXPECT_EQ(in(Serial::kIirFcr), kIirRdi);
  in(Serial::kData);
  EXPECT_EQ(in(Serial::kIirFcr), kIirThre);
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
  EXPECT_FALSE(irq_.level());
}

TEST_F(SerialTest, FifoEnableShowsInIir) {
  out(Serial::kIirFcr, 0x01);
  EXPECT_EQ(in(Serial::kIirFcr), kIirFifo | kIirNone);
  out(Serial::kIer, kIerThri);
  EXPECT_EQ(in(Serial::kIirFcr), kIirFifo | kIirThre);
  out(Serial::kIirFcr, 0x00);
  EXPECT_EQ(in(Serial::kIirFcr), kIirNone);
}

TEST_F(SerialTest, FcrClearsTheReceiver) {
  input("abc");
  out(Serial::kIirFcr, 0x03);  // enable + clear receive FIFO
  EXPECT_EQ(in(Serial::kLsr)&kLsrDr, 0);
}

TEST_F(SerialTest, DlabSwitchesToTheDivisorLatch) {
  out(Serial::kIer, 0x05);
  out(Serial::kLcr, 0x03 | kLcrDlab);
  EXPECT_EQ(in(Serial::kData), 0x0c);  // reset divisor: 9600 baud
  EXPECT_EQ(in(Serial::kIer), 0x00);
  out(Serial::kData, 0x01);  // 115200 baud
  out(Serial::kIer, 0x02);
  EXPECT_EQ(in(Serial::kData), 0x01);
  EXPECT_EQ(in(Serial::kIer), 0x02);
  EXPECT_TRUE(sink_.empty());  // DLL writes are not transmitted

  out(Serial::kLcr, 0x03);
  EXPECT_EQ(in(Serial::kLcr), 0x03);
  EXPECT_EQ(in(Serial::kIer), 0x05);  // IER unchanged by the DLM write
  out(Serial::kData, 'k');
  EXPECT_EQ(sink_text(), "k");
  out(Serial::kLcr, kLcrDlab);
  EXPECT_EQ(in(Serial::kData), 0x01);  // the divisor survives
}

TEST_F(SerialTest, ScratchRegisterHoldsAByte) {
  out(Serial::kScratch, 0x5a);
  EXPECT_EQ(in(Serial::kScratch), 0x5a);
  out(Serial::kScratch, 0xa5);
  EXPECT_EQ(in(Serial::kScratch), 0xa5);
}

TEST_F(SerialTest, IerKeepsOnlyFourBits) {
  out(Serial::kIer, 0xff);
  EXPECT_EQ(in(Serial::kIer), 0x0f);
}

TEST_F(SerialTest, ModemStatusWithoutLoopback) {
  EXPECT_EQ(in(Serial::kMsr), 0xb0);  // DCD, DSR, CTS
  out(Serial::kMcr, 0xff);
  EXPECT_EQ(in(Serial::kMcr), 0x1f);  // MCR has 5 bits
}

TEST_F(SerialTest, LoopbackMirrorsModemControlInModemStatus) {
  out(Serial::kMcr, 0x1a);  // loopback | OUT2 | RTS: Linux's autoconfig check
  EXPECT_EQ(in(Serial::kMsr)&0xf0, 0x90);
  out(Serial::kMcr, 0x1f);
  EXPECT_EQ(in(Serial::kMsr)&0xf0, 0xf0);
  out(Serial::kMcr, 0x10);
  EXPECT_EQ(in(Serial::kMsr)&0xf0, 0x00);
}

TEST_F(SerialTest, LoopbackSendsThrToTheReceiver) {
  out(Serial::kMcr, 0x1a);
  out(Serial::kData, 0x55);
  EXPECT_TRUE(sink_.empty());
  EXPECT_EQ(in(Serial::kLsr)&kLsrDr, kLsrDr);
  EXPECT_EQ(in(Serial::kData), 0x55);
  out(Serial::kMcr, 0x0b);  // back to normal
  out(Serial::kData, 0x56);
  EXPECT_EQ(sink_, std::vector<std::uint8_t>{0x56});
  EXPECT_EQ(in(Serial::kLsr)&kLsrDr, 0);
}

TEST_F(SerialTest, InputIsCappedAtCapacity) {
  const std::string big(Serial::kInputCapacity + 10, 'b');
  EXPECT_EQ(input("0"), 1U);
  EXPECT_EQ(input(big), Serial::kInputCapacity - 1);
  EXPECT_EQ(input("c"), 0U);
  EXPECT_EQ(in(Serial::kData), '0');  // oldest first
  EXPECT_EQ(input("cd"), 1U);
  std::size_t drained = 1;
  std::uint8_t last = 0;
  while ((in(Serial::kLsr)&kLsrDr) != 0) {
    last = in(Serial::kData);
    ++drained;
  }
  EXPECT_EQ(drained, Serial::kInputCapacity + 1);
  EXPECT_EQ(last, 'c');
}

TEST_F(SerialTest, OutOfRangeOffsets) {
  out(Serial::kScratch, 0x12);
  EXPECT_EQ(in(8), 0xff);
  EXPECT_EQ(in(0x100), 0xff);
  out(8, 'x');
  EXPECT_TRUE(sink_.empty());
  EXPECT_EQ(in(Serial::kScratch), 0x12);
}

TEST_F(SerialTest, WideReadsZeroTheUpperBytes) {
  out(Serial::kScratch, 0x77);
  std::uint8_t data[4] = {0xaa, 0xaa, 0xaa, 0xaa};
  serial_.read(Serial::kScratch, data);
  EXPECT_EQ(data[0], 0x77);
  EXPECT_EQ(data[1], 0);
  EXPECT_EQ(data[3], 0);
}

TEST_F(SerialTest, ReadOnlyRegistersIgnoreWrites) {
  out(Serial::kLsr, 0x00);
  out(Serial::kMsr, 0x00);
  EXPECT_EQ(in(Serial::kLsr), kLsrThreTemt);
  EXPECT_EQ(in(Serial::kMsr), 0xb0);
}

}  // namespace
}  // namespace microvm::devices
