// A Linux TAP interface (Documentation/networking/tuntap.rst) set up as virtio-net's backend: frames
// carry a 12-byte struct virtio_net_hdr_v1 (IFF_VNET_HDR + TUNSETVNETHDRSZ), no packet information
// (IFF_NO_PI), and the fd is non-blocking.
//
// Endianness: the header is little-endian (virtio 1.x). The kernel uses the host's byte order for it
// unless told otherwise, and this VMM only runs on little-endian x86-64 (static_assert in tap.cpp), so
// no TUNSETVNETLE is needed.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"

namespace microvm::devices::virtio {

class Tap {
 public:
  static constexpr std::size_t kMaxNameLength = 15;  // IFNAMSIZ (16) minus the terminating NUL

  // Attaches to the TAP interface `name`, creating it if it does not exist (it then disappears when
  // the last fd is closed, unless made persistent beforehand with `ip tuntap add`). `name` may
  // contain one "%d" for the kernel to number it (name() tells the result). Errors say what to do:
  // a missing /dev/net/tun, a missing CAP_NET_ADMIN, a name in use...
  static Result<Tap> open(std::string_view name);

  Tap(Tap&&) noexcept = default;
  Tap& operator=(Tap&&) noexcept = default;

  [[nodiscard]] int fd() const { return fd_.get(); }  // -1 after release()
  [[nodiscard]] const std::string& name() const { return name_; }
  // Whether TUNSETOFFLOAD accepted checksum and TSO offloads at open (then virtio-net may offer them).
  [[nodiscard]] bool supports_offloads() const { return offloads_; }
  // TUNSETOFFLOAD with TUN_F_* flags: the frames the kernel may hand us (partial checksums, TSO...).
  // Works after release() too: the Tap keeps a second fd on the same open file for these ioctls.
  Result<void> set_offloads(unsigned tun_flags);
  // Hands the data fd over (to NetDevice). The interface lives while this fd or the Tap is open.
  UniqueFd release() { return std::move(fd_); }

 private:
  Tap(UniqueFd fd, UniqueFd control, std::string name, bool offloads)
      : fd_(std::move(fd)), control_(std::move(control)), name_(std::move(name)), offloads_(offloads) {}

  UniqueFd fd_;       // frames
  UniqueFd control_;  // a dup of fd_, for ioctls after release()
  std::string name_;
  bool offloads_ = false;
};

}  // namespace microvm::devices::virtio
