// virtio-console (virtio 1.2 §5.3), driven through its two queues by mock drivers in one fake guest
// memory: transmit chains reach the sink byte for byte, host input waits until the driver offers
// receive buffers, and every chain a hostile driver can build stops the device with a device error
// (and nothing else) until reset.
#include "devices/virtio/console.h"

#include <gtest/gtest.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices::virtio {
namespace {

using test::MockVirtqDriver;
using Buffer = MockVirtqDriver::Buffer;

constexpr std::uint16_t kSize = 16;
constexpr std::uint64_t bit(unsigned feature) {
  return 1ULL << feature;
}
constexpr std::uint64_t kAcked = bit(kFeatureVersion1) | bit(kFeatureIndirectDesc) | bit(VIRTIO_CONSOLE_F_SIZE);

class RecordingInterrupt final : public Interrupt {
 public:
  void signal_used_buffers() override { ++used; }
  void signal_config_change() override { ++config_changes; }
  void signal_device_error(const Error& error) override { errors.push_back(error.message); }

  std::atomic<int> used = 0;  // atomics: the event loop and vCPU threads signal concurrently
  std::atomic<int> config_changes = 0;
  std::vector<std::string> errors;
};

std::vector<std::uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

class VirtioConsoleTest : public ::testing::Test {
 protected:
  // Both queues' rings live in one guest memory: receiveq0 in the first MiB, transmitq0 in the second.
  VirtioConsoleTest()
      : rx_(kSize, 2 * MockVirtqDriver::kMemorySize),
        tx_(kSize, rx_, MockVirtqDriver::kMemorySize),
        console_(io_.get_executor(), [this](std::span<const std::uint8_t> bytes) {
          output_.append(bytes.begin(), bytes.end());
          ++sink_calls_;
          if (on_sink_) on_sink_(bytes);
        }) {}

  void activate(std::uint64_t features = kAcked) {
    const bool event_idx = (features & bit(kFeatureEventIdx)) != 0;
    rx_.configure(queues_[ConsoleDevice::kReceiveQueue], event_idx);
    tx_.configure(queues_[ConsoleDevice::kTransmitQueue], event_idx);
    auto active = console_.activate(rx_.memory(), queues_, features, irq_);
    ASSERT_TRUE(active.has_value()) << active.error().message;
  }
  // What the transport does on a status 0 write: the device resets, then the queues do.
  void reset() {
    console_.reset();
    for (Queue& queue : queues_) queue.reset();
  }

  void put(GuestAddress addr, std::string_view text) {
    auto written = rx_.memory().write(addr, std::as_bytes(std::span(text.data(), text.size())));
    ASSERT_TRUE(written.has_value()) << written.error().message;
  }
  static std::string get_from(const MockVirtqDriver& driver, GuestAddress addr, std::uint32_t len) {
    std::string text(len, '\0');
    auto read = driver.memory().read(addr, std::as_writable_bytes(std::span(text.data(), text.size())));
    EXPECT_TRUE(read.has_value()) << read.error().message;
    return text;
  }
  std::string get(GuestAddress addr, std::uint32_t len) { return get_from(rx_, addr, len); }

  // A transmit chain with one device-readable buffer per part, holding that part's bytes.
  std::uint16_t add_tx(const std::vector<std::string>& parts, bool indirect = false) {
    std::vector<Buffer> buffers;
    for (const std::string& part : parts) buffers.push_back({static_cast<std::uint32_t>(part.size()), false});
    std::vector<GuestAddress> addrs;
    const std::uint16_t head = indirect ? tx_.add_indirect_chain(buffers, &addrs) : tx_.add_chain(buffers, &addrs);
    for (std::size_t i = 0; i < parts.size(); ++i) put(addrs[i], parts[i]);
    return head;
  }
  // A receive chain with one device-writable buffer per length; the buffer addresses land in `addrs`.
  std::uint16_t add_rx(const std::vector<std::uint32_t>& lens, std::vector<GuestAddress>* addrs = nullptr,
                       bool indirect = false) {
    std::vector<Buffer> buffers;
    for (std::uint32_t len : lens) buffers.push_back({len, true});
    return indirect ? rx_.add_indirect_chain(buffers, addrs) : rx_.add_chain(buffers, addrs);
  }
  std::size_t input(std::string_view text) {
    const auto bytes = bytes_of(text);
    return console_.enqueue_input(bytes);
  }

  std::array<std::uint8_t, 4> read_config(std::uint64_t offset) {
    std::array<std::uint8_t, 4> data;
    data.fill(0xaa);
    console_.read_config(offset, data);
    return data;
  }

  boost::asio::io_context io_;  // first: outlives the console; runs its deferred work when a test polls it
  MockVirtqDriver rx_;
  MockVirtqDriver tx_;
  std::string output_;
  int sink_calls_ = 0;
  std::function<void(std::span<const std::uint8_t>)> on_sink_;  // runs inside the sink, after recording
  std::array<Queue, ConsoleDevice::kQueueCount> queues_;
  RecordingInterrupt irq_;
  ConsoleDevice console_;
};

TEST_F(VirtioConsoleTest, IdentifiesAsASinglePortConsole) {
  EXPECT_EQ(console_.device_id(), static_cast<std::uint32_t>(VIRTIO_ID_CONSOLE));
  EXPECT_EQ(console_.queue_count(), 2u);
  const std::uint64_t features = console_.features();
  for (unsigned feature :
       {kFeatureVersion1, kFeatureEventIdx, kFeatureIndirectDesc, static_cast<unsigned>(VIRTIO_CONSOLE_F_SIZE),
        static_cast<unsigned>(VIRTIO_CONSOLE_F_EMERG_WRITE)}) {
    EXPECT_NE(features & bit(feature), 0u) << "feature " << feature;
  }
  EXPECT_EQ(features & bit(VIRTIO_CONSOLE_F_MULTIPORT), 0u);
}

TEST_F(VirtioConsoleTest, ActivationNeedsBothQueues) {
  auto active = console_.activate(rx_.memory(), std::span(queues_).first(1), kAcked, irq_);
  EXPECT_FALSE(active.has_value());
}

// --- transmitq0 ---

TEST_F(VirtioConsoleTest, TransmitChainsReachTheSinkInOrder) {
  activate();
  const std::uint16_t a = add_tx({"hello, "});
  const std::uint16_t b = add_tx({"virtio "});
  const std::uint16_t c = add_tx({"console\n"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "hello, virtio console\n");
  EXPECT_EQ(sink_calls_, 3);  // one per chain
  ASSERT_EQ(tx_.used_idx(), 3);
  EXPECT_EQ(tx_.used_elem(0), (VirtqUsedElem{a, 0}));
  EXPECT_EQ(tx_.used_elem(1), (VirtqUsedElem{b, 0}));
  EXPECT_EQ(tx_.used_elem(2), (VirtqUsedElem{c, 0}));
  EXPECT_EQ(irq_.used.load(), 1);
  EXPECT_TRUE(irq_.errors.empty());

  console_.notify(ConsoleDevice::kTransmitQueue);  // nothing new: no output, no interrupt
  EXPECT_EQ(sink_calls_, 3);
  EXPECT_EQ(irq_.used.load(), 1);
}

TEST_F(VirtioConsoleTest, MultiSegmentChainIsSentWholeAndInOrder) {
  activate();
  add_tx({"ab", "", "cde", "fghi"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "abcdefghi");
  EXPECT_EQ(sink_calls_, 1);
  EXPECT_EQ(tx_.used_idx(), 1);
}

TEST_F(VirtioConsoleTest, IndirectChainIsSent) {
  activate();
  add_tx({"in", "dir", "ect"}, /*indirect=*/true);
  add_tx({"!"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "indirect!");
  EXPECT_EQ(tx_.used_idx(), 2);
  EXPECT_TRUE(irq_.errors.empty());
}

TEST_F(VirtioConsoleTest, LargeChainIsSentInBoundedChunks) {
  activate();
  std::string big(3 * ConsoleDevice::kTransmitChunk + 5, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  const std::string part1 = big.substr(0, 1000);
  const std::string part2 = big.substr(1000);
  add_tx({part1, part2});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, big);
  EXPECT_EQ(sink_calls_, 4);  // three full chunks and the rest
  EXPECT_EQ(tx_.used_elem(0).len, 0u);
}

TEST_F(VirtioConsoleTest, TransmitChainWithWritableBufferIsADeviceError) {
  activate();
  std::vector<GuestAddress> addrs;
  tx_.add_chain({{4, false}, {8, true}}, &addrs);
  put(addrs[0], "oops");
  console_.notify(ConsoleDevice::kTransmitQueue);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("device-writable"), std::string::npos) << irq_.errors[0];
  EXPECT_EQ(output_, "");
  EXPECT_EQ(tx_.used_idx(), 0);

  // Stopped until reset: neither queue is touched any more.
  add_tx({"later"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  add_rx({16});
  EXPECT_EQ(input("in"), 2u);  // still buffered
  console_.notify(ConsoleDevice::kReceiveQueue);
  EXPECT_EQ(output_, "");
  EXPECT_EQ(tx_.used_idx(), 0);
  EXPECT_EQ(rx_.used_idx(), 0);
  EXPECT_EQ(irq_.errors.size(), 1u);
  EXPECT_EQ(irq_.used.load(), 0);
}

TEST_F(VirtioConsoleTest, TransmitDescriptorLoopIsADeviceError) {
  activate();
  const GuestAddress buffer = tx_.alloc_buffer(8);
  tx_.write_desc(0, {buffer.value, 8, kDescFlagNext, 0});  // chains to itself
  tx_.offer(0);
  console_.notify(ConsoleDevice::kTransmitQueue);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("transmitq0"), std::string::npos) << irq_.errors[0];
  EXPECT_EQ(output_, "");
}

TEST_F(VirtioConsoleTest, TransmitBufferOutsideGuestMemoryIsADeviceError) {
  activate();
  tx_.write_desc(0, {3 * MockVirtqDriver::kMemorySize, 8, 0, 0});
  tx_.offer(0);
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(irq_.errors.size(), 1u);
  EXPECT_EQ(output_, "");
  EXPECT_EQ(tx_.used_idx(), 0);
}

TEST_F(VirtioConsoleTest, AvailIndexRunningAheadIsADeviceError) {
  activate();
  tx_.set_avail_idx(kSize + 1);
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(irq_.errors.size(), 1u);
}

TEST_F(VirtioConsoleTest, SinkMayFeedInputBack) {
  // The sink runs without the device lock: an echoing host may call enqueue_input from inside it.
  activate();
  on_sink_ = [this](std::span<const std::uint8_t> bytes) { EXPECT_EQ(console_.enqueue_input(bytes), bytes.size()); };
  std::vector<GuestAddress> addrs;
  add_rx({16}, &addrs);
  add_tx({"echo"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "echo");
  ASSERT_EQ(rx_.used_idx(), 1);
  EXPECT_EQ(rx_.used_elem(0).len, 4u);
  EXPECT_EQ(get(addrs[0], 4), "echo");
}

TEST_F(VirtioConsoleTest, ResetWhileTheSinkRunsDropsTheChain) {
  // A vCPU resets the device while the event loop is writing a chain out: the chain (and the rest of
  // the old queue) is abandoned, never returned into the reset queue.
  activate();
  on_sink_ = [this](std::span<const std::uint8_t>) { reset(); };
  add_tx({"first"});
  add_tx({"second"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "first");
  EXPECT_EQ(tx_.used_idx(), 0);
  EXPECT_TRUE(irq_.errors.empty());
  EXPECT_EQ(irq_.used.load(), 0);
}

TEST_F(VirtioConsoleTest, ResetAndReactivationWhileTheSinkRunsLeaveTheNewQueuesAlone) {
  // Worse: the driver resets and sets the device up again before the sink returns. The chain being
  // written out belongs to the old rings and must not come back as used in the new ones.
  activate();
  MockVirtqDriver rx(kSize, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kSize, rx, MockVirtqDriver::kMemorySize);
  bool reactivated = false;
  on_sink_ = [&](std::span<const std::uint8_t>) {
    if (std::exchange(reactivated, true)) return;
    reset();
    rx.configure(queues_[0]);
    tx.configure(queues_[1]);
    ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq_).has_value());
  };
  add_tx({"old"});
  add_tx({"stale"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "old");
  EXPECT_EQ(tx.used_idx(), 0);
  EXPECT_EQ(tx_.used_idx(), 0);
  EXPECT_EQ(irq_.used.load(), 0);

  std::vector<GuestAddress> addrs;
  tx.add_chain({{3, false}}, &addrs);
  ASSERT_TRUE(rx.memory().write(addrs[0], std::as_bytes(std::span("new", 3))).has_value());
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "oldnew");
  EXPECT_EQ(tx.used_idx(), 1);
  EXPECT_TRUE(irq_.errors.empty());
}

// --- receiveq0 ---

TEST_F(VirtioConsoleTest, InputBeforeBuffersIsDeliveredOnceTheDriverAddsSome) {
  EXPECT_EQ(input("ab"), 2u);  // before activation
  activate();
  EXPECT_EQ(input("cd"), 2u);  // no buffers yet
  EXPECT_EQ(rx_.used_idx(), 0);
  std::vector<GuestAddress> addrs;
  const std::uint16_t head = add_rx({16}, &addrs);
  console_.notify(ConsoleDevice::kReceiveQueue);
  ASSERT_EQ(rx_.used_idx(), 1);
  EXPECT_EQ(rx_.used_elem(0), (VirtqUsedElem{head, 4}));
  EXPECT_EQ(get(addrs[0], 4), "abcd");
  EXPECT_EQ(irq_.used.load(), 1);

  console_.notify(ConsoleDevice::kReceiveQueue);  // nothing left to deliver
  EXPECT_EQ(irq_.used.load(), 1);
  EXPECT_EQ(input("e"), 1u);  // buffers exist now: straight through
  EXPECT_EQ(rx_.used_idx(), 1);
  add_rx({16}, &addrs);
  console_.notify(ConsoleDevice::kReceiveQueue);
  EXPECT_EQ(rx_.used_idx(), 2);
  EXPECT_EQ(get(addrs[1], 1), "e");
}

TEST_F(VirtioConsoleTest, BuffersOfferedBeforeDriverOkGetInputAtActivation) {
  EXPECT_EQ(input("early"), 5u);
  rx_.configure(queues_[0]);
  std::vector<GuestAddress> addrs;
  add_rx({8}, &addrs);  // its notification came before DRIVER_OK and was dropped
  activate();
  ASSERT_EQ(rx_.used_idx(), 1);
  EXPECT_EQ(rx_.used_elem(0).len, 5u);
  EXPECT_EQ(get(addrs[0], 5), "early");
  EXPECT_EQ(irq_.used.load(), 1);
}

TEST_F(VirtioConsoleTest, InputSpreadsOverBuffersAndChains) {
  activate();
  std::vector<GuestAddress> addrs;
  const std::uint16_t a = add_rx({4}, &addrs);
  const std::uint16_t b = add_rx({2, 3}, &addrs);  // one chain, two buffers
  const std::uint16_t c = add_rx({8}, &addrs, /*indirect=*/true);
  const std::uint16_t d = add_rx({8}, &addrs);
  EXPECT_EQ(input("0123456789ab"), 12u);
  ASSERT_EQ(rx_.used_idx(), 3);
  EXPECT_EQ(rx_.used_elem(0), (VirtqUsedElem{a, 4}));
  EXPECT_EQ(rx_.used_elem(1), (VirtqUsedElem{b, 5}));
  EXPECT_EQ(rx_.used_elem(2), (VirtqUsedElem{c, 3}));
  EXPECT_EQ(get(addrs[0], 4), "0123");
  EXPECT_EQ(get(addrs[1], 2), "45");
  EXPECT_EQ(get(addrs[2], 3), "678");
  EXPECT_EQ(get(addrs[3], 3), "9ab");
  EXPECT_EQ(irq_.used.load(), 1);  // one notification for the batch
  EXPECT_EQ(input("z"), 1u);
  EXPECT_EQ(rx_.used_elem(3), (VirtqUsedElem{d, 1}));
}

TEST_F(VirtioConsoleTest, InputBeyondTheCapacityIsRefusedUntilTheGuestTakesSome) {
  const std::string big(ConsoleDevice::kInputCapacity + 100, 'x');
  EXPECT_EQ(input(big), ConsoleDevice::kInputCapacity);
  EXPECT_EQ(input("more"), 0u);
  activate();
  add_rx({1000});
  console_.notify(ConsoleDevice::kReceiveQueue);
  EXPECT_EQ(rx_.used_elem(0).len, 1000u);
  EXPECT_EQ(irq_.used.load(), 1);  // the driver hears of the full buffer though more input waits
  EXPECT_EQ(input(big), 1000u);    // room for what the guest took
  EXPECT_EQ(input("more"), 0u);
}

TEST_F(VirtioConsoleTest, InputBeyondTheCapacityPassesStraightIntoFreeBuffers) {
  activate();
  add_rx({4096});
  add_rx({4096});
  add_rx({4096});
  const std::string big(3 * 4096 + 10, 'y');
  EXPECT_EQ(input(big), big.size());  // 3 buffers delivered, 10 bytes left buffered
  EXPECT_EQ(rx_.used_idx(), 3);
  EXPECT_EQ(input(std::string(ConsoleDevice::kInputCapacity, 'z')), ConsoleDevice::kInputCapacity - 10);
}

TEST_F(VirtioConsoleTest, ReceiveChainWithReadableBufferIsADeviceError) {
  activate();
  rx_.add_chain({{4, false}, {8, true}});
  EXPECT_EQ(input("hi"), 2u);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("device-readable"), std::string::npos) << irq_.errors[0];
  EXPECT_EQ(rx_.used_idx(), 0);

  // The input survives: after a reset it reaches the re-initialised driver.
  reset();
  MockVirtqDriver rx(kSize, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kSize, rx, MockVirtqDriver::kMemorySize);
  rx.configure(queues_[0]);
  tx.configure(queues_[1]);
  ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq_).has_value());
  std::vector<GuestAddress> addrs;
  rx.add_chain({{8, true}}, &addrs);
  console_.notify(ConsoleDevice::kReceiveQueue);
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used_elem(0).len, 2u);
  EXPECT_EQ(irq_.errors.size(), 1u);
}

// A receive buffer over the driver's own avail idx: the first round of input fills the chain and
// turns the avail idx into garbage, the second round's pop fails. The device error is the last word:
// no used-buffer interrupt for the first round's chain after it (found by fuzz_virtio_console).
TEST_F(VirtioConsoleTest, DeviceErrorInALaterInputRoundSuppressesTheInterrupt) {
  activate();
  const GuestAddress body = rx_.alloc_buffer(ConsoleDevice::kInputCapacity - 2);
  const GuestAddress avail_idx(rx_.avail_ring().value + 2);
  rx_.write_desc(0, {body.value, ConsoleDevice::kInputCapacity - 2, kDescFlagWrite | kDescFlagNext, 1});
  rx_.write_desc(1, {avail_idx.value, 2, kDescFlagWrite, 0});
  rx_.offer(0);
  std::string text(ConsoleDevice::kInputCapacity + 1, 'x');
  text[ConsoleDevice::kInputCapacity - 2] = '\xff';  // the avail idx becomes 0x7fff: far ahead of used
  text[ConsoleDevice::kInputCapacity - 1] = '\x7f';
  input(text);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_EQ(irq_.used.load(), 0);
}

TEST_F(VirtioConsoleTest, ReceiveBufferOutsideGuestMemoryIsADeviceError) {
  activate();
  rx_.write_desc(0, {2 * MockVirtqDriver::kMemorySize - 4, 8, kDescFlagWrite, 0});  // straddles the end
  rx_.offer(0);
  EXPECT_EQ(input("abc"), 3u);
  EXPECT_EQ(irq_.errors.size(), 1u);
  EXPECT_EQ(rx_.used_idx(), 0);
}

TEST_F(VirtioConsoleTest, ReceiveIndirectLoopIsADeviceError) {
  activate();
  const GuestAddress table = rx_.alloc_indirect_table(2);
  const GuestAddress buffer = rx_.alloc_buffer(8);
  rx_.write_table_desc(table, 0, {buffer.value, 8, kDescFlagWrite | kDescFlagNext, 1});
  rx_.write_table_desc(table, 1, {buffer.value, 8, kDescFlagWrite | kDescFlagNext, 0});
  rx_.write_desc(0, {table.value, 32, kDescFlagIndirect, 0});
  rx_.offer(0);
  EXPECT_EQ(input("abc"), 3u);
  ASSERT_EQ(irq_.errors.size(), 1u);
  EXPECT_NE(irq_.errors[0].find("receiveq0"), std::string::npos) << irq_.errors[0];
}

// --- lifecycle ---

TEST_F(VirtioConsoleTest, NotifyBeforeActivationIsANoOp) {
  rx_.configure(queues_[0]);
  tx_.configure(queues_[1]);
  add_tx({"not yet"});
  add_rx({8});
  EXPECT_EQ(input("x"), 1u);
  console_.notify(ConsoleDevice::kTransmitQueue);
  console_.notify(ConsoleDevice::kReceiveQueue);
  console_.notify(7);
  EXPECT_EQ(output_, "");
  EXPECT_EQ(tx_.used_idx(), 0);
  EXPECT_EQ(rx_.used_idx(), 0);
  EXPECT_EQ(irq_.used.load(), 0);
  EXPECT_TRUE(irq_.errors.empty());

  auto active = console_.activate(rx_.memory(), queues_, kAcked, irq_);
  ASSERT_TRUE(active.has_value());
  EXPECT_EQ(rx_.used_idx(), 1);  // the buffered input goes in at once
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "not yet");
}

TEST_F(VirtioConsoleTest, ResetThenReactivationWorksAndKeepsUndeliveredInput) {
  activate();
  add_tx({"before"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(input("kept"), 4u);  // no receive buffers: waits
  reset();

  // Reset: the old rings are no longer touched, whatever arrives.
  add_rx({8});
  EXPECT_EQ(input("!"), 1u);
  add_tx({"stale"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  console_.notify(ConsoleDevice::kReceiveQueue);
  EXPECT_EQ(rx_.used_idx(), 0);
  EXPECT_EQ(tx_.used_idx(), 1);
  EXPECT_EQ(output_, "before");

  // The driver sets the device up again from scratch.
  MockVirtqDriver rx(kSize, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kSize, rx, MockVirtqDriver::kMemorySize);
  rx.configure(queues_[0]);
  tx.configure(queues_[1]);
  RecordingInterrupt irq;
  ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq).has_value());
  std::vector<GuestAddress> addrs;
  rx.add_chain({{16, true}}, &addrs);
  console_.notify(ConsoleDevice::kReceiveQueue);
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used_elem(0).len, 5u);
  EXPECT_EQ(get_from(rx, addrs[0], 5), "kept!");
  std::vector<GuestAddress> tx_addrs;
  tx.add_chain({{5, false}}, &tx_addrs);
  ASSERT_TRUE(rx.memory().write(tx_addrs[0], std::as_bytes(std::span("after", 5))).has_value());
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(output_, "beforeafter");
  EXPECT_EQ(tx.used_idx(), 1);
  EXPECT_EQ(irq.used.load(), 2);
  EXPECT_EQ(irq_.used.load(), 1);  // the old interrupt saw only the first activation's work
}

TEST_F(VirtioConsoleTest, InputOutputAndConfigFromSeveralThreads) {
  // The event loop writes output and takes input while vCPUs read the config and resize: no lost
  // bytes, no deadlock, and clean under -fsanitize=thread.
  activate();
  std::vector<GuestAddress> rx_addrs;
  for (int i = 0; i < kSize; ++i) add_rx({64}, &rx_addrs);
  std::string expected_output;
  for (int i = 0; i < kSize; ++i) {
    const std::string part = "chain " + std::to_string(i) + ";";
    add_tx({part});
    expected_output += part;
  }
  std::thread output([this] { console_.notify(ConsoleDevice::kTransmitQueue); });
  std::thread config([this] {
    for (std::uint16_t i = 0; i < 200; ++i) {
      console_.set_size(i, i);
      (void)read_config(0);
    }
  });
  std::size_t accepted = 0;
  for (int i = 0; i < 64; ++i) accepted += input("0123456789abcdef");
  output.join();
  config.join();
  EXPECT_EQ(accepted, 64u * 16u);
  EXPECT_EQ(output_, expected_output);
  EXPECT_EQ(rx_.used_idx(), 16);  // 1024 bytes in 16 buffers of 64
  EXPECT_EQ(get(rx_addrs[15], 16), "0123456789abcdef");
  EXPECT_TRUE(irq_.errors.empty());
}

// --- notification suppression ---

TEST_F(VirtioConsoleTest, EventIdxSuppressesNotificationsUntilUsedEvent) {
  activate(kAcked | bit(kFeatureEventIdx));
  // Receive: the driver asks to hear about the third used entry (index 2) only.
  rx_.set_used_event(2);
  add_rx({1});
  add_rx({1});
  EXPECT_EQ(input("a"), 1u);
  EXPECT_EQ(rx_.used_idx(), 1);
  EXPECT_EQ(irq_.used.load(), 0);
  EXPECT_EQ(input("b"), 1u);
  EXPECT_EQ(irq_.used.load(), 0);
  EXPECT_EQ(input("c"), 1u);  // no buffer: buffered, and avail_event asks for the next one
  EXPECT_EQ(rx_.avail_event(), 2);
  add_rx({1});
  console_.notify(ConsoleDevice::kReceiveQueue);
  EXPECT_EQ(rx_.used_idx(), 3);
  EXPECT_EQ(irq_.used.load(), 1);

  // Transmit: the driver asks to hear about the second used entry (index 1), not the first.
  tx_.set_used_event(1);
  add_tx({"x"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(irq_.used.load(), 1);
  add_tx({"y"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(irq_.used.load(), 2);
  EXPECT_EQ(output_, "xy");
  EXPECT_EQ(tx_.avail_event(), 2);
}

TEST_F(VirtioConsoleTest, NoInterruptFlagSuppressesNotificationsWithoutEventIdx) {
  activate();
  rx_.set_avail_flags(kAvailFlagNoInterrupt);
  add_rx({4});
  EXPECT_EQ(input("q"), 1u);
  EXPECT_EQ(rx_.used_idx(), 1);
  EXPECT_EQ(irq_.used.load(), 0);
  rx_.set_avail_flags(0);
  add_rx({4});
  EXPECT_EQ(input("r"), 1u);
  EXPECT_EQ(irq_.used.load(), 1);
}

// --- configuration space ---

TEST_F(VirtioConsoleTest, ConfigReadsAtAnyWidthAndOffset) {
  console_.set_size(0x1234, 0x0056);
  std::array<std::uint8_t, sizeof(virtio_console_config)> whole;
  console_.read_config(0, whole);
  virtio_console_config config;
  std::memcpy(&config, whole.data(), sizeof(config));
  EXPECT_EQ(config.cols, 0x1234);
  EXPECT_EQ(config.rows, 0x0056);
  EXPECT_EQ(config.max_nr_ports, 1u);
  EXPECT_EQ(config.emerg_wr, 0u);

  EXPECT_EQ(read_config(1), (std::array<std::uint8_t, 4>{0x12, 0x56, 0x00, 0x01}));  // odd offset
  std::uint8_t byte = 0xaa;
  console_.read_config(2, std::span(&byte, 1));
  EXPECT_EQ(byte, 0x56);
  EXPECT_EQ(read_config(10), (std::array<std::uint8_t, 4>{0, 0, 0, 0}));  // straddles the end
  EXPECT_EQ(read_config(11), (std::array<std::uint8_t, 4>{0, 0, 0, 0}));
  EXPECT_EQ(read_config(12), (std::array<std::uint8_t, 4>{0, 0, 0, 0}));  // past the end
  EXPECT_EQ(read_config(0x1000), (std::array<std::uint8_t, 4>{0, 0, 0, 0}));
  EXPECT_EQ(read_config(UINT64_MAX - 1), (std::array<std::uint8_t, 4>{0, 0, 0, 0}));  // offset + i would wrap
  console_.read_config(0, {});                                                        // empty access
}

TEST_F(VirtioConsoleTest, ConfigWritesAreIgnoredExceptTheEmergencyWrite) {
  console_.set_size(80, 25);
  const std::array<std::uint8_t, 4> junk{0xff, 0xff, 0xff, 0xff};
  console_.write_config(0, junk);
  console_.write_config(4, junk);
  console_.write_config(9, junk);  // emerg_wr's upper bytes: no character
  console_.write_config(UINT64_MAX - 1, junk);
  EXPECT_EQ(read_config(0), (std::array<std::uint8_t, 4>{80, 0, 25, 0}));
  EXPECT_EQ(output_, "");

  // Works on an unconfigured device (§5.3.5.1): the lower byte goes out, whatever the access width.
  console_.write_config(8, std::array<std::uint8_t, 4>{'A', 0xff, 0xff, 0xff});
  console_.write_config(8, std::array<std::uint8_t, 1>{'B'});
  console_.write_config(4, std::array<std::uint8_t, 8>{0xff, 0xff, 0xff, 0xff, 'C', 0xff, 0xff, 0xff});
  EXPECT_EQ(output_, "ABC");
  EXPECT_EQ(sink_calls_, 3);

  activate();  // and on a live one, in order with the transmitq
  add_tx({"D"});
  console_.notify(ConsoleDevice::kTransmitQueue);
  console_.write_config(8, std::array<std::uint8_t, 4>{'E', 0, 0, 0});
  EXPECT_EQ(output_, "ABCDE");
}

TEST_F(VirtioConsoleTest, SizeChangesNotifyADriverThatNegotiatedSize) {
  console_.set_size(80, 25);  // not activated: nobody to tell
  EXPECT_EQ(irq_.config_changes.load(), 0);
  activate();
  console_.set_size(80, 25);  // unchanged
  EXPECT_EQ(irq_.config_changes.load(), 0);
  console_.set_size(132, 43);
  EXPECT_EQ(irq_.config_changes.load(), 1);
  EXPECT_EQ(read_config(0), (std::array<std::uint8_t, 4>{132, 0, 43, 0}));

  reset();
  activate(kAcked & ~bit(VIRTIO_CONSOLE_F_SIZE));
  console_.set_size(100, 30);
  EXPECT_EQ(irq_.config_changes.load(), 1);
  EXPECT_EQ(read_config(0), (std::array<std::uint8_t, 4>{100, 0, 30, 0}));
}

// --- work budgets ---

// A second vCPU that re-posts transmit chains as fast as the device uses them: a single notify used
// to loop until the guest stopped. Now one notify handles kNotifyBudget chains and returns, each
// deferred run on the event loop as many, and all 10 000 chains come out in order, none lost.
TEST_F(VirtioConsoleTest, TransmitIsBudgetedAgainstADriverThatKeepsRePosting) {
  constexpr std::uint16_t kBig = Queue::kMaxSize;
  constexpr int kChains = 10'000;
  MockVirtqDriver rx(kBig, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kBig, rx, MockVirtqDriver::kMemorySize);
  rx.configure(queues_[0]);
  tx.configure(queues_[1]);
  ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq_).has_value());

  int posted = 0;
  std::string expected;
  const auto post = [&] {
    const std::string text = std::to_string(posted++) + ";";
    expected += text;
    std::vector<GuestAddress> addrs;
    tx.add_chain({{static_cast<std::uint32_t>(text.size()), false}}, &addrs);
    ASSERT_TRUE(rx.memory().write(addrs[0], std::as_bytes(std::span(text.data(), text.size()))).has_value());
  };
  while (posted < kBig) post();
  // Inside the sink, the device has dropped its lock: the "other vCPU" tops the ring up again.
  on_sink_ = [&](std::span<const std::uint8_t>) {
    if (posted < kChains && tx.outstanding() < kBig) post();
  };

  console_.notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(sink_calls_, static_cast<int>(kNotifyBudget));  // and notify returned
  EXPECT_EQ(tx.used_idx(), kNotifyBudget);
  std::size_t runs = 0;
  for (;;) {
    const int before = sink_calls_;
    if (io_.poll_one() == 0) break;
    ++runs;
    ASSERT_LE(runs, static_cast<std::size_t>(kChains)) << "the deferred work never ends";
    EXPECT_LE(sink_calls_ - before, static_cast<int>(kNotifyBudget));  // each run is bounded too
  }
  EXPECT_EQ(sink_calls_, kChains);
  EXPECT_EQ(output_, expected);
  EXPECT_EQ(posted, kChains);
  EXPECT_EQ(tx.used_idx(), static_cast<std::uint16_t>(kChains));
  EXPECT_GE(runs, static_cast<std::size_t>(kChains / kNotifyBudget - 1));
  EXPECT_TRUE(irq_.errors.empty());
}

// Host input into many small receive buffers: one enqueue_input fills at most kNotifyBudget chains,
// the deferred run the rest, byte for byte.
TEST_F(VirtioConsoleTest, ReceiveIsBudgetedAndTheRestIsDeliveredLater) {
  constexpr std::uint16_t kBig = Queue::kMaxSize;
  MockVirtqDriver rx(kBig, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kBig, rx, MockVirtqDriver::kMemorySize);
  rx.configure(queues_[0]);
  tx.configure(queues_[1]);
  ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq_).has_value());
  std::vector<GuestAddress> addrs;
  for (int i = 0; i < kBig; ++i) rx.add_chain({{1, true}}, &addrs);

  std::string text;
  for (int i = 0; i < 200; ++i) text += static_cast<char>('a' + i % 26);
  EXPECT_EQ(input(text), text.size());      // all buffered...
  EXPECT_EQ(rx.used_idx(), kNotifyBudget);  // ...but only a budget's worth of chains filled
  const int interrupts = irq_.used.load();
  EXPECT_EQ(interrupts, 1);

  console_.notify(ConsoleDevice::kReceiveQueue);  // a notify is bounded the same way
  EXPECT_EQ(rx.used_idx(), 2 * kNotifyBudget);
  io_.poll();
  ASSERT_EQ(rx.used_idx(), 200);
  std::string got;
  for (int i = 0; i < 200; ++i) got += get_from(rx, addrs[i], 1);
  EXPECT_EQ(got, text);
  EXPECT_GT(irq_.used.load(), interrupts);  // the deferred run told the driver too
}

// Zero-length receive chains take no input: a driver offering nothing but those cannot keep
// enqueue_input (the event loop's console-input callback) busy for more than the budget either.
TEST_F(VirtioConsoleTest, ZeroLengthReceiveChainsAreBudgeted) {
  constexpr std::uint16_t kBig = Queue::kMaxSize;
  MockVirtqDriver rx(kBig, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(kBig, rx, MockVirtqDriver::kMemorySize);
  rx.configure(queues_[0]);
  tx.configure(queues_[1]);
  ASSERT_TRUE(console_.activate(rx.memory(), queues_, kAcked, irq_).has_value());
  for (int i = 0; i < kBig; ++i) rx.add_chain({{0, true}});
  EXPECT_EQ(input("x"), 1u);
  EXPECT_EQ(rx.used_idx(), kNotifyBudget);
  io_.poll();  // the rest of the empty chains come back; "x" still waits
  EXPECT_EQ(rx.used_idx(), kBig);
  for (int i = 0; i < kBig - 1; ++i) ASSERT_EQ(rx.used_elem(static_cast<std::uint16_t>(i)).len, 0u);
}

TEST(VirtioConsoleLifetimeTest, DestroyedWithDeferredWorkQueued) {
  // The console goes away while its continuation waits on the loop: the loop then runs (ASan would
  // report a use after free) and nothing reaches the old sink.
  boost::asio::io_context io;
  MockVirtqDriver rx(Queue::kMaxSize, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(Queue::kMaxSize, rx, MockVirtqDriver::kMemorySize);
  std::array<Queue, ConsoleDevice::kQueueCount> queues;
  RecordingInterrupt irq;
  auto sink_calls = std::make_shared<int>(0);
  auto console = std::make_unique<ConsoleDevice>(io.get_executor(),
                                                 [sink_calls](std::span<const std::uint8_t>) { ++*sink_calls; });
  rx.configure(queues[0]);
  tx.configure(queues[1]);
  ASSERT_TRUE(console->activate(rx.memory(), queues, kAcked, irq).has_value());
  for (unsigned i = 0; i < 2 * kNotifyBudget; ++i) tx.add_chain({{1, false}});
  console->notify(ConsoleDevice::kTransmitQueue);
  EXPECT_EQ(*sink_calls, static_cast<int>(kNotifyBudget));
  console.reset();
  EXPECT_EQ(io.poll(), 1u);  // the queued continuation runs, and does nothing
  EXPECT_EQ(*sink_calls, static_cast<int>(kNotifyBudget));
  EXPECT_EQ(tx.used_idx(), kNotifyBudget);
}

}  // namespace
}  // namespace microvm::devices::virtio
