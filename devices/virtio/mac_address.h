// An Ethernet MAC address (IEEE 802) and its one text form, "02:4d:56:00:00:01": what virtio-net's
// configuration space carries (virtio 1.2 §5.1.4 mac), and what the CLI (--net mac=), the API
// (guest_mac) and the config file accept and print.
//
// MacAddress is a plain std::array so that callers build one with braces and compare with ==.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace microvm::devices::virtio {

inline constexpr std::size_t kMacAddressBytes = 6;  // §5.1.4 u8 mac[6]
using MacAddress = std::array<std::uint8_t, kMacAddressBytes>;

// Strict: six two-digit hex octets (either case) separated by ':', nothing before or after. Refuses
// multicast addresses (IEEE 802 I/G bit: bit 0 of the first octet, so broadcast too) and the
// all-zero address, which no interface can have. `field` names the value in the message, e.g.
// "`guest_mac`": "`guest_mac` must look like 06:00:ac:10:00:02 ..., got the malformed `06:00:ac`".
Result<MacAddress> parse_mac(std::string_view text, std::string_view field = "MAC address");

// Lower-case hex, the form parse_mac accepts: parse_mac(format_mac(mac)) == mac for every unicast mac.
std::string format_mac(const MacAddress& mac);

}  // namespace microvm::devices::virtio
