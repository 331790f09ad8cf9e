// Fuzzes the virtio-mmio transport (devices/virtio/mmio_transport.h, virtio 1.2 §4.2.2) the way a
// hostile driver drives it: any sequence of register reads and writes of any width at any offset
// (inside and beyond the 4 KiB window and the config space), QueueNotify writes and ioeventfd-style
// notifications, device resets, and writes to guest memory (rings, descriptors) in between. Behind the
// transport sits a fake device that pops, uses and returns every chain on notify, as a real one does.
// Nothing may crash, and the transport and the device contract (virtio_device.h) must hold after
// every access.
#include <fuzzer/FuzzedDataProvider.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "devices/interrupt_line.h"
#include "devices/virtio/mmio_transport.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::Error;
using microvm::GuestAddress;
using microvm::GuestMemory;
using microvm::Result;
using microvm::devices::InterruptLine;
using microvm::devices::virtio::Interrupt;
using microvm::devices::virtio::kDescFlagIndirect;
using microvm::devices::virtio::kDescFlagNext;
using microvm::devices::virtio::kDescFlagWrite;
using microvm::devices::virtio::kFeatureEventIdx;
using microvm::devices::virtio::kFeatureIndirectDesc;
using microvm::devices::virtio::kFeatureVersion1;
using microvm::devices::virtio::MmioTransport;
using microvm::devices::virtio::Queue;
using microvm::devices::virtio::VirtioDevice;
using microvm::devices::virtio::VirtqAvailHeader;
using microvm::devices::virtio::VirtqDesc;

constexpr std::uint64_t kFeatureDeviceSpecific = 1ULL << 0;  // a device-type feature bit (§6: bits 0-23)
constexpr std::uint64_t kDeviceFeatures =
    (1ULL << kFeatureVersion1) | (1ULL << kFeatureEventIdx) | (1ULL << kFeatureIndirectDesc) | kFeatureDeviceSpecific;
constexpr std::size_t kQueueCount = 2;
// Chains the fake device handles per notify (a real device also works in bounded batches).
constexpr int kMaxChainsPerNotify = 2 * Queue::kMaxSize;
constexpr std::size_t kMaxImage = 16 * 1024;  // guest memory image taken from the input
constexpr std::uint32_t kDefinedInterruptBits = VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG;  // §4.2.2
constexpr std::size_t kMaxAccessWidth = 8;                                                       // 64-bit MMIO

// The registers of the window (<linux/virtio_mmio.h>), so writes land on real ones often.
constexpr std::array kRegisters{
    VIRTIO_MMIO_MAGIC_VALUE,     VIRTIO_MMIO_VERSION,
    VIRTIO_MMIO_DEVICE_ID,       VIRTIO_MMIO_VENDOR_ID,
    VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL,
    VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
    VIRTIO_MMIO_QUEUE_SEL,       VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_NUM,       VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_NOTIFY,    VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_INTERRUPT_ACK,   VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_QUEUE_DESC_LOW,  VIRTIO_MMIO_QUEUE_DESC_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_USED_LOW,  VIRTIO_MMIO_QUEUE_USED_HIGH,
    VIRTIO_MMIO_SHM_SEL,         VIRTIO_MMIO_SHM_LEN_LOW,
    VIRTIO_MMIO_SHM_BASE_LOW,    VIRTIO_MMIO_CONFIG_GENERATION,
    VIRTIO_MMIO_CONFIG,
};

// A device that does what real ones do with their queues, and checks that the transport keeps the
// VirtioDevice contract: activate once per reset, notify only while active and not failed, reset
// only after activate, and queues left alone while the device uses them.
class FakeDevice final : public VirtioDevice {
 public:
  std::uint32_t device_id() const override { return VIRTIO_ID_BLOCK; }
  std::uint64_t features() const override { return kDeviceFeatures; }
  std::size_t queue_count() const override { return kQueueCount; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override {
    for (std::size_t i = 0; i < data.size(); ++i) {
      data[i] = offset < config_.size() && i < config_.size() - offset ? config_[offset + i] : 0;
    }
  }
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    for (std::size_t i = 0; i < data.size() && offset < config_.size() && i < config_.size() - offset; ++i) {
      config_[offset + i] = data[i];
    }
  }

  Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked,
                        Interrupt& interrupt) override {
    FUZZ_CHECK(!active_, "activate() twice without reset()");
    FUZZ_CHECK(queues.size() == kQueueCount, "activate() with {} queues", queues.size());
    FUZZ_CHECK((acked & ~kDeviceFeatures) == 0, "activate() with features {:#x} the device never offered", acked);
    if (refuse_activation_) return microvm::fail("the fake device refuses to activate");
    memory_ = &memory;
    queues_ = queues;
    interrupt_ = &interrupt;
    for (std::size_t i = 0; i < kQueueCount; ++i) activated_config_[i] = config_of(queues[i]);
    active_ = true;
    return {};
  }

  void notify(std::uint16_t queue) override {
    FUZZ_CHECK(active_, "notify({}) while not activated", queue);
    FUZZ_CHECK(!failed_, "notify({}) after the device reported an error", queue);
    FUZZ_CHECK(queue < queues_.size(), "notify({}) of a queue that does not exist", queue);
    for (std::size_t i = 0; i < kQueueCount; ++i) {
      FUZZ_CHECK(config_of(queues_[i]) == activated_config_[i], "queue {} was reconfigured while the device is live",
                 i);
    }
    Queue& q = queues_[queue];
    for (int i = 0; i < kMaxChainsPerNotify; ++i) {
      auto chain = q.pop(*memory_);
      if (!chain) return device_error(chain.error());
      if (!*chain) break;
      microvm::fuzz::use_chain(*memory_, (*chain)->segments, std::byte{0x5a});
      if (auto used = q.add_used(*memory_, (*chain)->head, (*chain)->writable_len()); !used) {
        return device_error(used.error());
      }
    }
    auto notify_driver = q.needs_notification(*memory_);
    if (!notify_driver) return device_error(notify_driver.error());
    if (*notify_driver) interrupt_->signal_used_buffers();
  }

  void reset() override {
    FUZZ_CHECK(active_, "reset() of a device that was not activated");
    active_ = failed_ = false;
    memory_ = nullptr;
    queues_ = {};
    interrupt_ = nullptr;
  }

  // What a device may do on its own: change its config space and tell the driver.
  void change_config(std::uint8_t value) {
    config_[0] = value;
    if (active_) interrupt_->signal_config_change();
  }
  void set_refuse_activation(bool refuse) { refuse_activation_ = refuse; }
  [[nodiscard]] bool active() const { return active_; }

 private:
  struct QueueConfig {
    std::uint16_t size;
    GuestAddress descriptors, driver_area, device_area;
    bool ready;
    bool operator==(const QueueConfig&) const = default;
  };
  static QueueConfig config_of(const Queue& q) {
    return {q.size(), q.descriptor_table(), q.driver_area(), q.device_area(), q.ready()};
  }

  void device_error(const Error& error) {
    failed_ = true;
    interrupt_->signal_device_error(error);
  }

  std::array<std::uint8_t, 8> config_{1, 2, 3, 4, 5, 6, 7, 8};
  bool refuse_activation_ = false;
  bool active_ = false;
  bool failed_ = false;
  const GuestMemory* memory_ = nullptr;
  std::span<Queue> queues_;
  Interrupt* interrupt_ = nullptr;
  std::array<QueueConfig, kQueueCount> activated_config_{};
};

class RecordingLine final : public InterruptLine {
 public:
  void set_level(bool high) override { level = high; }
  bool level = false;
};

// The driver's side of the window.
class Driver {
 public:
  Driver(MmioTransport& transport, FakeDevice& device, const GuestMemory& memory, const RecordingLine& line)
      : transport_(transport), device_(device), memory_(memory), line_(line) {}

  std::uint32_t read32(std::uint64_t offset) {
    std::uint32_t value = 0;
    transport_.read(offset, std::span(reinterpret_cast<std::uint8_t*>(&value), sizeof(value)));
    return value;
  }
  void write32(std::uint64_t offset, std::uint32_t value) {
    transport_.write(offset, std::span(reinterpret_cast<const std::uint8_t*>(&value), sizeof(value)));
  }

  // One step of the fuzz input.
  void step(FuzzedDataProvider& input) {
    switch (input.ConsumeIntegralInRange(0, 9)) {
      case 0: {  // a read of any width at any offset
        std::array<std::uint8_t, kMaxAccessWidth> data{};
        const std::uint64_t offset = any_offset(input);
        transport_.read(offset, std::span(data).first(input.ConsumeIntegralInRange<std::size_t>(0, data.size())));
        break;
      }
      case 1: {  // a write of any width at any offset
        std::array<std::uint8_t, kMaxAccessWidth> data{};
        const std::uint64_t offset = any_offset(input);
        const auto value = input.ConsumeIntegral<std::uint64_t>();
        std::memcpy(data.data(), &value, sizeof(value));
        transport_.write(offset, std::span(data).first(input.ConsumeIntegralInRange<std::size_t>(0, data.size())));
        break;
      }
      case 2:  // a 32-bit write to a register
        write32(input.PickValueInArray(kRegisters), input.ConsumeIntegral<std::uint32_t>());
        break;
      case 3:  // a small value to a register (queue numbers, feature selects, status bits, sizes)
        write32(input.PickValueInArray(kRegisters), input.ConsumeIntegralInRange<std::uint32_t>(0, 0x100));
        break;
      case 4:  // the ioeventfd path
        transport_.queue_notify(input.ConsumeBool() ? input.ConsumeIntegralInRange<std::uint32_t>(0, kQueueCount)
                                                    : input.ConsumeIntegral<std::uint32_t>());
        break;
      case 5: bring_up(input); break;
      case 6: {  // the driver writes guest memory (a new avail idx, ring entry or descriptor field)
        const auto addr = GuestAddress(input.ConsumeIntegralInRange<std::uint64_t>(0, microvm::fuzz::kLowSize));
        (void)memory_.write_obj(addr, input.ConsumeIntegral<std::uint16_t>());
        break;
      }
      case 7: device_.change_config(input.ConsumeIntegral<std::uint8_t>()); break;
      case 8: offer_chain(input); break;
      default: reset(); break;
    }
    check();
  }

 private:
  static std::uint64_t any_offset(FuzzedDataProvider& input) {
    return input.ConsumeBool() ? input.ConsumeIntegralInRange<std::uint64_t>(0, 2 * MmioTransport::kWindowSize)
                               : input.ConsumeIntegral<std::uint64_t>();
  }

  // What a well-behaved driver does (§3.1.1, §4.2.3.2), with fuzzed features and queue layouts: gets
  // the fuzzer past feature negotiation quickly.
  void bring_up(FuzzedDataProvider& input) {
    const std::uint64_t features =
        (1ULL << kFeatureVersion1) | (input.ConsumeIntegral<std::uint64_t>() & kDeviceFeatures);
    device_.set_refuse_activation(input.ConsumeIntegralInRange(0, 15) == 0);
    write32(VIRTIO_MMIO_STATUS, 0);
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    for (std::uint32_t select = 0; select < 2; ++select) {
      write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, select);
      write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<std::uint32_t>(features >> (32 * select)));
    }
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    for (std::uint32_t queue = 0; queue < kQueueCount; ++queue) {
      Layout& layout = layouts_[queue];
      layout.size = static_cast<std::uint16_t>(1U << input.ConsumeIntegralInRange(0, 8));
      const std::array areas{std::tuple{&layout.descriptors, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH},
                             std::tuple{&layout.avail, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH},
                             std::tuple{&layout.used, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH}};
      write32(VIRTIO_MMIO_QUEUE_SEL, queue);
      write32(VIRTIO_MMIO_QUEUE_NUM, layout.size);
      for (const auto& [addr, low, high] : areas) {
        *addr = input.ConsumeIntegralInRange<std::uint32_t>(0, microvm::fuzz::kLowSize) & ~15U;
        write32(low, static_cast<std::uint32_t>(*addr));
        write32(high, 0);
      }
      // §2.7.13: the rings start empty, avail idx 0 (the memory may hold anything from before).
      layout.avail_idx = 0;
      (void)memory_.write_obj(GuestAddress(layout.avail), VirtqAvailHeader{0, 0});
      layout.known = true;
      write32(VIRTIO_MMIO_QUEUE_READY, 1);
    }
    write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                                    VIRTIO_CONFIG_S_DRIVER_OK);
  }

  // What a driver does to make buffers available (§2.7.13) on a queue bring_up() laid out: a chain of
  // 1-4 descriptors at consecutive slots, with fuzzed buffers and flags, then the avail ring entry and
  // idx. Gets the device popping chains often.
  void offer_chain(FuzzedDataProvider& input) {
    Layout& layout = layouts_[input.ConsumeIntegralInRange<std::size_t>(0, kQueueCount - 1)];
    if (!layout.known) return;
    const auto head = input.ConsumeIntegralInRange<std::uint16_t>(0, layout.size - 1);
    const int count = input.ConsumeIntegralInRange(1, 4);
    for (int i = 0; i < count; ++i) {
      const auto slot = static_cast<std::uint16_t>((head + i) % layout.size);
      const bool last = i + 1 == count;
      VirtqDesc desc{};
      desc.addr = input.ConsumeIntegralInRange<std::uint64_t>(0, microvm::fuzz::kLowSize);
      desc.len = input.ConsumeIntegralInRange<std::uint32_t>(0, 0x1000);
      desc.flags = static_cast<std::uint16_t>((last ? 0 : kDescFlagNext) | (input.ConsumeBool() ? kDescFlagWrite : 0) |
                                              (input.ConsumeIntegralInRange(0, 7) == 0 ? kDescFlagIndirect : 0));
      desc.next = static_cast<std::uint16_t>((slot + 1) % layout.size);
      (void)memory_.write_obj(GuestAddress(layout.descriptors + sizeof(VirtqDesc) * slot), desc);
    }
    const std::uint64_t entry =
        layout.avail + sizeof(VirtqAvailHeader) + sizeof(std::uint16_t) * (layout.avail_idx % layout.size);
    (void)memory_.write_obj(GuestAddress(entry), head);
    ++layout.avail_idx;
    (void)memory_.write_obj(GuestAddress(layout.avail + offsetof(VirtqAvailHeader, idx)), layout.avail_idx);
  }

  // §2.4 / §4.2.2.1: writing 0 to Status resets the device; the driver then reads 0 back.
  void reset() {
    write32(VIRTIO_MMIO_STATUS, 0);
    FUZZ_CHECK(read32(VIRTIO_MMIO_STATUS) == 0, "status {:#x} after reset", read32(VIRTIO_MMIO_STATUS));
    FUZZ_CHECK(read32(VIRTIO_MMIO_INTERRUPT_STATUS) == 0, "interrupt status {:#x} after reset",
               read32(VIRTIO_MMIO_INTERRUPT_STATUS));
    FUZZ_CHECK(!line_.level, "interrupt line still high after reset");
    FUZZ_CHECK(!device_.active(), "device still active after reset");
  }

  // What must hold after every access, whatever the driver did.
  void check() {
    FUZZ_CHECK(read32(VIRTIO_MMIO_MAGIC_VALUE) == MmioTransport::kMagic, "magic changed");
    FUZZ_CHECK(read32(VIRTIO_MMIO_VERSION) == MmioTransport::kVersion, "version changed");
    FUZZ_CHECK(read32(VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK, "device id changed");
    const std::uint32_t interrupt_status = read32(VIRTIO_MMIO_INTERRUPT_STATUS);
    FUZZ_CHECK((interrupt_status & ~kDefinedInterruptBits) == 0, "interrupt status {:#x} has undefined bits",
               interrupt_status);
    FUZZ_CHECK(line_.level == (interrupt_status != 0), "interrupt line {} with interrupt status {:#x}", line_.level,
               interrupt_status);
    const std::uint32_t num_max = read32(VIRTIO_MMIO_QUEUE_NUM_MAX);
    FUZZ_CHECK(num_max == 0 || num_max == Queue::kMaxSize, "QueueNumMax {}", num_max);
    const std::uint32_t generation = read32(VIRTIO_MMIO_CONFIG_GENERATION);
    FUZZ_CHECK(generation >= generation_, "config generation went back from {} to {}", generation_, generation);
    generation_ = generation;
  }

  MmioTransport& transport_;
  FakeDevice& device_;
  const GuestMemory& memory_;
  struct Layout {  // a queue as bring_up() set it up, for offer_chain()
    bool known = false;
    std::uint16_t size = 0;
    std::uint64_t descriptors = 0, avail = 0, used = 0;
    std::uint16_t avail_idx = 0;  // the driver's next avail idx
  };
  std::array<Layout, kQueueCount> layouts_{};
  const RecordingLine& line_;
  std::uint32_t generation_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  microvm::fuzz::silence_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  // Bytes for guest memory come from the front of the input, the accesses from the back.
  const std::vector<std::uint8_t> image =
      input.ConsumeBytes<std::uint8_t>(input.ConsumeIntegralInRange<std::size_t>(0, kMaxImage));
  const GuestMemory memory = microvm::fuzz::make_memory(image);
  FakeDevice device;
  RecordingLine line;
  MmioTransport transport(device, memory, line);
  Driver driver(transport, device, memory, line);
  while (input.remaining_bytes() > 0) driver.step(input);
  return 0;
}
