// MacAddress, parse_mac and format_mac (devices/virtio/mac_address.h): the one MAC text form the CLI,
// the API and virtio-net share. Strict parsing (six two-digit hex octets and ':'), multicast and
// all-zero addresses refused with messages naming the field, and formatting that parses back.
#include "devices/virtio/mac_address.h"

#include <gtest/gtest.h>

#include <string>

namespace microvm::devices::virtio {
namespace {

constexpr MacAddress kMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

TEST(ParseMacTest, AcceptsUnicastAddresses) {
  auto mac = parse_mac("02:00:00:00:00:01");
  ASSERT_TRUE(mac.has_value()) << mac.error().message;
  EXPECT_EQ(*mac, kMac);
  mac = parse_mac("0A:bC:de:F0:12:34");
  ASSERT_TRUE(mac.has_value()) << mac.error().message;
  EXPECT_EQ(*mac, (MacAddress{0x0a, 0xbc, 0xde, 0xf0, 0x12, 0x34}));
}

TEST(ParseMacTest, RejectsMalformedText) {
  for (const char* text :
       {"", "02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01", "0g:00:00:00:00:01", " 02:00:00:00:00:01",
        "02:00:00:00:00:1", "2:00:00:00:00:001", "02:00:00:00:00:01 ", "02:00:00:00:00:0x", "020000000001",
        "02:00:00:00:00+01", "+2:00:00:00:00:01", "02:00:00:00:00:-1", "02::00:00:00:00:1"}) {
    auto mac = parse_mac(text);
    ASSERT_FALSE(mac.has_value()) << text;
    EXPECT_NE(mac.error().message.find("malformed"), std::string::npos) << mac.error().message;
  }
  // A NUL inside the text is not the end of it.
  EXPECT_FALSE(parse_mac(std::string_view("02:00:00:00:00:0\0", 17)).has_value());
}

TEST(ParseMacTest, RejectsMulticastAndZeroAddresses) {
  for (const char* text : {"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "03:00:00:00:00:01"}) {
    auto mac = parse_mac(text);
    ASSERT_FALSE(mac.has_value()) << text;
    EXPECT_NE(mac.error().message.find("multicast"), std::string::npos) << mac.error().message;
  }
  EXPECT_FALSE(parse_mac("00:00:00:00:00:00").has_value());
}

// The messages the API gives for guest_mac (api/handler.cpp check_mac, its tests) come out of
// parse_mac when it is told the field's name.
TEST(ParseMacTest, MessagesNameTheField) {
  auto mac = parse_mac("06:00:ac:10:00", "`guest_mac`");
  ASSERT_FALSE(mac.has_value());
  EXPECT_EQ(mac.error().message,
            "`guest_mac` must look like 06:00:ac:10:00:02 (six two-digit hex octets separated by ':'), got the "
            "malformed `06:00:ac:10:00`");
  mac = parse_mac("01:00:5e:00:00:01", "`guest_mac`");
  ASSERT_FALSE(mac.has_value());
  EXPECT_EQ(mac.error().message,
            "`guest_mac` `01:00:5e:00:00:01` is a multicast address (the first octet must be even)");
  mac = parse_mac("00:00:00:00:00:00");
  ASSERT_FALSE(mac.has_value());
  EXPECT_EQ(mac.error().message,
            "MAC address `00:00:00:00:00:00` is all zeros: use a unicast address such as 06:00:ac:10:00:02");
}

TEST(ParseMacTest, LongGarbageIsQuotedShort) {
  const std::string text(10000, 'x');
  auto mac = parse_mac(text);
  ASSERT_FALSE(mac.has_value());
  EXPECT_LT(mac.error().message.size(), 200u);
  EXPECT_NE(mac.error().message.find("...`"), std::string::npos) << mac.error().message;
}

TEST(FormatMacTest, LowerCaseHexThatParsesBack) {
  EXPECT_EQ(format_mac(kMac), "02:00:00:00:00:01");
  const MacAddress mixed{0x0a, 0xbc, 0xde, 0xf0, 0x12, 0x34};
  EXPECT_EQ(format_mac(mixed), "0a:bc:de:f0:12:34");
  for (unsigned first = 0; first < 256; first += 2) {  // every unicast first octet
    const MacAddress mac{static_cast<std::uint8_t>(first), 0x4d, 0x56, 0x00, 0xff, 0x01};
    auto back = parse_mac(format_mac(mac));
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(*back, mac);
  }
}

}  // namespace
}  // namespace microvm::devices::virtio
