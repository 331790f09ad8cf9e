// virtio-mmio transport (virtio 1.2 §4.2.2): discovery registers, feature negotiation, queue
// set-up, notifications, interrupts and reset, driven through the register window as a driver
// would, against a fake device.
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/mmio_transport.h"
#include "tests/unit/captured_log.h"

namespace microvm::devices::virtio {
namespace {

constexpr std::uint64_t kVersion1 = 1ULL << kFeatureVersion1;
constexpr std::uint64_t kFeatureA = 1ULL << 0;  // a device-specific feature the fake offers

class FakeDevice final : public VirtioDevice {
 public:
  std::uint32_t device_id() const override { return 2; }
  std::uint64_t features() const override { return kVersion1 | kFeatureA; }
  std::size_t queue_count() const override { return 2; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override {
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config.size() ? config[offset + i] : 0;
  }
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    for (std::size_t i = 0; i < data.size() && offset + i < config.size(); ++i) config[offset + i] = data[i];
  }
  Result<void> activate(const GuestMemory&, std::span<Queue> queues, std::uint64_t acked, Interrupt& irq) override {
    ++activations;
    acked_features = acked;
    ready_queues = 0;
    for (const Queue& q : queues) ready_queues += q.ready() ? 1 : 0;
    interrupt = &irq;
    active_queues = queues;
    if (fail_activation) return fail("refused");
    return {};
  }
  void notify(std::uint16_t queue) override { notified.push_back(queue); }
  void reset() override {
    ++resets;
    interrupt = nullptr;
  }

  std::vector<std::uint8_t> config{1, 2, 3, 4, 5, 6, 7, 8};
  int activations = 0, resets = 0, ready_queues = 0;
  std::uint64_t acked_features = 0;
  bool fail_activation = false;
  std::vector<std::uint16_t> notified;
  Interrupt* interrupt = nullptr;
  std::span<Queue> active_queues;  // the transport's queues, as activate() gave them
};

class RecordingLine final : public InterruptLine {
 public:
  void set_level(bool high) override { level = high; }
  bool level = false;
};

class MmioTransportTest : public ::testing::Test {
 protected:
  MmioTransportTest()
      : memory_(*GuestMemory::create(std::vector{MemoryRange{GuestAddress(0), 1 << 20}})),
        transport_(device_, memory_, line_) {}

  std::uint32_t read32(std::uint64_t offset) {
    std::uint32_t value = 0xdeadbeef;
    transport_.read(offset, std::span(reinterpret_cast<std::uint8_t*>(&value), 4));
    return value;
  }
  void write32(std::uint64_t offset, std::uint32_t value) {
    transport_.write(offset, std::span(reinterpret_cast<const std::uint8_t*>(&value), 4));
  }
  void negotiate(std::uint64_t features) {
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<std::uint32_t>(features));
    write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<std::uint32_t>(features >> 32));
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  }
  // Queue `index` of `size` entries with its three areas at `base` (all inside the 1 MiB memory).
  void setup_queue(std::uint32_t index, std::uint32_t size, std::uint64_t base = 0x10000) {
    write32(VIRTIO_MMIO_QUEUE_SEL, index);
    write32(VIRTIO_MMIO_QUEUE_NUM, size);
    write32(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<std::uint32_t>(base));
    write32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    write32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<std::uint32_t>(base + 0x1000));
    write32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    write32(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<std::uint32_t>(base + 0x2000));
    write32(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    write32(VIRTIO_MMIO_QUEUE_READY, 1);
  }
  void driver_ok() {
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                                    VIRTIO_CONFIG_S_DRIVER_OK);
  }
  void bring_up() {
    negotiate(kVersion1 | kFeatureA);
    setup_queue(0, 128, 0x10000);
    setup_queue(1, 64, 0x20000);
    driver_ok();
  }

  FakeDevice device_;
  RecordingLine line_;
  GuestMemory memory_;
  MmioTransport transport_;
};

TEST_F(MmioTransportTest, DiscoveryRegisters) {
  EXPECT_EQ(read32(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976u);
  EXPECT_EQ(read32(VIRTIO_MMIO_VERSION), 2u);
  EXPECT_EQ(read32(VIRTIO_MMIO_DEVICE_ID), 2u);
  EXPECT_EQ(read32(VIRTIO_MMIO_VENDOR_ID), MmioTransport::kVendorId);
}

TEST_F(MmioTransportTest, DeviceFeaturesAreReadThirtyTwoBitsAtATime) {
  write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  EXPECT_EQ(read32(VIRTIO_MMIO_DEVICE_FEATURES), static_cast<std::uint32_t>(kFeatureA));
  write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  EXPECT_EQ(read32(VIRTIO_MMIO_DEVICE_FEATURES), 1u);  // VERSION_1 is bit 32
  write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  EXPECT_EQ(read32(VIRTIO_MMIO_DEVICE_FEATURES), 0u);
}

TEST_F(MmioTransportTest, FeaturesOkSticksOnlyForOfferedModernFeatures) {
  negotiate(kVersion1 | kFeatureA);
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0u);

  write32(VIRTIO_MMIO_STATUS, 0);
  negotiate(kFeatureA);  // no VERSION_1: a legacy driver
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0u);

  write32(VIRTIO_MMIO_STATUS, 0);
  negotiate(kVersion1 | (1ULL << 5));  // a feature the device never offered
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0u);
}

TEST_F(MmioTransportTest, DriverOkActivatesWithTheAckedFeaturesAndReadyQueues) {
  bring_up();
  EXPECT_EQ(device_.activations, 1);
  EXPECT_EQ(device_.acked_features, kVersion1 | kFeatureA);
  EXPECT_EQ(device_.ready_queues, 2);
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
}

TEST_F(MmioTransportTest, QueueNumMaxIsZeroForQueuesThatDoNotExist) {
  write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_NUM_MAX), Queue::kMaxSize);
  write32(VIRTIO_MMIO_QUEUE_SEL, 2);
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0u);
  write32(VIRTIO_MMIO_QUEUE_READY, 1);  // no such queue: nothing happens
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_READY), 0u);
}

TEST_F(MmioTransportTest, InvalidQueueSetsDeviceNeedsReset) {
  negotiate(kVersion1);
  setup_queue(0, 3);  // not a power of two
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
}

TEST_F(MmioTransportTest, QueueOutsideGuestMemorySetsDeviceNeedsReset) {
  negotiate(kVersion1);
  setup_queue(0, 128, 0xfff000);  // past the 1 MiB of guest memory
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
}

TEST_F(MmioTransportTest, BadQueueWritesInALoopAreLoggedAtARateLimit) {
  // A guest that writes a bad queue configuration 10 000 times (resetting in between) gets the first
  // few logged and the rest counted, not 10 000 lines in the host's log.
  test::CapturedLog captured;
  for (int i = 0; i < 10'000; ++i) {
    write32(VIRTIO_MMIO_STATUS, 0);
    negotiate(kVersion1);
    setup_queue(0, 3);  // not a power of two
    ASSERT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
  }
  const std::vector<std::string> lines = captured.lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_LE(lines.size(), RateLimitedLog::kBurst + 2);  // the burst (and a refill, on a slow machine)
  EXPECT_NE(lines.front().find("needs reset: queue 0: queue size 3 is not a power of two"), std::string::npos)
      << lines.front();
}

TEST_F(MmioTransportTest, DriverOkWithoutFeaturesOkIsRefused) {
  write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_EQ(device_.activations, 0);
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
}

TEST_F(MmioTransportTest, FailedActivationSetsDeviceNeedsResetAndInterrupts) {
  device_.fail_activation = true;
  bring_up();
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
  EXPECT_EQ(read32(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG,
            static_cast<std::uint32_t>(VIRTIO_MMIO_INT_CONFIG));
  EXPECT_TRUE(line_.level);
}

TEST_F(MmioTransportTest, NotificationsReachTheDeviceOnlyAfterDriverOk) {
  negotiate(kVersion1);
  setup_queue(0, 128);
  write32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);  // before DRIVER_OK: ignored
  EXPECT_TRUE(device_.notified.empty());
  driver_ok();
  write32(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
  write32(VIRTIO_MMIO_QUEUE_NOTIFY, 7);  // no such queue: ignored
  EXPECT_EQ(device_.notified, std::vector<std::uint16_t>{1});
}

TEST_F(MmioTransportTest, UsedBufferInterruptIsRaisedAndAcknowledged) {
  bring_up();
  ASSERT_NE(device_.interrupt, nullptr);
  device_.interrupt->signal_used_buffers();
  EXPECT_TRUE(line_.level);
  EXPECT_EQ(read32(VIRTIO_MMIO_INTERRUPT_STATUS), static_cast<std::uint32_t>(VIRTIO_MMIO_INT_VRING));
  write32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  EXPECT_EQ(read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0u);
  EXPECT_FALSE(line_.level);
}

TEST_F(MmioTransportTest, ConfigChangeBumpsTheGeneration) {
  bring_up();
  const std::uint32_t before = read32(VIRTIO_MMIO_CONFIG_GENERATION);
  device_.interrupt->signal_config_change();
  EXPECT_EQ(read32(VIRTIO_MMIO_CONFIG_GENERATION), before + 1);
  EXPECT_NE(read32(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG, 0u);
}

TEST_F(MmioTransportTest, DeviceErrorSetsNeedsResetUntilTheDriverResets) {
  bring_up();
  const std::uint32_t generation = read32(VIRTIO_MMIO_CONFIG_GENERATION);
  device_.interrupt->signal_device_error(Error{"bad chain"});
  device_.interrupt->signal_device_error(Error{"another"});  // reported once
  EXPECT_NE(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
  EXPECT_EQ(read32(VIRTIO_MMIO_CONFIG_GENERATION), generation + 1);
  EXPECT_NE(read32(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG, 0u);
  EXPECT_TRUE(line_.level);
  write32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);  // a failed device gets no more notifications
  EXPECT_TRUE(device_.notified.empty());
  write32(VIRTIO_MMIO_STATUS, 0);
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS), 0u);
  bring_up();
  transport_.queue_notify(1);  // the ioeventfd path
  EXPECT_EQ(device_.notified, std::vector<std::uint16_t>{1});
}

TEST_F(MmioTransportTest, WritingStatusZeroResetsEverything) {
  bring_up();
  device_.interrupt->signal_used_buffers();
  write32(VIRTIO_MMIO_STATUS, 0);
  EXPECT_EQ(device_.resets, 1);
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS), 0u);
  EXPECT_EQ(read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0u);
  EXPECT_FALSE(line_.level);
  write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_READY), 0u);
  write32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);  // no longer activated
  EXPECT_TRUE(device_.notified.empty());
}

TEST_F(MmioTransportTest, QueueRegistersAreFrozenOnceTheDeviceIsLive) {
  bring_up();
  write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  write32(VIRTIO_MMIO_QUEUE_READY, 0);  // after DRIVER_OK: ignored
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_READY), 1u);
}

TEST_F(MmioTransportTest, QueuesStayFrozenWhenTheDriverClearsDriverOk) {
  bring_up();
  // A driver must not clear status bits (§2.1.2). One that does still has an activated device
  // using its queues (on another thread): they must not be reset or replaced under it.
  write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  write32(VIRTIO_MMIO_QUEUE_READY, 0);
  EXPECT_EQ(read32(VIRTIO_MMIO_QUEUE_READY), 1u);
  write32(VIRTIO_MMIO_QUEUE_NUM, 0);
  write32(VIRTIO_MMIO_QUEUE_READY, 1);
  ASSERT_EQ(device_.active_queues.size(), 2u);
  EXPECT_TRUE(device_.active_queues[0].ready());
  EXPECT_EQ(device_.active_queues[0].size(), 128);
  EXPECT_EQ(device_.active_queues[0].descriptor_table(), GuestAddress(0x10000));
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0u);
  EXPECT_EQ(device_.resets, 0);
}

TEST_F(MmioTransportTest, ConfigSpacePassesThroughAtAnyWidth) {
  std::uint8_t byte = 0;
  transport_.read(VIRTIO_MMIO_CONFIG + 2, std::span(&byte, 1));
  EXPECT_EQ(byte, 3);
  const std::uint8_t value = 0x42;
  transport_.write(VIRTIO_MMIO_CONFIG + 7, std::span(&value, 1));
  EXPECT_EQ(device_.config[7], 0x42);
}

TEST_F(MmioTransportTest, RegisterAccessesThatAreNotThirtyTwoBitsAreIgnored) {
  std::uint16_t half = 0xffff;
  transport_.read(VIRTIO_MMIO_MAGIC_VALUE, std::span(reinterpret_cast<std::uint8_t*>(&half), 2));
  EXPECT_EQ(half, 0);
  const std::uint16_t status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
  transport_.write(VIRTIO_MMIO_STATUS, std::span(reinterpret_cast<const std::uint8_t*>(&status), 2));
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS), 0u);
  write32(VIRTIO_MMIO_STATUS + 2, VIRTIO_CONFIG_S_ACKNOWLEDGE);  // misaligned
  EXPECT_EQ(read32(VIRTIO_MMIO_STATUS), 0u);
}

}  // namespace
}  // namespace microvm::devices::virtio
