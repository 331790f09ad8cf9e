// The virtio devices' State for snapshots, each behind a real virtio-mmio transport: a device and
// its transport saved mid-activity (chains left in the rings, a request on the worker, a frame
// waiting for receive buffers, console input the guest has not taken) and restored into a fresh
// device and transport on the same guest memory read back equal, and the restored pair goes on where
// the first one stopped; chains the first device held go back to the ring and are taken again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/net.h"
#include "tests/unit/test_support.h"
#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices::virtio {
namespace {

using test::MockVirtqDriver;

class CountingLine final : public InterruptLine {
 public:
  void set_level(bool high) override { raised += high ? 1 : 0; }
  int raised = 0;
};

void write32(MmioTransport& transport, std::uint64_t offset, std::uint32_t value) {
  transport.write(offset, std::span(reinterpret_cast<const std::uint8_t*>(&value), 4));
}

// What Linux's virtio-mmio driver does up to DRIVER_OK, acking `features`, queue i on drivers[i]'s rings.
void bring_up(MmioTransport& transport, std::uint64_t features, std::span<MockVirtqDriver* const> drivers) {
  write32(transport, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  for (std::uint32_t half = 0; half < 2; ++half) {
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES_SEL, half);
    write32(transport, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<std::uint32_t>(features >> (32 * half)));
  }
  const std::uint32_t features_ok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
  write32(transport, VIRTIO_MMIO_STATUS, features_ok);
  for (std::uint32_t q = 0; q < drivers.size(); ++q) {
    const MockVirtqDriver& d = *drivers[q];
    write32(transport, VIRTIO_MMIO_QUEUE_SEL, q);
    write32(transport, VIRTIO_MMIO_QUEUE_NUM, d.size());
    write32(transport, VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<std::uint32_t>(d.desc_table().value));
    write32(transport, VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<std::uint32_t>(d.avail_ring().value));
    write32(transport, VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<std::uint32_t>(d.used_ring().value));
    write32(transport, VIRTIO_MMIO_QUEUE_READY, 1);
  }
  write32(transport, VIRTIO_MMIO_STATUS, features_ok | VIRTIO_CONFIG_S_DRIVER_OK);
  ASSERT_EQ(transport.state().status & VIRTIO_CONFIG_S_DRIVER_OK,
            static_cast<std::uint32_t>(VIRTIO_CONFIG_S_DRIVER_OK));
}

void run(boost::asio::io_context& io) {
  io.restart();
  io.poll();
}

// ---- virtio-blk --------------------------------------------------------------------------------

constexpr std::uint64_t kSector = 512;
constexpr std::uint64_t kImageSectors = 32;

class TempImage {
 public:
  explicit TempImage(std::uint64_t bytes) {
    std::array<char, 64> name{};
    std::strcpy(name.data(), "/tmp/microvm-state-test-XXXXXX");
    UniqueFd fd(::mkstemp(name.data()));
    if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throw std::runtime_error("image");
    path_ = name.data();
  }
  ~TempImage() { ::unlink(path_.c_str()); }
  TempImage(const TempImage&) = delete;
  TempImage& operator=(const TempImage&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::vector<std::byte> sector(std::uint64_t n) const {
    std::vector<std::byte> out(kSector);
    UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_EQ(::pread(fd.get(), out.data(), out.size(), static_cast<off_t>(n * kSector)),
              static_cast<ssize_t>(kSector));
    return out;
  }

 private:
  std::string path_;
};

class BlockStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlockDevice> open(const std::string& path, BlockDevice::IoHook hook = {}) {
    auto device = BlockDevice::open({path, false, "state"}, io_.get_executor(), std::move(hook));
    EXPECT_TRUE(device.has_value()) << device.error().message;
    return device ? std::move(*device) : nullptr;
  }
  // A write of one sector of `fill` at `sector`: header, data, status.
  void offer_write(std::uint64_t sector, std::uint8_t fill) {
    std::vector<GuestAddress> addrs;
    driver_.add_chain({{16, false}, {static_cast<std::uint32_t>(kSector), false}, {1, true}}, &addrs);
    driver_.write(addrs[0], virtio_blk_outhdr{VIRTIO_BLK_T_OUT, 0, sector});
    test::fill(driver_.memory(), addrs[1], kSector, fill);
  }
  std::uint64_t features(const BlockDevice& device) const { return device.features(); }

  boost::asio::io_context io_;
  TempImage image_{kImageSectors * kSector};
  MockVirtqDriver driver_{16};
  CountingLine line_a_, line_b_;
};

TEST_F(BlockStateTest, RoundTripGoesOnWithTheRequestsLeftInTheRing) {
  auto a = open(image_.path());
  MmioTransport ta(*a, driver_.memory(), line_a_);
  MockVirtqDriver* const drivers[] = {&driver_};
  bring_up(ta, a->features(), drivers);
  offer_write(1, 0x11);
  ta.queue_notify(0);
  a->drain();
  offer_write(2, 0x22);  // in the ring, never notified
  const BlockDevice::State device_state = a->state();
  const MmioTransport::State saved = ta.state();
  EXPECT_EQ(saved.queues[0].next_avail, 1);
  EXPECT_EQ(device_state.capacity_sectors, kImageSectors);

  auto b = open(image_.path());
  MmioTransport tb(*b, driver_.memory(), line_b_);
  ASSERT_TRUE(b->restore(device_state).has_value());
  ASSERT_TRUE(tb.restore(saved).has_value());
  b->drain();
  run(io_);
  EXPECT_EQ(driver_.used_idx(), 2);
  EXPECT_EQ(image_.sector(1), std::vector<std::byte>(kSector, std::byte{0x11}));
  EXPECT_EQ(image_.sector(2), std::vector<std::byte>(kSector, std::byte{0x22}));
  EXPECT_EQ(b->state(), device_state);
  EXPECT_EQ(tb.state().queues[0].next_avail, 2);
}

TEST_F(BlockStateTest, ARequestOnTheWorkerGoesBackToTheRing) {
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false, open_gate = false;
  auto a = open(image_.path(), [&] {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return open_gate; });
  });
  MmioTransport ta(*a, driver_.memory(), line_a_);
  MockVirtqDriver* const drivers[] = {&driver_};
  bring_up(ta, a->features(), drivers);
  offer_write(3, 0x33);
  offer_write(4, 0x44);
  ta.queue_notify(0);
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered; }));
  }
  EXPECT_EQ(a->chains_held(0), 2);
  EXPECT_EQ(ta.state().queues[0].next_avail, 0);  // both taken, neither done: both back in the ring
  {
    std::lock_guard lock(mutex);
    open_gate = true;
    cv.notify_all();
  }
  a->drain();
  EXPECT_EQ(a->chains_held(0), 0);
  EXPECT_EQ(ta.state().queues[0].next_avail, 2);
}

TEST_F(BlockStateTest, AnImageOfAnotherSizeOrModeIsRefused) {
  auto a = open(image_.path());
  TempImage bigger((kImageSectors + 1) * kSector);
  auto b = open(bigger.path());
  EXPECT_ERROR_CONTAINS(b->restore(a->state()), "sectors");
  BlockDevice::State read_only = a->state();
  read_only.read_only = true;
  EXPECT_ERROR_CONTAINS(a->restore(read_only), "read-only");
}

// ---- virtio-net --------------------------------------------------------------------------------

constexpr MacAddress kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
constexpr MacAddress kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};

struct Backend {
  UniqueFd device, peer;
  Backend() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::runtime_error("sp");
    device = UniqueFd(fds[0]);
    peer = UniqueFd(fds[1]);
  }
  void send(std::size_t payload, std::uint8_t seed) const {
    std::vector<std::uint8_t> packet(kNetHeaderSize + payload, seed);
    std::fill_n(packet.begin(), kNetHeaderSize, 0);
    ASSERT_EQ(::send(peer.get(), packet.data(), packet.size(), 0), static_cast<ssize_t>(packet.size()));
  }
};

TEST(NetState, AFrameWaitingForBuffersGivesItsChainsBackAndTheMacStays) {
  boost::asio::io_context io;
  MockVirtqDriver rx(64, 4 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(64, rx, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver* const drivers[] = {&rx, &tx};
  CountingLine line_a, line_b;
  Backend backend_a, backend_b;

  NetDevice a(io.get_executor(), std::move(backend_a.device), kMacA, false, {});
  MmioTransport ta(a, rx.memory(), line_a);
  bring_up(ta, a.features(), drivers);  // MRG_RXBUF included
  run(io);
  const std::uint16_t first = rx.add_chain({{1500, true}});
  ta.queue_notify(0);
  backend_a.send(3000, 0x5a);  // needs three chains of 1500 (header included): the device holds one
  run(io);
  EXPECT_EQ(a.chains_held(NetDevice::kRxQueue), 1);
  EXPECT_EQ(rx.used_idx(), 0);
  const NetDevice::State device_state = a.state();
  const MmioTransport::State saved = ta.state();
  EXPECT_EQ(device_state.mac, kMacA);
  EXPECT_EQ(saved.queues[NetDevice::kRxQueue].next_avail, 0);  // the held chain is back in the ring

  NetDevice b(io.get_executor(), std::move(backend_b.device), kMacB, false, {});
  MmioTransport tb(b, rx.memory(), line_b);
  b.restore(device_state);
  ASSERT_TRUE(tb.restore(saved).has_value());
  EXPECT_EQ(b.state(), device_state);
  std::array<std::uint8_t, kMacAddressBytes> mac{};
  b.read_config(kNetConfigMacOffset, mac);
  EXPECT_EQ(mac, kMacA);
  // The frame the first device held is gone with it (the network lost it); the next one fills the
  // chain the first device had taken.
  backend_b.send(100, 0x77);
  run(io);
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used_elem(0).id, first);
  EXPECT_EQ(rx.used_elem(0).len, kNetHeaderSize + 100);
}

// ---- virtio-console ----------------------------------------------------------------------------

TEST(ConsoleState, InputTheGuestHasNotTakenAndOutputLeftInTheRingGoOn) {
  boost::asio::io_context io;
  MockVirtqDriver rx(16, 4 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver tx(16, rx, 2 * MockVirtqDriver::kMemorySize);
  MockVirtqDriver* const drivers[] = {&rx, &tx};
  CountingLine line_a, line_b;
  std::string out_a, out_b;
  ConsoleDevice a(io.get_executor(),
                  [&](std::span<const std::uint8_t> bytes) { out_a.append(bytes.begin(), bytes.end()); });
  MmioTransport ta(a, rx.memory(), line_a);
  bring_up(ta, a.features(), drivers);
  a.set_size(80, 25);
  const std::string input = "typed ahead";
  EXPECT_EQ(a.enqueue_input(std::span(reinterpret_cast<const std::uint8_t*>(input.data()), input.size())),
            input.size());  // no receive buffer yet: it waits in the device
  std::vector<GuestAddress> addrs;
  tx.add_chain({{5, false}}, &addrs);
  ASSERT_TRUE(rx.memory().write(addrs[0], std::as_bytes(std::span("hello", 5))).has_value());  // never notified
  run(io);
  const ConsoleDevice::State device_state = a.state();
  const MmioTransport::State saved = ta.state();
  EXPECT_EQ(device_state.input, std::vector<std::uint8_t>(input.begin(), input.end()));
  EXPECT_EQ(device_state.cols, 80);
  EXPECT_TRUE(out_a.empty());

  std::vector<GuestAddress> rx_addrs;
  rx.add_chain({{64, true}}, &rx_addrs);  // the restored guest offers a receive buffer
  ConsoleDevice b(io.get_executor(),
                  [&](std::span<const std::uint8_t> bytes) { out_b.append(bytes.begin(), bytes.end()); });
  MmioTransport tb(b, rx.memory(), line_b);
  ASSERT_TRUE(b.restore(device_state).has_value());
  ASSERT_TRUE(tb.restore(saved).has_value());
  run(io);
  EXPECT_EQ(out_b, "hello");
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used_elem(0).len, input.size());
  std::string delivered(input.size(), '\0');
  ASSERT_TRUE(rx.memory().read(rx_addrs[0], std::as_writable_bytes(std::span(delivered))).has_value());
  EXPECT_EQ(delivered, input);
  EXPECT_TRUE(b.state().input.empty());

  ConsoleDevice::State too_much;
  too_much.input.assign(ConsoleDevice::kInputCapacity + 1, 'x');
  ConsoleDevice c(io.get_executor(), {});
  EXPECT_ERROR_CONTAINS(c.restore(too_much), "pending input");
  EXPECT_FALSE(b.restore(device_state).has_value());  // b is active
}

}  // namespace
}  // namespace microvm::devices::virtio
