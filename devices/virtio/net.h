// virtio-net (virtio 1.2 §5.1): one receive queue, one transmit queue, no control queue, backed by an
// fd that behaves like a TAP opened with IFF_VNET_HDR and a 12-byte vnet header (devices/virtio/tap.h).
// Every frame on the backend and in the queues starts with struct virtio_net_hdr_v1 (§5.1.6: with
// VERSION_1 the header always has num_buffers), which the device passes through untouched on TX and
// completes (num_buffers) on RX. The guest's offload choices reach the backend through set_offloads.
//
// Work is budgeted (deferred_work.h): a notification, a backend-readiness callback or a deferred run
// moves at most kNotifyBudget transmit chains, or receive chains and dropped frames, then yields; the
// rest follows in a DeferredWork on `executor`.
//
// Threads (on top of the VirtioDevice contract): all backend I/O runs on `executor` (the VMM's event
// loop, one thread). activate/reset/notify only change state under the device mutex and post work to
// the executor; reset never waits for the loop. Every handler re-checks the state under the mutex, and
// handlers posted before a reset carry the activation epoch they were posted for and do nothing in a
// later one. The io_context behind `executor` must outlive the device; the device may be destroyed
// whether or not the loop still runs (the backend is closed on the loop, or when the io_context
// destroys the handlers that still refer to it). The GuestMemory, Queues and Interrupt given to
// activate must stay valid until reset() or the destructor returns.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/any_io_executor.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "devices/virtio/mac_address.h"
#include "devices/virtio/virtio_device.h"

namespace microvm::devices::virtio {

inline constexpr std::uint32_t kNetDeviceId = 1;         // §5.1.1 / <linux/virtio_ids.h> VIRTIO_ID_NET
inline constexpr std::size_t kNetHeaderSize = 12;        // §5.1.6 struct virtio_net_hdr (v1: with num_buffers)
inline constexpr std::size_t kNetNumBuffersOffset = 10;  // §5.1.6 virtio_net_hdr.num_buffers (le16)
// The largest frame (after the header) either way: a 64 KiB GSO payload behind a 14-byte Ethernet
// header (the 65562-byte buffer §5.1.6.3.1 asks big-packet drivers for, minus the header).
inline constexpr std::size_t kNetMaxFrameSize = 65536 + 14;
inline constexpr std::size_t kNetMaxPacketSize = kNetHeaderSize + kNetMaxFrameSize;  // header + frame

// Feature bits (§5.1.3; <linux/virtio_net.h> is not valid C++, so the numbers are repeated here).
inline constexpr unsigned kNetFeatureCsum = 0;       // VIRTIO_NET_F_CSUM: device handles partial checksums (TX)
inline constexpr unsigned kNetFeatureGuestCsum = 1;  // VIRTIO_NET_F_GUEST_CSUM: driver handles them (RX)
inline constexpr unsigned kNetFeatureMac = 5;        // VIRTIO_NET_F_MAC: config.mac is valid
inline constexpr unsigned kNetFeatureGuestTso4 = 7;  // VIRTIO_NET_F_GUEST_TSO4
inline constexpr unsigned kNetFeatureGuestTso6 = 8;  // VIRTIO_NET_F_GUEST_TSO6
inline constexpr unsigned kNetFeatureGuestEcn = 9;   // VIRTIO_NET_F_GUEST_ECN
inline constexpr unsigned kNetFeatureGuestUfo = 10;  // VIRTIO_NET_F_GUEST_UFO (never offered)
inline constexpr unsigned kNetFeatureHostTso4 = 11;  // VIRTIO_NET_F_HOST_TSO4
inline constexpr unsigned kNetFeatureHostTso6 = 12;  // VIRTIO_NET_F_HOST_TSO6
inline constexpr unsigned kNetFeatureHostEcn = 13;   // VIRTIO_NET_F_HOST_ECN
inline constexpr unsigned kNetFeatureHostUfo = 14;   // VIRTIO_NET_F_HOST_UFO (never offered)
inline constexpr unsigned kNetFeatureMrgRxbuf = 15;  // VIRTIO_NET_F_MRG_RXBUF: RX frames span buffers
inline constexpr unsigned kNetFeatureStatus = 16;    // VIRTIO_NET_F_STATUS: config.status is valid

// Configuration space (§5.1.4 struct virtio_net_config, little-endian): the fields we expose.
inline constexpr std::uint64_t kNetConfigMacOffset = 0;       // u8 mac[6]
inline constexpr std::uint64_t kNetConfigStatusOffset = 6;    // le16 status
inline constexpr std::uint64_t kNetConfigMaxPairsOffset = 8;  // le16 max_virtqueue_pairs
inline constexpr std::uint64_t kNetConfigMtuOffset = 10;      // le16 mtu (VIRTIO_NET_F_MTU: not offered)
inline constexpr std::size_t kNetConfigSize = 12;             // reads past this return zeros
inline constexpr std::uint16_t kNetStatusLinkUp = 1;          // §5.1.4 VIRTIO_NET_S_LINK_UP

class NetDevice final : public VirtioDevice {
 public:
  static constexpr std::uint16_t kRxQueue = 0;  // §5.1.2 receiveq1
  static constexpr std::uint16_t kTxQueue = 1;  // §5.1.2 transmitq1
  static constexpr std::size_t kQueueCount = 2;

  // backend: an fd that behaves like a TAP opened with IFF_VNET_HDR and TUNSETVNETHDRSZ = 12: each
  // read returns one frame prefixed by the 12-byte header, each write sends one (made non-blocking
  // here if it is not). offloads: offer the checksum and TSO features (only when the backend accepts
  // TUNSETOFFLOAD). set_offloads: called on activate with the TUN_F_* flags matching the GUEST_*
  // offloads the driver acked (0 for none); a failure fails the activation.
  NetDevice(boost::asio::any_io_executor executor, UniqueFd backend, MacAddress mac, bool offloads,
            std::function<Result<void>(unsigned)> set_offloads);
  ~NetDevice() override;
  NetDevice(const NetDevice&) = delete;
  NetDevice& operator=(const NetDevice&) = delete;

  struct Stats {
    std::uint64_t rx_frames, rx_bytes;  // delivered to the driver (bytes after the vnet header)
    std::uint64_t tx_frames, tx_bytes;  // written to the backend (bytes after the vnet header)
    std::uint64_t rx_dropped;           // read from the backend but not delivered
    std::uint64_t tx_dropped;           // taken from the driver but not written
  };
  [[nodiscard]] Stats stats() const;

  // What a snapshot keeps of the device beside its transport: the MAC the guest's driver read. A
  // frame read from the backend and not yet delivered is not kept (the network lost it); chains the
  // device held go back to the rings (chains_held).
  struct State {
    MacAddress mac{};

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const;
  // Before the transport's restore (the device is not active yet): the guest's MAC again.
  void restore(const State& state);

  [[nodiscard]] std::uint32_t device_id() const override { return kNetDeviceId; }
  [[nodiscard]] std::uint64_t features() const override { return features_; }
  [[nodiscard]] std::size_t queue_count() const override { return kQueueCount; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  [[nodiscard]] Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                      Interrupt& interrupt) override;
  void notify(std::uint16_t queue) override;
  void reset() override;
  // Receive chains taken for a frame not yet delivered; the transmit chain whose frame waits for
  // the backend.
  [[nodiscard]] std::uint16_t chains_held(std::uint16_t queue) override;

 private:
  class Core;  // the state the event loop's handlers share (they keep it alive)

  std::uint64_t features_;
  std::array<std::uint8_t, kNetConfigSize> config_{};
  std::shared_ptr<Core> core_;
};

}  // namespace microvm::devices::virtio
