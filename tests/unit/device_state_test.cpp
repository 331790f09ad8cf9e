// Device State for snapshots (ARCHITECTURE.md "Every device has a State"): each device's state()
// taken mid-activity, restored into a fresh device, reads back equal and the restored device goes on
// from where the first one was; values a state file could hold but the device never can are refused.
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/status_port.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/queue.h"
#include "tests/unit/test_support.h"
#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices {
namespace {

class NullIrq final : public InterruptLine {
 public:
  void set_level(bool high) override { level = high; }
  bool level = false;
};

// ---- serial ------------------------------------------------------------------------------------

struct SerialRig {
  NullIrq irq;
  std::string out;
  Serial serial{irq, [this](std::span<const std::uint8_t> bytes) { out.append(bytes.begin(), bytes.end()); }};

  std::uint8_t in(std::uint64_t reg) {
    std::uint8_t value = 0;
    serial.read(reg, std::span(&value, 1));
    return value;
  }
  void put(std::uint64_t reg, std::uint8_t value) { serial.write(reg, std::span(&value, 1)); }
  void input(std::string_view text) {
    serial.enqueue_input(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
};

TEST(SerialState, RoundTripKeepsRegistersAndUnreadInput) {
  SerialRig a;
  a.put(Serial::kLcr, 0x83);  // DLAB: set a divisor of 0x0201
  a.put(Serial::kData, 0x01);
  a.put(Serial::kIer, 0x02);
  a.put(Serial::kLcr, 0x03);
  a.put(Serial::kIer, 0x01);  // received-data interrupt
  a.put(Serial::kIirFcr, 0x01);
  a.put(Serial::kMcr, 0x0b);
  a.put(Serial::kScratch, 0x5a);
  a.input("hello");
  EXPECT_EQ(a.in(Serial::kData), 'h');  // the guest read one byte

  const Serial::State saved = a.serial.state();
  EXPECT_EQ(saved.input, (std::vector<std::uint8_t>{'e', 'l', 'l', 'o'}));
  EXPECT_TRUE(saved.irq_level);

  SerialRig b;
  ASSERT_TRUE(b.serial.restore(saved).has_value());
  EXPECT_EQ(b.serial.state(), saved);
  EXPECT_EQ(b.in(Serial::kScratch), 0x5a);
  EXPECT_EQ(b.in(Serial::kIirFcr)&0x0f, 0x04);  // data pending, interrupt identified
  std::string rest;
  for (int i = 0; i < 4; ++i) rest += static_cast<char>(b.in(Serial::kData));
  EXPECT_EQ(rest, "ello");
  b.put(Serial::kLcr, 0x83);
  EXPECT_EQ(b.in(Serial::kData), 0x01);
  EXPECT_EQ(b.in(Serial::kIer), 0x02);
}

TEST(SerialState, ImpossibleValuesAreRefused) {
  SerialRig rig;
  Serial::State state = rig.serial.state();
  state.ier = 0xf0;
  EXPECT_ERROR_CONTAINS(rig.serial.restore(state), "IER");
  state = rig.serial.state();
  state.mcr = 0x80;
  EXPECT_ERROR_CONTAINS(rig.serial.restore(state), "MCR");
  state = rig.serial.state();
  state.input.assign(Serial::kInputCapacity + 1, 'x');
  EXPECT_ERROR_CONTAINS(rig.serial.restore(state), "pending input");
}

// ---- i8042, ACPI PM, status port ---------------------------------------------------------------

TEST(I8042State, RoundTripKeepsAPendingCommandAndTheOutputByte) {
  int resets = 0;
  I8042 a([&] { ++resets; });
  const std::uint8_t write_control = 0x60, self_test = 0xaa;
  a.write(I8042::kCommandOffset, std::span(&self_test, 1));  // output: 0x55, unread
  a.write(I8042::kCommandOffset, std::span(&write_control, 1));
  const I8042::State saved = a.state();
  EXPECT_EQ(saved.output, std::optional<std::uint8_t>(0x55));
  EXPECT_EQ(saved.pending_command, std::optional<std::uint8_t>(0x60));

  I8042 b([&] { ++resets; });
  ASSERT_TRUE(b.restore(saved).has_value());
  EXPECT_EQ(b.state(), saved);
  const std::uint8_t control = 0x47;
  b.write(I8042::kDataOffset, std::span(&control, 1));  // the data byte of the restored command
  EXPECT_EQ(b.state().control, 0x47);
  EXPECT_EQ(resets, 0);

  I8042::State bad = saved;
  bad.pending_command = 0xaa;
  EXPECT_ERROR_CONTAINS(b.restore(bad), "does not wait");
}

TEST(AcpiPmState, RoundTripKeepsEnableAndControl) {
  int power_offs = 0;
  AcpiPm a([&] { ++power_offs; });
  const std::array<std::uint8_t, 2> enable{0x21, 0x01};
  const std::array<std::uint8_t, 2> control{0x00, 0x04};  // SLP_TYP 1, no SLP_EN
  a.write(2, enable);
  a.write(4, control);
  const AcpiPm::State saved = a.state();
  AcpiPm b([&] { ++power_offs; });
  ASSERT_TRUE(b.restore(saved).has_value());
  EXPECT_EQ(b.state(), saved);
  EXPECT_EQ(saved.enable, 0x0121);
  EXPECT_EQ(power_offs, 0);

  AcpiPm::State bad = saved;
  bad.control |= AcpiPm::kSleepEnable;
  EXPECT_ERROR_CONTAINS(b.restore(bad), "SLP_EN");
}

TEST(StatusPortState, RoundTripKeepsAStopRequest) {
  StatusPort a({});
  a.request_stop();
  StatusPort b({});
  b.restore(a.state());
  EXPECT_TRUE(b.stop_requested());
  EXPECT_EQ(b.state(), a.state());
}

}  // namespace

// ---- virtqueue ---------------------------------------------------------------------------------

namespace virtio {
namespace {

using test::MockVirtqDriver;

TEST(QueueState, RoundTripMidActivityGoesOnFromTheSameRingPositions) {
  MockVirtqDriver driver(16);
  driver.start_at(65530);  // near the 16-bit wrap
  Queue a;
  driver.configure(a, /*event_idx=*/true);
  a.set_next_avail(65530);
  a.set_next_used(65530);
  for (int i = 0; i < 5; ++i) driver.add_chain({{8, false}});
  for (int i = 0; i < 3; ++i) {  // three taken, two used
    auto chain = a.pop(driver.memory());
    ASSERT_TRUE(chain.has_value() && chain->has_value());
    if (i < 2) {
      ASSERT_TRUE(a.add_used(driver.memory(), chain->value().head, 8).has_value());
    }
  }
  ASSERT_TRUE(a.needs_notification(driver.memory()).has_value());
  const Queue::State saved = a.state();
  EXPECT_EQ(saved.next_avail, 65533);
  EXPECT_EQ(saved.next_used, 65532);
  EXPECT_TRUE(saved.event_idx);

  Queue b;
  ASSERT_TRUE(b.restore(saved, driver.memory()).has_value());
  EXPECT_EQ(b.state(), saved);
  // The restored queue pops the fourth chain, across the wrap, and uses where the first left off.
  auto chain = b.pop(driver.memory());
  ASSERT_TRUE(chain.has_value() && chain->has_value());
  ASSERT_TRUE(b.add_used(driver.memory(), chain->value().head, 1).has_value());
  EXPECT_EQ(driver.used_idx(), 65533);
  EXPECT_EQ(b.next_avail(), 65534);
}

TEST(QueueState, AReadyQueueIsValidatedAgainstGuestMemory) {
  MockVirtqDriver driver(16);
  Queue queue;
  Queue::State state;
  state.ready = true;
  state.size = 16;
  state.desc_table = MockVirtqDriver::kMemorySize + 0x1000;  // outside guest memory
  state.avail_ring = driver.avail_ring().value;
  state.used_ring = driver.used_ring().value;
  EXPECT_FALSE(queue.restore(state, driver.memory()).has_value());
  state.desc_table = driver.desc_table().value;
  state.size = 3;  // not a power of two
  EXPECT_FALSE(queue.restore(state, driver.memory()).has_value());
  EXPECT_FALSE(queue.ready());
  state.size = 16;
  EXPECT_TRUE(queue.restore(state, driver.memory()).has_value());
  EXPECT_TRUE(queue.ready());
}

// ---- virtio-mmio transport ---------------------------------------------------------------------

constexpr std::uint64_t kVersion1 = 1ULL << kFeatureVersion1;
constexpr std::uint64_t kFeatureA = 1ULL << 0;

class QueueingDevice final : public VirtioDevice {
 public:
  std::uint32_t device_id() const override { return 3; }
  std::uint64_t features() const override { return kVersion1 | kFeatureA | (1ULL << kFeatureEventIdx); }
  std::size_t queue_count() const override { return 2; }
  void read_config(std::uint64_t, std::span<std::uint8_t> data) override { std::ranges::fill(data, 0); }
  void write_config(std::uint64_t, std::span<const std::uint8_t>) override {}
  Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked,
                        Interrupt& irq) override {
    ++activations;
    memory_ = &memory;
    queues_ = queues;
    acked_features = acked;
    interrupt = &irq;
    return {};
  }
  void notify(std::uint16_t queue) override {
    notified.push_back(queue);
    // Takes one chain per notification and returns it used.
    auto chain = queues_[queue].pop(*memory_);
    if (!chain || !chain->has_value()) return;
    if (queues_[queue].add_used(*memory_, chain->value().head, 0) && queues_[queue].needs_notification(*memory_)) {
      interrupt->signal_used_buffers();
    }
  }
  void reset() override { interrupt = nullptr; }

  int activations = 0;
  std::uint64_t acked_features = 0;
  std::vector<std::uint16_t> notified;
  Interrupt* interrupt = nullptr;

 private:
  const GuestMemory* memory_ = nullptr;
  std::span<Queue> queues_;
};

class MmioTransportStateTest : public ::testing::Test {
 protected:
  static void write32(MmioTransport& transport, std::uint64_t offset, std::uint32_t value) {
    transport.write(offset, std::span(reinterpret_cast<const std::uint8_t*>(&value), 4));
  }
  static std::uint32_t read32(MmioTransport& transport, std::uint64_t offset) {
    std::uint32_t value = 0;
    transport.read(offset, std::span(reinterpret_cast<std::uint8_t*>(&value), 4));
    return value;
  }
  // Brings `transport` up the way Linux does, queue q's rings where driver q has them.
  void bring_up(MmioTransport& transport) {
    write32(transport, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<std::uint32_t>(kFeatureA));
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    const std::uint32_t features_ok =
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    write32(transport, VIRTIO_MMIO_STATUS, features_ok);
    for (std::uint32_t q = 0; q < 2; ++q) {
      const MockVirtqDriver& d = q == 0 ? rx_ : tx_;
      write32(transport, VIRTIO_MMIO_QUEUE_SEL, q);
      write32(transport, VIRTIO_MMIO_QUEUE_NUM, d.size());
      write32(transport, VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<std::uint32_t>(d.desc_table().value));
      write32(transport, VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<std::uint32_t>(d.avail_ring().value));
      write32(transport, VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<std::uint32_t>(d.used_ring().value));
      write32(transport, VIRTIO_MMIO_QUEUE_READY, 1);
    }
    write32(transport, VIRTIO_MMIO_STATUS, features_ok | VIRTIO_CONFIG_S_DRIVER_OK);
  }

  MockVirtqDriver rx_{16, 4 * MockVirtqDriver::kMemorySize};
  MockVirtqDriver tx_{8, rx_, 2 * MockVirtqDriver::kMemorySize};
  NullIrq line_a_, line_b_;
  QueueingDevice device_a_, device_b_;
  MmioTransport a_{device_a_, rx_.memory(), line_a_};
  MmioTransport b_{device_b_, rx_.memory(), line_b_};
};

TEST_F(MmioTransportStateTest, RoundTripMidActivityReactivatesAndGoesOn) {
  bring_up(a_);
  rx_.add_chain({{64, true}});
  rx_.add_chain({{64, true}});
  a_.queue_notify(0);            // one of the two taken and used: an interrupt is pending
  tx_.add_chain({{16, false}});  // offered, never notified
  write32(a_, VIRTIO_MMIO_QUEUE_SEL, 1);
  const MmioTransport::State saved = a_.state();
  EXPECT_TRUE(saved.activated);
  EXPECT_EQ(saved.queue_select, 1u);
  EXPECT_EQ(saved.queues[0].next_avail, 1);
  EXPECT_EQ(saved.queues[0].next_used, 1);
  EXPECT_EQ(saved.interrupt_status, static_cast<std::uint32_t>(VIRTIO_MMIO_INT_VRING));
  EXPECT_EQ(saved.driver_features, kVersion1 | kFeatureA);

  ASSERT_TRUE(b_.restore(saved).has_value());
  EXPECT_EQ(device_b_.activations, 1);
  EXPECT_EQ(device_b_.acked_features, kVersion1 | kFeatureA);
  // Restore notified every queue once: the second RX chain and the TX chain left in the rings were
  // taken by the restored device.
  EXPECT_EQ(device_b_.notified, (std::vector<std::uint16_t>{0, 1}));
  EXPECT_EQ(rx_.used_idx(), 2);
  EXPECT_EQ(tx_.used_idx(), 1);
  EXPECT_EQ(read32(b_, VIRTIO_MMIO_INTERRUPT_STATUS), static_cast<std::uint32_t>(VIRTIO_MMIO_INT_VRING));
  EXPECT_EQ(read32(b_, VIRTIO_MMIO_QUEUE_NUM_MAX), Queue::kMaxSize);  // QueueSel 1 survived
  EXPECT_EQ(read32(b_, VIRTIO_MMIO_QUEUE_READY), 1u);
  MmioTransport::State now = b_.state();
  EXPECT_EQ(now.queues[0].next_avail, 2);
  now.queues = saved.queues;  // only the ring positions moved
  EXPECT_EQ(now, saved);
}

TEST_F(MmioTransportStateTest, AnUnusedTransportRoundTripsAsItIs) {
  const MmioTransport::State saved = a_.state();
  ASSERT_TRUE(b_.restore(saved).has_value());
  EXPECT_EQ(b_.state(), saved);
  EXPECT_EQ(device_b_.activations, 0);
  EXPECT_TRUE(device_b_.notified.empty());
}

TEST_F(MmioTransportStateTest, StatesThatDoNotFitTheDeviceAreRefused) {
  bring_up(a_);
  const MmioTransport::State saved = a_.state();
  MmioTransport::State bad = saved;
  bad.queues.pop_back();
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "queues");
  bad = saved;
  bad.driver_features |= 1ULL << 40;  // a feature this device does not offer
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "features");
  bad = saved;
  bad.status |= 0x1000;
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "status");
  bad = saved;
  bad.interrupt_status = 0x80;
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "interrupt status");
  bad = saved;
  bad.status = VIRTIO_CONFIG_S_ACKNOWLEDGE;  // activated without DRIVER_OK
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "activated without");
  bad = saved;
  bad.queues[1].used_ring = 1ULL << 40;  // outside guest memory
  EXPECT_ERROR_CONTAINS(b_.restore(bad), "queue 1");
  EXPECT_EQ(device_b_.activations, 0);
  // Nothing above was half taken over: the real state still restores.
  ASSERT_TRUE(b_.restore(saved).has_value());
  // ... but only once: a transport in use is not restored over.
  EXPECT_FALSE(b_.restore(saved).has_value());
}

}  // namespace
}  // namespace virtio
}  // namespace microvm::devices
