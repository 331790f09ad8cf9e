// virtio-net (virtio 1.2 §5.1) against a fake TAP: one end of a SOCK_SEQPACKET socketpair is the
// backend (one message = one frame with its 12-byte vnet header, like a TAP with IFF_VNET_HDR), the
// test holds the other end. Mock drivers build the receive and transmit queues in one guest memory,
// and the test runs the io_context itself (poll), so every step is deterministic. Covers transmit,
// receive with and without mergeable buffers, back-pressure both ways, hostile chains, reset, the
// configuration space, feature negotiation, offloads and MAC parsing.
#include "devices/virtio/net.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "devices/virtio/deferred_work.h"
#include "tests/unit/virtio_mock_driver.h"

namespace microvm::devices::virtio {
namespace {

using test::MockVirtqDriver;
using Buffer = MockVirtqDriver::Buffer;

constexpr std::uint16_t kQueueSize = 256;
constexpr MacAddress kMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

constexpr std::uint64_t bit(unsigned n) {
  return 1ULL << n;
}
constexpr std::uint64_t kCommon = bit(kFeatureVersion1) | bit(kFeatureEventIdx) | bit(kFeatureIndirectDesc) |
                                  bit(kNetFeatureMac) | bit(kNetFeatureStatus);
constexpr std::uint64_t kMergeable = kCommon | bit(kNetFeatureMrgRxbuf);

class FakeInterrupt final : public Interrupt {
 public:
  void signal_used_buffers() override { ++used; }
  void signal_config_change() override { ++config; }
  void signal_device_error(const Error& error) override {
    std::lock_guard lock(mutex);
    errors.push_back(error.message);
  }
  std::vector<std::string> error_list() {
    std::lock_guard lock(mutex);
    return errors;
  }

  std::atomic<int> used{0};
  std::atomic<int> config{0};
  std::mutex mutex;
  std::vector<std::string> errors;
};

// A frame as it travels on the backend: a vnet header (with recognisable fields) and a payload.
std::vector<std::uint8_t> make_packet(std::size_t payload, std::uint8_t seed, std::uint16_t num_buffers = 0xbeef) {
  std::vector<std::uint8_t> packet(kNetHeaderSize + payload);
  packet[0] = 0x01;  // flags: NEEDS_CSUM
  packet[1] = 0x00;  // gso_type: NONE
  packet[2] = 0x36;  // hdr_len
  packet[4] = 0x22;  // csum_start
  packet[6] = 0x10;  // csum_offset
  packet[kNetNumBuffersOffset] = static_cast<std::uint8_t>(num_buffers);
  packet[kNetNumBuffersOffset + 1] = static_cast<std::uint8_t>(num_buffers >> 8);
  for (std::size_t i = 0; i < payload; ++i) packet[kNetHeaderSize + i] = static_cast<std::uint8_t>(seed + i * 7);
  return packet;
}

std::uint16_t num_buffers_of(std::span<const std::uint8_t> packet) {
  return static_cast<std::uint16_t>(packet[kNetNumBuffersOffset] | (packet[kNetNumBuffersOffset + 1] << 8));
}

class NetDeviceTest : public ::testing::Test {
 protected:
  NetDeviceTest() { make_drivers(); }

  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    backend_ = UniqueFd(fds[0]);
    backend_fd_ = fds[0];
    peer_ = UniqueFd(fds[1]);
    // Room for a few maximal frames in flight.
    const int size = 1 << 20;
    ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }

  // Fresh rings in fresh memory: receiveq at 0, transmitq 1 MiB higher.
  void make_drivers() {
    rx_.emplace(kQueueSize, 2 * MockVirtqDriver::kMemorySize);
    tx_.emplace(kQueueSize, *rx_, MockVirtqDriver::kMemorySize);
  }

  void make_device(bool offloads = true) {
    device_.emplace(io_.get_executor(), std::move(backend_), kMac, offloads, [this](unsigned flags) -> Result<void> {
      offload_calls_.push_back(flags);
      if (refuse_offloads_) return fail("refused");
      return {};
    });
  }

  Result<void> try_activate(std::uint64_t features) {
    for (Queue& queue : queues_) queue.reset();
    const bool event_idx = (features & bit(kFeatureEventIdx)) != 0;
    const bool indirect = (features & bit(kFeatureIndirectDesc)) != 0;
    rx_->configure(queues_[0], event_idx, indirect);
    tx_->configure(queues_[1], event_idx, indirect);
    return device_->activate(rx_->memory(), queues_, features, interrupt_);
  }

  void activate(std::uint64_t features = kMergeable) {
    auto active = try_activate(features);
    ASSERT_TRUE(active.has_value()) << active.error().message;
  }

  void reset() {
    device_->reset();
    for (Queue& queue : queues_) queue.reset();
  }

  // Runs every ready handler until none is left; returns how many ran. One at a time, so a device
  // that kept re-posting work to itself fails the test instead of hanging it.
  std::size_t drain() {
    constexpr std::size_t kMaxHandlers = 10000;
    io_.restart();
    for (std::size_t ran = 0; ran < kMaxHandlers; ++ran) {
      if (io_.poll_one() == 0) return ran;
    }
    ADD_FAILURE() << "the event loop never ran out of ready handlers (a busy loop?)";
    return kMaxHandlers;
  }

  void send(const std::vector<std::uint8_t>& packet) {
    ASSERT_EQ(::send(peer_.get(), packet.data(), packet.size(), 0), static_cast<ssize_t>(packet.size()))
        << std::strerror(errno);
  }
  std::optional<std::vector<std::uint8_t>> receive() {
    std::vector<std::uint8_t> buffer(kNetMaxPacketSize + 100);
    const ssize_t n = ::recv(peer_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<std::size_t>(n));
    return buffer;
  }
  // Reads the frames the device sent until its end of the backend turns out closed (EOF, after an
  // ECONNRESET when it was closed with frames it never read); nullopt if it is still open.
  std::optional<std::size_t> frames_until_closed() {
    std::vector<std::uint8_t> buffer(kNetMaxPacketSize + 100);
    std::size_t frames = 0;
    for (int resets = 0; resets < 2;) {
      const ssize_t n = ::recv(peer_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n > 0) {
        ++frames;
      } else if (n == 0) {
        return frames;
      } else if (errno == ECONNRESET) {
        ++resets;  // reported once, then the queued frames and EOF follow
      } else {
        return std::nullopt;
      }
    }
    return std::nullopt;
  }
  // Bytes of the next message still queued towards the device (it was not read), or -1.
  ssize_t pending_towards_device() {
    std::array<std::uint8_t, 1> byte{};
    return ::recv(backend_fd_, byte.data(), byte.size(), MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
  }

  // A transmit chain holding `packet`, cut into descriptors of the given sizes (the last gets the rest).
  std::uint16_t add_tx(const std::vector<std::uint8_t>& packet, std::vector<std::uint32_t> cuts = {kNetHeaderSize},
                       bool indirect = false) {
    std::vector<Buffer> buffers;
    std::size_t used = 0;
    for (std::uint32_t cut : cuts) {
      buffers.push_back({cut, false});
      used += cut;
    }
    buffers.push_back({static_cast<std::uint32_t>(packet.size() - used), false});
    std::vector<GuestAddress> addrs;
    const std::uint16_t head = indirect ? tx_->add_indirect_chain(buffers, &addrs) : tx_->add_chain(buffers, &addrs);
    std::size_t offset = 0;
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      auto written = tx_->memory().write(addrs[i], std::as_bytes(std::span(packet).subspan(offset, buffers[i].len)));
      EXPECT_TRUE(written.has_value());
      offset += buffers[i].len;
    }
    return head;
  }

  struct RxChain {
    std::uint16_t head;
    std::vector<GuestAddress> addrs;
    std::vector<std::uint32_t> lens;
  };
  RxChain add_rx(std::vector<std::uint32_t> lens) {
    std::vector<Buffer> buffers;
    for (std::uint32_t len : lens) buffers.push_back({len, true});
    RxChain chain{0, {}, lens};
    chain.head = rx_->add_chain(buffers, &chain.addrs);
    return chain;
  }
  // The first `len` bytes the device wrote into a receive chain.
  std::vector<std::uint8_t> read_rx(const RxChain& chain, std::size_t len) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < chain.addrs.size() && out.size() < len; ++i) {
      std::vector<std::uint8_t> part(std::min<std::size_t>(chain.lens[i], len - out.size()));
      EXPECT_TRUE(rx_->memory().read(chain.addrs[i], std::as_writable_bytes(std::span(part))).has_value());
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

  boost::asio::io_context io_;  // declared first: outlives the device
  std::optional<MockVirtqDriver> rx_, tx_;
  std::array<Queue, 2> queues_;
  FakeInterrupt interrupt_;
  UniqueFd backend_, peer_;
  int backend_fd_ = -1;  // the device's end, for peeking at what it has not read
  std::vector<unsigned> offload_calls_;
  bool refuse_offloads_ = false;
  std::optional<NetDevice> device_;
};

TEST_F(NetDeviceTest, IdentifiesAsANetworkDeviceWithTwoQueues) {
  make_device();
  EXPECT_EQ(device_->device_id(), 1u);
  EXPECT_EQ(device_->queue_count(), 2u);
}

TEST_F(NetDeviceTest, OffersOffloadsOnlyWhenTheBackendHasThem) {
  make_device(/*offloads=*/false);
  const std::uint64_t plain = device_->features();
  EXPECT_EQ(plain, kMergeable);
  device_.reset();
  SetUp();
  make_device(/*offloads=*/true);
  const std::uint64_t offloads = bit(kNetFeatureCsum) | bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestTso4) |
                                 bit(kNetFeatureGuestTso6) | bit(kNetFeatureGuestEcn) | bit(kNetFeatureHostTso4) |
                                 bit(kNetFeatureHostTso6) | bit(kNetFeatureHostEcn);
  EXPECT_EQ(device_->features(), kMergeable | offloads);
  EXPECT_EQ(device_->features() & (bit(kNetFeatureGuestUfo) | bit(kNetFeatureHostUfo)), 0u);
}

TEST_F(NetDeviceTest, TransmittedFrameReachesTheBackendWithItsHeader) {
  make_device();
  activate();
  const auto packet = make_packet(60, 1);
  const std::uint16_t head = add_tx(packet, {kNetHeaderSize, 20});
  device_->notify(NetDevice::kTxQueue);
  drain();

  auto sent = receive();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(*sent, packet);  // header untouched, payload gathered in order
  EXPECT_FALSE(receive().has_value());
  EXPECT_EQ(tx_->used_idx(), 1);
  EXPECT_EQ(tx_->used_elem(0), (VirtqUsedElem{head, 0}));
  EXPECT_GE(interrupt_.used, 1);
  const auto stats = device_->stats();
  EXPECT_EQ(stats.tx_frames, 1u);
  EXPECT_EQ(stats.tx_bytes, 60u);
}

TEST_F(NetDeviceTest, TransmitsSeveralFramesIncludingIndirectChainsInOrder) {
  make_device();
  activate();
  const auto first = make_packet(100, 1);
  const auto second = make_packet(1500, 2);
  const auto third = make_packet(10, 3);
  add_tx(first);
  add_tx(second, {kNetHeaderSize, 700, 300}, /*indirect=*/true);
  add_tx(third, {4});  // header split across descriptors
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(receive(), first);
  EXPECT_EQ(receive(), second);
  EXPECT_EQ(receive(), third);
  EXPECT_EQ(tx_->used_idx(), 3);
  EXPECT_EQ(device_->stats().tx_frames, 3u);
}

TEST_F(NetDeviceTest, OversizedAndUndersizedTransmitFramesAreDroppedAndTheDeviceKeepsWorking) {
  make_device();
  activate();
  const auto oversized = make_packet(kNetMaxFrameSize + 1, 1);
  const std::uint16_t big = add_tx(oversized, {40000});
  std::vector<std::uint8_t> runt(kNetHeaderSize - 1, 0);
  const std::uint16_t small = add_tx(runt, {4});
  const auto good = make_packet(64, 2);
  const std::uint16_t fine = add_tx(good);
  device_->notify(NetDevice::kTxQueue);
  drain();

  EXPECT_EQ(receive(), good);
  EXPECT_FALSE(receive().has_value());
  ASSERT_EQ(tx_->used_idx(), 3);  // all returned to the driver, in order
  EXPECT_EQ(tx_->used_elem(0), (VirtqUsedElem{big, 0}));
  EXPECT_EQ(tx_->used_elem(1), (VirtqUsedElem{small, 0}));
  EXPECT_EQ(tx_->used_elem(2), (VirtqUsedElem{fine, 0}));
  EXPECT_TRUE(interrupt_.error_list().empty());
  const auto stats = device_->stats();
  EXPECT_EQ(stats.tx_dropped, 2u);
  EXPECT_EQ(stats.tx_frames, 1u);
}

TEST_F(NetDeviceTest, MaximalTransmitFrameIsSent) {
  make_device();
  activate();
  const auto packet = make_packet(kNetMaxFrameSize, 5);
  add_tx(packet, {kNetHeaderSize, 30000});
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(receive(), packet);
  EXPECT_EQ(device_->stats().tx_dropped, 0u);
}

TEST_F(NetDeviceTest, TransmitChainWithAWritableDescriptorIsADeviceError) {
  make_device();
  activate();
  const auto packet = make_packet(64, 1);
  std::vector<GuestAddress> addrs;
  tx_->add_chain({{kNetHeaderSize, false}, {64, true}}, &addrs);
  device_->notify(NetDevice::kTxQueue);
  drain();
  ASSERT_EQ(interrupt_.error_list().size(), 1u);
  EXPECT_NE(interrupt_.error_list()[0].find("device-writable"), std::string::npos) << interrupt_.error_list()[0];
  EXPECT_EQ(tx_->used_idx(), 0);
  EXPECT_FALSE(receive().has_value());

  // Stopped until reset: a good frame is not sent, a received one not delivered.
  add_tx(packet);
  device_->notify(NetDevice::kTxQueue);
  add_rx({2048});
  send(make_packet(64, 2));
  device_->notify(NetDevice::kRxQueue);
  drain();
  EXPECT_FALSE(receive().has_value());
  EXPECT_EQ(rx_->used_idx(), 0);
  EXPECT_EQ(interrupt_.error_list().size(), 1u);  // reported once
}

TEST_F(NetDeviceTest, MalformedTransmitRingIsADeviceError) {
  make_device();
  activate();
  tx_->write_desc(0, {0x10000, 64, 0, 0});
  tx_->write(GuestAddress(tx_->avail_ring().value + 4), std::uint16_t{kQueueSize});  // head beyond the table
  tx_->set_avail_idx(1);
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(interrupt_.error_list().size(), 1u);
}

TEST_F(NetDeviceTest, ReceivedFrameIsDeliveredWithNumBuffersSet) {
  make_device();
  activate();
  const RxChain chain = add_rx({1526});
  device_->notify(NetDevice::kRxQueue);
  const auto packet = make_packet(100, 9);
  send(packet);
  drain();

  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used_elem(0), (VirtqUsedElem{chain.head, static_cast<std::uint32_t>(packet.size())}));
  const auto delivered = read_rx(chain, packet.size());
  EXPECT_EQ(num_buffers_of(delivered), 1);
  auto expected = packet;
  expected[kNetNumBuffersOffset] = 1;
  expected[kNetNumBuffersOffset + 1] = 0;
  EXPECT_EQ(delivered, expected);  // the rest of the header as the backend wrote it
  EXPECT_GE(interrupt_.used, 1);
  const auto stats = device_->stats();
  EXPECT_EQ(stats.rx_frames, 1u);
  EXPECT_EQ(stats.rx_bytes, 100u);
}

TEST_F(NetDeviceTest, ReceivedFrameFillsAChainOfSeveralDescriptors) {
  make_device();
  activate(kCommon);  // no MRG_RXBUF: one chain, however many descriptors
  const RxChain chain = add_rx({kNetHeaderSize, 50, 2000});
  const auto packet = make_packet(1000, 3);
  send(packet);
  drain();
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used_elem(0).len, packet.size());
  auto delivered = read_rx(chain, packet.size());
  EXPECT_EQ(num_buffers_of(delivered), 1);
  delivered[kNetNumBuffersOffset] = packet[kNetNumBuffersOffset];
  delivered[kNetNumBuffersOffset + 1] = packet[kNetNumBuffersOffset + 1];
  EXPECT_EQ(delivered, packet);
}

TEST_F(NetDeviceTest, BigReceivedFrameIsSpreadOverMergeableBuffers) {
  make_device();
  activate(kMergeable);
  std::vector<RxChain> chains;
  for (int i = 0; i < 10; ++i) chains.push_back(add_rx({4096}));
  const auto packet = make_packet(30000, 4);  // 30012 bytes: 7 full buffers and 1348 bytes in the 8th
  send(packet);
  drain();

  ASSERT_EQ(rx_->used_idx(), 8);
  std::vector<std::uint8_t> delivered;
  for (std::uint16_t i = 0; i < 8; ++i) {
    const VirtqUsedElem used = rx_->used_elem(i);
    EXPECT_EQ(used.id, chains[i].head);
    EXPECT_EQ(used.len, i < 7 ? 4096u : 30012u - 7 * 4096u);
    const auto part = read_rx(chains[i], used.len);
    delivered.insert(delivered.end(), part.begin(), part.end());
  }
  EXPECT_EQ(num_buffers_of(delivered), 8);
  delivered[kNetNumBuffersOffset] = packet[kNetNumBuffersOffset];
  delivered[kNetNumBuffersOffset + 1] = packet[kNetNumBuffersOffset + 1];
  EXPECT_EQ(delivered, packet);

  // The two buffers left take the next frame.
  const auto next = make_packet(20, 5);
  send(next);
  drain();
  ASSERT_EQ(rx_->used_idx(), 9);
  EXPECT_EQ(rx_->used_elem(8).id, chains[8].head);
  EXPECT_EQ(num_buffers_of(read_rx(chains[8], next.size())), 1);
  EXPECT_EQ(device_->stats().rx_frames, 2u);
}

TEST_F(NetDeviceTest, MergeableFrameWaitsForEnoughBuffers) {
  make_device();
  activate(kMergeable);
  add_rx({2048});
  const auto packet = make_packet(3000, 6);
  send(packet);
  drain();
  EXPECT_EQ(rx_->used_idx(), 0);  // one buffer is not enough: nothing is returned half-filled

  const RxChain second = add_rx({2048});
  device_->notify(NetDevice::kRxQueue);
  drain();
  ASSERT_EQ(rx_->used_idx(), 2);
  EXPECT_EQ(rx_->used_elem(1).id, second.head);
  EXPECT_EQ(rx_->used_elem(0).len + rx_->used_elem(1).len, packet.size());
}

TEST_F(NetDeviceTest, WithoutMergeableBuffersAFrameLargerThanTheChainIsDropped) {
  make_device();
  activate(kCommon);
  const RxChain chain = add_rx({1000});
  send(make_packet(2000, 1));
  const auto small = make_packet(500, 2);
  send(small);
  drain();

  const auto stats = device_->stats();
  EXPECT_EQ(stats.rx_dropped, 1u);
  EXPECT_EQ(stats.rx_frames, 1u);
  ASSERT_EQ(rx_->used_idx(), 1);  // the chain was kept for the frame that fits
  EXPECT_EQ(rx_->used_elem(0), (VirtqUsedElem{chain.head, static_cast<std::uint32_t>(small.size())}));
  EXPECT_EQ(read_rx(chain, small.size())[kNetHeaderSize + 5], small[kNetHeaderSize + 5]);
  EXPECT_TRUE(interrupt_.error_list().empty());
}

TEST_F(NetDeviceTest, MergeableFrameLargerThanTheWholeQueueIsDropped) {
  rx_.emplace(4, 2 * MockVirtqDriver::kMemorySize);
  tx_.emplace(4, *rx_, MockVirtqDriver::kMemorySize);
  make_device();
  activate(kMergeable);
  for (int i = 0; i < 4; ++i) add_rx({100});
  send(make_packet(1000, 1));  // needs 11 buffers of 100: the queue has only 4
  const auto small = make_packet(50, 2);
  send(small);
  drain();
  EXPECT_EQ(device_->stats().rx_dropped, 1u);
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used_elem(0).len, small.size());
}

TEST_F(NetDeviceTest, FrameWaitsForBuffersAndTheBackendIsNotReadMeanwhile) {
  make_device();
  activate();
  const auto first = make_packet(200, 1);
  const auto second = make_packet(300, 2);
  send(first);
  send(second);
  drain();
  EXPECT_EQ(rx_->used_idx(), 0);
  EXPECT_EQ(device_->stats().rx_dropped, 0u);
  // The first frame is held; the second is still in the backend.
  EXPECT_EQ(pending_towards_device(), static_cast<ssize_t>(second.size()));
  EXPECT_EQ(drain(), 0u);  // and nothing runs while the device waits for the driver

  const RxChain a = add_rx({1526});
  const RxChain b = add_rx({1526});
  device_->notify(NetDevice::kRxQueue);
  drain();
  ASSERT_EQ(rx_->used_idx(), 2);
  EXPECT_EQ(rx_->used_elem(0), (VirtqUsedElem{a.head, static_cast<std::uint32_t>(first.size())}));
  EXPECT_EQ(rx_->used_elem(1), (VirtqUsedElem{b.head, static_cast<std::uint32_t>(second.size())}));
  EXPECT_EQ(read_rx(b, second.size())[kNetHeaderSize + 1], second[kNetHeaderSize + 1]);
  EXPECT_EQ(pending_towards_device(), -1);
  EXPECT_EQ(device_->stats().rx_frames, 2u);
}

TEST_F(NetDeviceTest, EmptyBackendDoesNotSpin) {
  make_device();
  activate();
  add_rx({1526});
  EXPECT_LE(drain(), 2u);  // the activation's pass, then only a wait for readability
  io_.restart();
  EXPECT_EQ(io_.run_for(std::chrono::milliseconds(50)), 0u);  // a busy loop would run handlers here
  EXPECT_EQ(rx_->used_idx(), 0);

  send(make_packet(64, 1));  // and the wait does fire on data
  drain();
  EXPECT_EQ(rx_->used_idx(), 1);
}

TEST_F(NetDeviceTest, ManyReceivedFramesAreDeliveredInBatches) {
  make_device();
  activate();
  constexpr int kFrames = 150;  // more than one handler's budget
  for (int i = 0; i < kFrames; ++i) add_rx({256});
  for (int i = 0; i < kFrames; ++i) send(make_packet(40, static_cast<std::uint8_t>(i)));
  drain();
  EXPECT_EQ(rx_->used_idx(), kFrames);
  EXPECT_EQ(device_->stats().rx_frames, static_cast<std::uint64_t>(kFrames));
}

TEST_F(NetDeviceTest, ReceiveChainWithAReadableDescriptorIsADeviceError) {
  make_device();
  activate();
  rx_->add_chain({{16, false}, {1526, true}});
  send(make_packet(64, 1));
  drain();
  ASSERT_EQ(interrupt_.error_list().size(), 1u);
  EXPECT_NE(interrupt_.error_list()[0].find("device-readable"), std::string::npos) << interrupt_.error_list()[0];
  EXPECT_EQ(rx_->used_idx(), 0);
}

TEST_F(NetDeviceTest, MergeableBufferSmallerThanTheHeaderIsADeviceError) {
  make_device();
  activate(kMergeable);
  add_rx({8});
  send(make_packet(64, 1));
  drain();
  EXPECT_EQ(interrupt_.error_list().size(), 1u);
  EXPECT_EQ(rx_->used_idx(), 0);
}

TEST_F(NetDeviceTest, TransmitWaitsForTheBackendToDrainWithoutSpinning) {
  make_device();
  // Fill the fake TAP towards the peer until it pushes back.
  const std::vector<std::uint8_t> filler(4096, 0);
  int queued = 0;
  while (::send(backend_fd_, filler.data(), filler.size(), MSG_DONTWAIT) > 0) ++queued;
  ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  activate();
  const auto packet = make_packet(100, 7);
  add_tx(packet);
  const auto later = make_packet(50, 8);
  add_tx(later);
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(tx_->used_idx(), 0);  // kept, not dropped
  EXPECT_EQ(device_->stats().tx_dropped, 0u);
  io_.restart();
  EXPECT_EQ(io_.run_for(std::chrono::milliseconds(50)), 0u);  // waiting, not retrying
  device_->notify(NetDevice::kTxQueue);                       // a kick meanwhile changes nothing
  drain();
  EXPECT_EQ(tx_->used_idx(), 0);

  for (int i = 0; i < queued; ++i) ASSERT_TRUE(receive().has_value());
  drain();
  EXPECT_EQ(receive(), packet);
  EXPECT_EQ(receive(), later);
  EXPECT_EQ(tx_->used_idx(), 2);
  EXPECT_EQ(device_->stats().tx_frames, 2u);
}

TEST_F(NetDeviceTest, ResetDropsAPendingFrameAndReactivationWorks) {
  make_device();
  activate();
  send(make_packet(100, 1));  // no buffers: the frame is held
  drain();
  reset();
  EXPECT_EQ(device_->stats().rx_dropped, 1u);
  drain();

  make_drivers();
  activate();
  const RxChain chain = add_rx({1526});
  device_->notify(NetDevice::kRxQueue);
  const auto packet = make_packet(80, 2);
  send(packet);
  drain();
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used_elem(0), (VirtqUsedElem{chain.head, static_cast<std::uint32_t>(packet.size())}));
  EXPECT_EQ(read_rx(chain, packet.size())[kNetHeaderSize], packet[kNetHeaderSize]);

  const auto out = make_packet(30, 3);
  add_tx(out);
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(receive(), out);
}

TEST_F(NetDeviceTest, ResetDropsABlockedTransmitFrame) {
  make_device();
  const std::vector<std::uint8_t> filler(4096, 0);
  int queued = 0;
  while (::send(backend_fd_, filler.data(), filler.size(), MSG_DONTWAIT) > 0) ++queued;
  activate();
  add_tx(make_packet(100, 1));
  device_->notify(NetDevice::kTxQueue);
  drain();
  reset();
  EXPECT_EQ(device_->stats().tx_dropped, 1u);
  for (int i = 0; i < queued; ++i) ASSERT_TRUE(receive().has_value());
  drain();  // the old writability wait fires and finds nothing to do
  EXPECT_FALSE(receive().has_value());

  make_drivers();
  activate();
  const auto packet = make_packet(40, 2);
  add_tx(packet);
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(receive(), packet);
}

TEST_F(NetDeviceTest, ResetAfterADeviceErrorRestoresService) {
  make_device();
  activate();
  tx_->add_chain({{64, true}});
  device_->notify(NetDevice::kTxQueue);
  drain();
  ASSERT_EQ(interrupt_.error_list().size(), 1u);
  reset();
  make_drivers();
  activate();
  const auto packet = make_packet(40, 2);
  add_tx(packet);
  device_->notify(NetDevice::kTxQueue);
  drain();
  EXPECT_EQ(receive(), packet);
}

TEST_F(NetDeviceTest, NotificationQueuedBeforeAResetDoesNothingAfterIt) {
  make_device();
  activate();
  drain();
  add_tx(make_packet(40, 1));
  device_->notify(NetDevice::kTxQueue);  // not on the loop: queued
  reset();
  drain();
  EXPECT_FALSE(receive().has_value());
  EXPECT_EQ(tx_->used_idx(), 0);
}

TEST_F(NetDeviceTest, NotificationsBeforeActivationAreIgnored) {
  make_device();
  device_->notify(NetDevice::kTxQueue);
  device_->notify(NetDevice::kRxQueue);
  EXPECT_EQ(drain(), 0u);
}

TEST_F(NetDeviceTest, BuffersMadeAvailableBeforeDriverOkAreUsed) {
  make_device();
  // Rings set up and filled before activate (§3.1.1 lets the driver fill receive queues early).
  for (Queue& queue : queues_) queue.reset();
  rx_->configure(queues_[0], true, true);
  tx_->configure(queues_[1], true, true);
  const RxChain chain = add_rx({1526});
  const auto out = make_packet(30, 1);
  add_tx(out);
  ASSERT_TRUE(device_->activate(rx_->memory(), queues_, kMergeable, interrupt_).has_value());
  send(make_packet(60, 2));
  drain();
  EXPECT_EQ(receive(), out);
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used_elem(0).id, chain.head);
}

TEST_F(NetDeviceTest, ClosedBackendStopsReceiveWithoutSpinning) {
  make_device();
  activate();
  add_rx({1526});
  peer_.reset();  // the fake TAP goes away: reads return EOF
  EXPECT_LT(drain(), 10u);
  io_.restart();
  EXPECT_EQ(io_.run_for(std::chrono::milliseconds(20)), 0u);
  EXPECT_EQ(rx_->used_idx(), 0);
  EXPECT_TRUE(interrupt_.error_list().empty());  // not the driver's fault
}

TEST_F(NetDeviceTest, BackendThatCannotBePolledFailsActivation) {
  UniqueFd file(::open("/dev/null", O_RDWR | O_CLOEXEC));  // epoll refuses /dev/null
  ASSERT_TRUE(file.valid());
  device_.emplace(io_.get_executor(), std::move(file), kMac, false, nullptr);
  auto active = try_activate(kMergeable);
  ASSERT_FALSE(active.has_value());
  EXPECT_NE(active.error().message.find("backend"), std::string::npos) << active.error().message;
}

TEST_F(NetDeviceTest, ConfigSpaceHoldsMacAndLinkStatusAtAnyOffsetAndWidth) {
  make_device();
  std::array<std::uint8_t, 6> mac{};
  device_->read_config(kNetConfigMacOffset, mac);
  EXPECT_EQ(mac, kMac);

  std::array<std::uint8_t, 2> two{};
  device_->read_config(5, two);  // last MAC byte and the low byte of status
  EXPECT_EQ(two, (std::array<std::uint8_t, 2>{kMac[5], kNetStatusLinkUp}));
  device_->read_config(kNetConfigStatusOffset, two);
  EXPECT_EQ(two[0] | (two[1] << 8), kNetStatusLinkUp);
  std::array<std::uint8_t, 1> one{0xff};
  device_->read_config(7, one);
  EXPECT_EQ(one[0], 0);
  device_->read_config(kNetConfigMaxPairsOffset, two);
  EXPECT_EQ(two[0] | (two[1] << 8), 1);

  std::array<std::uint8_t, 8> across{};  // straddles the end of the fields: zeros beyond
  across.fill(0xff);
  device_->read_config(kNetConfigSize - 2, across);
  EXPECT_EQ(across, (std::array<std::uint8_t, 8>{}));
  std::array<std::uint8_t, 4> far{0xff, 0xff, 0xff, 0xff};
  device_->read_config(UINT64_MAX - 1, far);  // offset + width wraps: still zeros, no overflow
  EXPECT_EQ(far, (std::array<std::uint8_t, 4>{}));

  const std::array<std::uint8_t, 8> junk{9, 9, 9, 9, 9, 9, 9, 9};
  device_->write_config(0, junk);  // read-only
  device_->write_config(UINT64_MAX, junk);
  device_->read_config(kNetConfigMacOffset, mac);
  EXPECT_EQ(mac, kMac);
}

TEST_F(NetDeviceTest, OffloadFlagsMatchTheAckedGuestFeatures) {
  make_device(true);
  activate(kMergeable);
  ASSERT_EQ(offload_calls_.size(), 1u);
  EXPECT_EQ(offload_calls_[0], 0u);
  reset();

  activate(kMergeable | bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestTso4) | bit(kNetFeatureGuestEcn) |
           bit(kNetFeatureCsum) | bit(kNetFeatureHostTso6));
  ASSERT_EQ(offload_calls_.size(), 2u);
  EXPECT_EQ(offload_calls_[1], static_cast<unsigned>(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN));
  reset();

  activate(kMergeable | bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestTso6));
  ASSERT_EQ(offload_calls_.size(), 3u);
  EXPECT_EQ(offload_calls_[2], static_cast<unsigned>(TUN_F_CSUM | TUN_F_TSO6));
}

TEST_F(NetDeviceTest, OffloadFeaturesWithoutTheirDependenciesFailActivation) {
  make_device(true);
  for (std::uint64_t broken : {bit(kNetFeatureGuestTso4), bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestEcn),
                               bit(kNetFeatureHostTso6), bit(kNetFeatureCsum) | bit(kNetFeatureHostEcn)}) {
    auto active = try_activate(kMergeable | broken);
    ASSERT_FALSE(active.has_value()) << broken;
    EXPECT_NE(active.error().message.find("5.1.3.1"), std::string::npos) << active.error().message;
  }
  EXPECT_TRUE(offload_calls_.empty());
}

TEST_F(NetDeviceTest, RefusedOffloadsFailActivation) {
  make_device(true);
  refuse_offloads_ = true;
  auto active = try_activate(kMergeable | bit(kNetFeatureGuestCsum));
  ASSERT_FALSE(active.has_value());
  EXPECT_NE(active.error().message.find("refused"), std::string::npos);
  send(make_packet(10, 1));
  EXPECT_EQ(drain(), 0u);  // not activated: nothing reads the backend
}

// The device goes away with work still queued on a loop that never runs again: its deferred
// transmit run, a readability wait on the backend with a frame ready behind it, and the close of the
// backend. Destroying the device must neither block nor crash; destroying the io_context then drops
// those handlers without running them (ASan reports any that touches freed memory), closes the
// backend (the peer sees EOF: nothing leaked the fd or the device's state), and nothing more moves.
TEST_F(NetDeviceTest, DestroyedWithoutTheLoopRunningAgain) {
  auto io = std::make_unique<boost::asio::io_context>();
  auto device = std::make_unique<NetDevice>(io->get_executor(), std::move(backend_), kMac, false, nullptr);
  rx_->configure(queues_[0], true, true);
  tx_->configure(queues_[1], true, true);
  for (unsigned i = 0; i < 2 * kNotifyBudget; ++i) add_tx(make_packet(40, static_cast<std::uint8_t>(i)));
  add_rx({2048});
  add_rx({2048});
  send(make_packet(64, 1));
  ASSERT_TRUE(device->activate(rx_->memory(), queues_, kMergeable, interrupt_).has_value());
  ASSERT_EQ(io->poll_one(), 1u);  // the activation's pass: one budget of frames out, one frame in
  EXPECT_EQ(tx_->used_idx(), kNotifyBudget);
  EXPECT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(device->stats().tx_frames, kNotifyBudget) << device->stats().tx_dropped;
  send(make_packet(64, 2));  // ready behind the armed readability wait
  const int interrupts = interrupt_.used.load();

  device.reset();  // the loop is not running: neither blocks nor crashes
  io.reset();      // the queued handlers are destroyed, not run

  EXPECT_EQ(tx_->used_idx(), kNotifyBudget);
  EXPECT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(interrupt_.used.load(), interrupts);
  EXPECT_EQ(frames_until_closed(), std::optional<std::size_t>(kNotifyBudget));  // and the backend is closed
  EXPECT_TRUE(interrupt_.error_list().empty());
}

TEST_F(NetDeviceTest, DestroyedThenLoopRunsAgain) {
  make_device();
  activate();
  drain();
  for (unsigned i = 0; i < 2 * kNotifyBudget; ++i) add_tx(make_packet(40, static_cast<std::uint8_t>(i)));
  device_->notify(NetDevice::kTxQueue);
  ASSERT_EQ(io_.poll_one(), 1u);  // one budget out; the rest is a deferred run, queued
  add_rx({2048});
  send(make_packet(64, 1));
  device_.reset();
  drain();  // the queued handlers run against a stopped device and the backend is closed
  EXPECT_EQ(tx_->used_idx(), kNotifyBudget);
  EXPECT_EQ(rx_->used_idx(), 0);
  // The device's end is closed: the peer sees EOF after what was sent.
  EXPECT_EQ(frames_until_closed(), std::optional<std::size_t>(kNotifyBudget));
}

// A frame whose payload starts with its sequence number, so order and losses show.
std::vector<std::uint8_t> numbered_packet(std::uint32_t number) {
  auto packet = make_packet(40 + number % 50, static_cast<std::uint8_t>(number));
  std::memcpy(packet.data() + kNetHeaderSize, &number, sizeof(number));
  return packet;
}
std::uint32_t number_of(std::span<const std::uint8_t> packet) {
  std::uint32_t number = 0;
  std::memcpy(&number, packet.data() + kNetHeaderSize, sizeof(number));
  return number;
}

constexpr std::uint32_t kManyFrames = 10'000;

// A driver that keeps the transmit ring full, notifying only when EVENT_IDX says it must (§2.7.10):
// each handler run sends at most kNotifyBudget frames and yields; the deferred runs carry on while
// the driver, seeing avail_event behind it, stays quiet. All 10 000 frames go out, in order, once.
TEST_F(NetDeviceTest, TransmitIsBudgetedAndNothingIsLostUnderEventIdx) {
  make_device();
  activate(kMergeable);
  drain();
  std::uint32_t posted = 0;
  std::uint32_t received = 0;
  int kicks = 0;
  const auto top_up = [&] {
    const std::uint16_t old = tx_->avail_idx();
    while (posted < kManyFrames && tx_->outstanding() < kQueueSize)
      add_tx(numbered_packet(posted++), {});  // one descriptor each
    if (tx_->avail_idx() != old && tx_->kick_needed(old, true)) {
      ++kicks;
      device_->notify(NetDevice::kTxQueue);
    }
  };
  top_up();
  for (int rounds = 0; received < kManyFrames; ++rounds) {
    ASSERT_LT(rounds, 100'000) << "stalled at " << received << " frames";
    io_.restart();
    const bool ran = io_.poll_one() == 1;
    std::uint32_t this_run = 0;
    while (auto frame = receive()) {
      ASSERT_EQ(number_of(*frame), received) << "out of order or lost";
      ++received;
      ++this_run;
    }
    EXPECT_LE(this_run, kNotifyBudget);
    if (!ran && this_run == 0 && tx_->outstanding() == 0 && posted == kManyFrames) break;
    top_up();
  }
  EXPECT_EQ(received, kManyFrames);
  EXPECT_EQ(tx_->used_idx(), static_cast<std::uint16_t>(kManyFrames));
  EXPECT_EQ(device_->stats().tx_frames, kManyFrames);
  EXPECT_LT(kicks, static_cast<int>(kManyFrames / kNotifyBudget));  // suppression worked: few notifications
  EXPECT_TRUE(interrupt_.error_list().empty());
}

// 10 000 frames arrive while the driver re-posts a receive buffer for each one it gets back: no
// handler run delivers more than kNotifyBudget, and every frame arrives, in order.
TEST_F(NetDeviceTest, ReceiveIsBudgetedAndNothingIsLost) {
  make_device();
  activate(kMergeable);
  drain();
  std::vector<RxChain> chains;  // by used-ring position
  std::uint32_t sent = 0;
  std::uint16_t seen_used = 0;
  const auto top_up = [&] {
    const std::uint16_t old = rx_->avail_idx();
    while (rx_->outstanding() < kQueueSize) chains.push_back(add_rx({2048}));
    if (rx_->avail_idx() != old && rx_->kick_needed(old, true)) device_->notify(NetDevice::kRxQueue);
    while (sent < kManyFrames && sent - seen_used < 200) send(numbered_packet(sent++));
  };
  top_up();
  std::uint32_t delivered = 0;
  for (int rounds = 0; delivered < kManyFrames; ++rounds) {
    ASSERT_LT(rounds, 100'000) << "stalled at " << delivered << " frames";
    io_.restart();
    io_.poll_one();
    const std::uint16_t used = rx_->used_idx();
    const auto this_run = static_cast<std::uint16_t>(used - seen_used);
    EXPECT_LE(this_run, kNotifyBudget);
    for (; seen_used != used; ++seen_used) {
      const VirtqUsedElem elem = rx_->used_elem(seen_used);
      const RxChain& chain = chains[seen_used];
      ASSERT_EQ(elem.id, chain.head);
      const auto frame = read_rx(chain, elem.len);
      ASSERT_EQ(number_of(frame), delivered) << "out of order or lost";
      ++delivered;
    }
    top_up();
  }
  EXPECT_EQ(device_->stats().rx_frames, kManyFrames);
  EXPECT_EQ(device_->stats().rx_dropped, 0u);
}

// The used idx as a driver polls it while the device runs on another thread (an atomic load, as the
// device's store is one: the mock's plain read would be a data race).
std::uint16_t polled_used_idx(const MockVirtqDriver& driver) {
  auto bytes = driver.memory().slice(GuestAddress(driver.used_ring().value + 2), sizeof(std::uint16_t));
  if (!bytes) return 0;
  return std::atomic_ref(*reinterpret_cast<std::uint16_t*>(bytes->data())).load(std::memory_order_acquire);
}

// The event loop runs on its own thread while this one plays the vCPU: activations, notifications
// and resets race with the handlers. Nothing may deadlock, crash or touch the queues after reset.
TEST_F(NetDeviceTest, ResetsRaceWithTheEventLoop) {
  make_device();
  auto guard = boost::asio::make_work_guard(io_);
  std::thread loop([this] { io_.run(); });
  for (int round = 0; round < 40; ++round) {
    make_drivers();
    // The rings are filled before DRIVER_OK: the mock driver's plain writes would race with the loop.
    for (int i = 0; i < 4; ++i) add_rx({2048});
    add_tx(make_packet(64, 1));
    activate();
    device_->notify(NetDevice::kRxQueue);
    for (int i = 0; i < 3; ++i) send(make_packet(100, static_cast<std::uint8_t>(i)));
    device_->notify(NetDevice::kTxQueue);
    if (round % 2 == 0) {  // sometimes let it finish, sometimes reset mid-flight
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while ((polled_used_idx(*rx_) < 3 || polled_used_idx(*tx_) < 1) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      EXPECT_EQ(polled_used_idx(*rx_), 3) << "round " << round;
      EXPECT_EQ(polled_used_idx(*tx_), 1) << "round " << round;
    }
    reset();
    // What was sent and not delivered stays in the backend: clear it (the device no longer reads).
    std::vector<std::uint8_t> leftover(kNetMaxPacketSize);
    while (::recv(backend_fd_, leftover.data(), leftover.size(), MSG_DONTWAIT) > 0) {
    }
    while (receive().has_value()) {
    }
  }
  guard.reset();
  device_.reset();
  io_.stop();
  loop.join();
  EXPECT_TRUE(interrupt_.error_list().empty());
}

}  // namespace
}  // namespace microvm::devices::virtio
