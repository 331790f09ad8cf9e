// The status-port register layout (guest/protocol/status_port.h) shared by microvm-init and the VMM,
// and the IPv4 helpers behind the init's network setup (guest/protocol/ipv4.h).
#include <gtest/gtest.h>

#include "guest/protocol/ipv4.h"
#include "guest/protocol/status_port.h"

namespace microvm::guest {
namespace {

namespace sp = status_port;

TEST(InitStatusPort, Layout) {
  EXPECT_EQ(sp::kBase, 0x5a0);
  EXPECT_EQ(sp::kSize, 16);
  EXPECT_EQ(sp::kSpecLengthOffset, 4);
  EXPECT_EQ(sp::kSpecCursorOffset, 8);
  EXPECT_EQ(sp::kSpecDataOffset, 12);
  static_assert(sp::kSpecDataOffset < sp::kSize);
  EXPECT_EQ(sp::kPayloadMask, 0x00ffffffU);
  EXPECT_EQ(static_cast<int>(sp::Event::kInitStarted), 1);
  EXPECT_EQ(static_cast<int>(sp::Event::kWorkloadStarted), 2);
  EXPECT_EQ(static_cast<int>(sp::Event::kWorkloadExited), 3);
  EXPECT_EQ(static_cast<int>(sp::Event::kSpecWanted), 4);
}

TEST(InitStatusPort, EncodesEventAndPayload) {
  EXPECT_EQ(sp::encode(sp::Event::kInitStarted, 0), 0x01000000U);
  EXPECT_EQ(sp::encode(sp::Event::kWorkloadStarted, 42), 0x0200002aU);
  EXPECT_EQ(sp::encode(sp::Event::kWorkloadExited, 137), 0x03000089U);
  // A pid beyond 24 bits is truncated and never spills into the event byte.
  EXPECT_EQ(sp::encode(sp::Event::kWorkloadStarted, 0x12345678), 0x02345678U);
  constexpr std::uint32_t word = sp::encode(sp::Event::kWorkloadExited, 255);
  static_assert(sp::event_of(word) == 3 && sp::payload_of(word) == 255);
  EXPECT_EQ(sp::event_of(word), 3);
  EXPECT_EQ(sp::payload_of(word), 255U);
}

TEST(InitStatusPort, StopRequestedIsBitZeroUnlessNoDevice) {
  EXPECT_FALSE(sp::stop_requested(0));
  EXPECT_TRUE(sp::stop_requested(1));
  EXPECT_FALSE(sp::stop_requested(2));
  EXPECT_TRUE(sp::stop_requested(3));
  EXPECT_FALSE(sp::stop_requested(0xffffffffU));  // an unclaimed port reads all ones
}

TEST(InitNet, ParsesAndFormatsIpv4) {
  EXPECT_EQ(parse_ipv4("169.254.0.2"), Ipv4Address{0xa9fe0002});
  EXPECT_EQ(parse_ipv4("0.0.0.0"), Ipv4Address{0});
  EXPECT_EQ(parse_ipv4("255.255.255.255"), Ipv4Address{0xffffffff});
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "1.2.3.256", "1.2.3.04", "1..3.4", "1.2.3.4 ", "a.b.c.d",
                          "-1.2.3.4", "+1.2.3.4", "1.2.3.", ".1.2.3"}) {
    EXPECT_EQ(parse_ipv4(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(to_string(Ipv4Address{0xa9fe0002}), "169.254.0.2");
  EXPECT_EQ(to_string(Ipv4Cidr{Ipv4Address{0x0a000002}, 24}), "10.0.0.2/24");
  EXPECT_EQ(parse_ipv4_cidr("10.0.0.2/24"), (Ipv4Cidr{Ipv4Address{0x0a000002}, 24}));
  EXPECT_EQ(parse_ipv4_cidr("10.0.0.2/33"), std::nullopt);
}

TEST(InitNet, NetmasksAndSubnets) {
  EXPECT_EQ(prefix_netmask(0), Ipv4Address{0});
  EXPECT_EQ(prefix_netmask(1), Ipv4Address{0x80000000});
  EXPECT_EQ(prefix_netmask(16), Ipv4Address{0xffff0000});
  EXPECT_EQ(prefix_netmask(31), Ipv4Address{0xfffffffe});
  EXPECT_EQ(prefix_netmask(32), Ipv4Address{0xffffffff});
  const Ipv4Cidr net = *parse_ipv4_cidr("169.254.0.2/16");
  EXPECT_TRUE(in_subnet(net, *parse_ipv4("169.254.255.1")));
  EXPECT_FALSE(in_subnet(net, *parse_ipv4("169.255.0.1")));
}

TEST(InitNet, ResolvConf) {
  EXPECT_EQ(render_resolv_conf({}), "");
  EXPECT_EQ(render_resolv_conf({*parse_ipv4("169.254.0.1"), *parse_ipv4("10.0.0.53")}),
            "nameserver 169.254.0.1\nnameserver 10.0.0.53\n");
}

}  // namespace
}  // namespace microvm::guest
