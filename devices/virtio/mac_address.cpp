#include "devices/virtio/mac_address.h"

#include <algorithm>

namespace microvm::devices::virtio {

namespace {

constexpr std::size_t kTextLength = 3 * kMacAddressBytes - 1;  // "xx:" five times and "xx"
constexpr char kSeparator = ':';
constexpr std::uint8_t kMulticastBit = 0x01;  // IEEE 802: the I/G bit of the first octet
constexpr std::size_t kMaxQuoted = 64;        // how much of a bad value a message repeats
constexpr std::string_view kExample = "06:00:ac:10:00:02";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string quote(std::string_view text) {
  if (text.size() <= kMaxQuoted) return fmt::format("`{}`", text);
  return fmt::format("`{}...`", text.substr(0, kMaxQuoted));
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text, std::string_view field) {
  const auto malformed = [&] {
    return fail("{} must look like {} (six two-digit hex octets separated by ':'), got the malformed {}", field,
                kExample, quote(text));
  };
  if (text.size() != kTextLength) return malformed();
  MacAddress mac{};
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const int high = hex_value(text[3 * i]);
    const int low = hex_value(text[3 * i + 1]);
    if (high < 0 || low < 0) return malformed();
    if (i + 1 < mac.size() && text[3 * i + 2] != kSeparator) return malformed();
    mac[i] = static_cast<std::uint8_t>(high * 16 + low);
  }
  if ((mac[0] & kMulticastBit) != 0) {
    return fail("{} {} is a multicast address (the first octet must be even)", field, quote(text));
  }
  if (std::ranges::all_of(mac, [](std::uint8_t b) { return b == 0; })) {
    return fail("{} {} is all zeros: use a unicast address such as {}", field, quote(text), kExample);
  }
  return mac;
}

std::string format_mac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

}  // namespace microvm::devices::virtio
