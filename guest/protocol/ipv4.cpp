#include "guest/protocol/ipv4.h"

#include <charconv>

namespace microvm::guest {

namespace {

constexpr unsigned kIpv4Parts = 4;
constexpr unsigned kMaxOctet = 255;
constexpr unsigned kBitsPerOctet = 8;

// A decimal number without sign or leading zeros, at most `max`.
std::optional<unsigned> parse_decimal(std::string_view text, unsigned max) {
  if (text.empty() || (text.size() > 1 && text.front() == '0')) return std::nullopt;
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Ipv4Address> parse_ipv4(std::string_view text) {
  std::uint32_t value = 0;
  for (unsigned part = 0; part < kIpv4Parts; ++part) {
    const std::size_t dot = text.find('.');
    const bool last = part + 1 == kIpv4Parts;
    if (last != (dot == std::string_view::npos)) return std::nullopt;
    const auto octet = parse_decimal(text.substr(0, dot), kMaxOctet);
    if (!octet) return std::nullopt;
    value = (value << kBitsPerOctet) | *octet;
    if (!last) text.remove_prefix(dot + 1);
  }
  return Ipv4Address{value};
}

std::optional<Ipv4Cidr> parse_ipv4_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto address = parse_ipv4(text.substr(0, slash));
  const auto prefix = parse_decimal(text.substr(slash + 1), kIpv4MaxPrefix);
  if (!address || !prefix) return std::nullopt;
  return Ipv4Cidr{*address, *prefix};
}

std::string to_string(Ipv4Address address) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= static_cast<int>(kBitsPerOctet)) {
    out += std::to_string((address.value >> shift) & kMaxOctet);
    if (shift != 0) out += '.';
  }
  return out;
}

std::string to_string(const Ipv4Cidr& cidr) {
  return to_string(cidr.address) + "/" + std::to_string(cidr.prefix);
}

Ipv4Address prefix_netmask(unsigned prefix) {
  if (prefix == 0) return Ipv4Address{0};
  if (prefix >= kIpv4MaxPrefix) return Ipv4Address{0xffffffffU};
  return Ipv4Address{~((std::uint32_t{1} << (kIpv4MaxPrefix - prefix)) - 1)};
}

bool in_subnet(const Ipv4Cidr& cidr, Ipv4Address address) {
  const std::uint32_t mask = prefix_netmask(cidr.prefix).value;
  return (cidr.address.value & mask) == (address.value & mask);
}

std::string render_resolv_conf(const std::vector<Ipv4Address>& servers) {
  std::string out;
  for (const Ipv4Address server : servers) out += "nameserver " + to_string(server) + "\n";
  return out;
}

}  // namespace microvm::guest
