// IPv4 text forms used by the spec ("169.254.0.2", "169.254.0.2/16") and the resolv.conf the init
// writes. Addresses are kept in host byte order; the system calls get htonl() of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace microvm::guest {

struct Ipv4Address {
  std::uint32_t value = 0;  // host byte order: 169.254.0.2 is 0xa9fe0002
  friend bool operator==(const Ipv4Address&, const Ipv4Address&) = default;
};

struct Ipv4Cidr {
  Ipv4Address address;
  unsigned prefix = 0;  // 0..32
  friend bool operator==(const Ipv4Cidr&, const Ipv4Cidr&) = default;
};

inline constexpr unsigned kIpv4MaxPrefix = 32;

// Dotted decimal, exactly four parts 0..255 without leading zeros ("01.2.3.4" is refused: it would
// be octal to inet_aton). nullopt when the text is anything else.
[[nodiscard]] std::optional<Ipv4Address> parse_ipv4(std::string_view text);
// "ADDRESS/PREFIX" with a prefix of 0..32 (required).
[[nodiscard]] std::optional<Ipv4Cidr> parse_ipv4_cidr(std::string_view text);

[[nodiscard]] std::string to_string(Ipv4Address address);
[[nodiscard]] std::string to_string(const Ipv4Cidr& cidr);

// The netmask of a prefix length, host byte order: 16 -> 255.255.0.0.
[[nodiscard]] Ipv4Address prefix_netmask(unsigned prefix);
// Whether `address` is inside the network of `cidr`.
[[nodiscard]] bool in_subnet(const Ipv4Cidr& cidr, Ipv4Address address);

// The /etc/resolv.conf for these name servers: one "nameserver A.B.C.D" line each.
[[nodiscard]] std::string render_resolv_conf(const std::vector<Ipv4Address>& servers);

}  // namespace microvm::guest
