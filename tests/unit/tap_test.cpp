// The TAP backend of virtio-net. Name checks run everywhere; the tests that create an interface
// need /dev/net/tun and CAP_NET_ADMIN and skip (saying why) without them. They create a
// non-persistent "mvmtest%d" interface, which the kernel removes when its fds close; they never
// configure it or send traffic through it.
#include "devices/virtio/tap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

namespace microvm::devices::virtio {
namespace {

constexpr const char* kTestName = "mvmtest%d";

// A TAP for the test, or the reason there cannot be one here.
std::optional<Tap> open_test_tap(std::string& skip_reason) {
  UniqueFd probe(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!probe.valid()) {
    skip_reason = std::string("cannot open /dev/net/tun: ") + std::strerror(errno);
    return std::nullopt;
  }
  auto tap = Tap::open(kTestName);
  if (!tap) {
    if (tap.error().message.find("CAP_NET_ADMIN") != std::string::npos) {
      skip_reason = tap.error().message;
    } else {
      ADD_FAILURE() << tap.error().message;
    }
    return std::nullopt;
  }
  return std::move(*tap);
}

bool interface_exists(const std::string& name) {
  return ::if_nametoindex(name.c_str()) != 0;
}

// Interface removal follows the last close; give the kernel a moment.
bool interface_gone(const std::string& name) {
  for (int i = 0; i < 100; ++i) {
    if (!interface_exists(name)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(TapTest, RejectsNamesLinuxWouldRefuse) {
  for (const char* name : {"", "sixteen-chars-xx", "a/b", "a:b", "a b", ".", ".."}) {
    auto tap = Tap::open(name);
    ASSERT_FALSE(tap.has_value()) << name;
    EXPECT_NE(tap.error().message.find("name"), std::string::npos) << tap.error().message;
  }
  auto tap = Tap::open("sixteen-chars-xx");
  ASSERT_FALSE(tap.has_value());
  EXPECT_NE(tap.error().message.find("at most 15"), std::string::npos) << tap.error().message;
}

TEST(TapTest, OpensANonBlockingTapWithTheVirtioNetHeader) {
  std::string skip;
  auto tap = open_test_tap(skip);
  if (!tap) {
    if (!skip.empty()) GTEST_SKIP() << skip;
    return;
  }
  const std::string name = tap->name();
  EXPECT_EQ(name.rfind("mvmtest", 0), 0u) << name;
  EXPECT_EQ(name.find('%'), std::string::npos) << name;  // the kernel numbered it
  EXPECT_TRUE(interface_exists(name));

  ASSERT_GE(tap->fd(), 0);
  EXPECT_NE(::fcntl(tap->fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(tap->fd(), F_GETFD) & FD_CLOEXEC, 0);
  int header_size = 0;
  ASSERT_EQ(::ioctl(tap->fd(), TUNGETVNETHDRSZ, &header_size), 0);
  EXPECT_EQ(header_size, 12);
  ifreq request{};
  ASSERT_EQ(::ioctl(tap->fd(), TUNGETIFF, &request), 0);
  EXPECT_EQ(request.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
  EXPECT_EQ(request.ifr_flags & IFF_TUN, 0);

  // The interface is down: nothing to read, and the read does not block.
  std::array<char, 2048> buffer{};
  EXPECT_LT(::read(tap->fd(), buffer.data(), buffer.size()), 0);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK || errno == EIO) << std::strerror(errno);

  EXPECT_TRUE(tap->set_offloads(0).has_value());
  if (tap->supports_offloads()) {
    EXPECT_TRUE(tap->set_offloads(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6).has_value());
    // TSO without checksum offload is refused by the kernel, and the error says so.
    auto refused = tap->set_offloads(TUN_F_TSO4);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message.find(name), std::string::npos) << refused.error().message;
  }

  // The released fd and the Tap's own keep the interface; set_offloads still works.
  UniqueFd released = tap->release();
  EXPECT_TRUE(released.valid());
  EXPECT_EQ(tap->fd(), -1);
  EXPECT_TRUE(tap->set_offloads(0).has_value());
  released.reset();
  EXPECT_TRUE(interface_exists(name));
  tap.reset();
  EXPECT_TRUE(interface_gone(name)) << name << " outlived its fds";
}

TEST(TapTest, AnInterfaceInUseIsReportedAsSuch) {
  std::string skip;
  auto tap = open_test_tap(skip);
  if (!tap) {
    if (!skip.empty()) GTEST_SKIP() << skip;
    return;
  }
  auto second = Tap::open(tap->name());
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  const std::string name = tap->name();
  tap.reset();
  EXPECT_TRUE(interface_gone(name));
}

}  // namespace
}  // namespace microvm::devices::virtio
