#include "devices/virtio/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "devices/virtio/net.h"

namespace microvm::devices::virtio {

// The kernel reads the vnet header in host byte order (no TUNSETVNETLE/BE): that is virtio 1.x's
// little-endian only on a little-endian host.
static_assert(std::endian::native == std::endian::little);

namespace {

constexpr const char* kTunPath = "/dev/net/tun";  // Documentation/networking/tuntap.rst
constexpr int kVnetHeaderSize = kNetHeaderSize;   // struct virtio_net_hdr_v1
constexpr unsigned kProbeOffloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

// What the kernel's dev_valid_name() refuses, checked here for a clearer message.
Result<void> check_name(std::string_view name) {
  if (name.empty()) return fail("the TAP interface name is empty: name one, e.g. tap0");
  if (name.size() > Tap::kMaxNameLength) {
    return fail("TAP interface name '{}' is {} characters long; Linux allows at most {}", name, name.size(),
                Tap::kMaxNameLength);
  }
  if (name == "." || name == "..") return fail("'{}' is not a valid interface name", name);
  const auto bad = std::find_if(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           c == '\0';
  });
  if (bad != name.end()) {
    return fail("TAP interface name '{}' contains '{}', which Linux does not allow in interface names", name, *bad);
  }
  return {};
}

}  // namespace

Result<Tap> Tap::open(std::string_view name) {
  TRY_VOID(check_name(name));
  UniqueFd fd(::open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      return fail("cannot open {}: {}; load the tun module (modprobe tun) or create the node (mknod {} c 10 200)",
                  kTunPath, errno_text(err), kTunPath);
    }
    if (err == EACCES || err == EPERM) {
      return fail("cannot open {}: {}; run as root, or give this user access to {}", kTunPath, errno_text(err),
                  kTunPath);
    }
    return fail("cannot open {}: {}", kTunPath, errno_text(err));
  }

  ifreq request{};
  std::copy(name.begin(), name.end(), request.ifr_name);  // fits: checked above, and {} zeroed the rest
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) {
    const int err = errno;
    switch (err) {
      case EPERM:
        return fail(
            "cannot attach to TAP interface {}: {}; creating or attaching needs CAP_NET_ADMIN: run as root, or "
            "create it beforehand for this user with `ip tuntap add dev {} mode tap user $USER vnet_hdr`",
            name, errno_text(err), name);
      case EBUSY:
        return fail("TAP interface {} is in use (another process has it open); pick another name or stop that process",
                    name);
      case EINVAL:
        return fail(
            "cannot attach to TAP interface {}: {}; an interface of another kind (or a multi-queue TAP) has this name: "
            "pick another name",
            name, errno_text(err));
      default: return fail("cannot attach to TAP interface {}: {}", name, errno_text(err));
    }
  }
  std::string actual(request.ifr_name, strnlen(request.ifr_name, sizeof(request.ifr_name)));

  int header_size = kVnetHeaderSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header_size) < 0) {
    return fail("TAP interface {}: setting the vnet header size to {} failed: {}", actual, header_size,
                errno_text(errno));
  }

  // Offloads are probed here and switched off again: NetDevice sets what the driver accepts.
  unsigned probe = kProbeOffloads;
  const bool offloads = ::ioctl(fd.get(), TUNSETOFFLOAD, probe) == 0;
  probe = 0;
  if (::ioctl(fd.get(), TUNSETOFFLOAD, probe) < 0) {
    return fail("TAP interface {}: clearing offloads failed: {}", actual, errno_text(errno));
  }

  UniqueFd control(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!control.valid()) return fail("TAP interface {}: duplicating its fd failed: {}", actual, errno_text(errno));
  return Tap(std::move(fd), std::move(control), std::move(actual), offloads);
}

Result<void> Tap::set_offloads(unsigned tun_flags) {
  if (::ioctl(control_.get(), TUNSETOFFLOAD, tun_flags) < 0) {
    return fail("TAP interface {}: TUNSETOFFLOAD {:#x} failed: {}", name_, tun_flags, errno_text(errno));
  }
  return {};
}

}  // namespace microvm::devices::virtio
