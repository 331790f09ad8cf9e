#include "api/resources/network_interface.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <utility>

#include "api/fields.h"
#include "api/json.h"
#include "api/resources/resource_id.h"
#include "base/error.h"
#include "guest/protocol/ipv4.h"

namespace microvm::api {
namespace {

// IFNAMSIZ (<linux/if.h>) is 16 including the terminating NUL.
constexpr std::size_t kMaxIfaceNameLength = 15;

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

Result<void> check_mac(std::string_view what, std::string_view mac) {
  // "xx:xx:xx:xx:xx:xx": six two-digit hex octets.
  constexpr std::size_t kMacTextLength = 17;
  bool valid = mac.size() == kMacTextLength;
  for (std::size_t i = 0; valid && i < mac.size(); ++i) valid = i % 3 == 2 ? mac[i] == ':' : is_hex(mac[i]);
  if (!valid) return fail("{}: `guest_mac` must look like 06:00:ac:10:00:02, got {}", what, quote(mac));
  const auto high_digit = static_cast<unsigned char>(mac[1]);
  const unsigned first_octet_low_nibble =
      high_digit <= '9' ? high_digit - '0' : (high_digit | 0x20U) - 'a' + 10;  // 0x20: ASCII lower case
  if ((first_octet_low_nibble & 1U) != 0) {
    return fail("{}: `guest_mac` {} is a multicast address (the first octet must be even)", what, quote(mac));
  }
  return {};
}

}  // namespace

// What Linux's dev_valid_name accepts, minus the cases a TAP name never needs.
Result<void> check_host_dev_name(std::string_view what, std::string_view name) {
  if (name.size() > kMaxIfaceNameLength) {
    return fail("{}: `host_dev_name` must be at most {} characters, got {}", what, kMaxIfaceNameLength, quote(name));
  }
  const bool valid =
      name != "." && name != ".." && std::ranges::none_of(name, [](char c) {
        return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
      });
  if (!valid) return fail("{}: `host_dev_name` {} is not a valid interface name", what, quote(name));
  return {};
}

Result<std::optional<std::string>> optional_ipv4(Fields& fields, std::string_view key) {
  auto value = TRY(fields.optional_string(key));
  if (value && !guest::parse_ipv4(*value)) {
    return fail("{}: `{}` must be an IPv4 address like 169.254.0.1, got {}", fields.what(), key, quote(*value));
  }
  return value;
}

Result<vmm::NetworkInterfaceConfig> parse_network_interface(const nlohmann::json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  vmm::NetworkInterfaceConfig iface;
  iface.iface_id = TRY(fields.required_string("iface_id"));
  TRY_VOID(check_id(fields.what(), "iface_id", iface.iface_id));
  iface.host_dev_name = TRY(fields.required_nonempty("host_dev_name"));
  TRY_VOID(check_host_dev_name(fields.what(), iface.host_dev_name));
  iface.guest_mac = TRY(fields.optional_string("guest_mac"));
  if (iface.guest_mac) TRY_VOID(check_mac(fields.what(), *iface.guest_mac));
  // microvm's own: how the container-mode init configures the guest's side of the interface.
  iface.guest_ip = TRY(fields.optional_string("guest_ip"));
  if (iface.guest_ip && !guest::parse_ipv4_cidr(*iface.guest_ip)) {
    return fail("{}: `guest_ip` must be an IPv4 address with a prefix length like 169.254.0.2/16, got {}",
                fields.what(), quote(*iface.guest_ip));
  }
  iface.guest_gateway = TRY(optional_ipv4(fields, "guest_gateway"));
  iface.guest_dns = TRY(optional_ipv4(fields, "guest_dns"));
  TRY_VOID(fields.only("mtu", {}));
  TRY_VOID(fields.only("rx_rate_limiter", {}));
  TRY_VOID(fields.only("tx_rate_limiter", {}));
  TRY_VOID(fields.finish());
  return iface;
}

nlohmann::json to_json(const vmm::NetworkInterfaceConfig& iface) {
  nlohmann::json out = {{"iface_id", iface.iface_id}, {"host_dev_name", iface.host_dev_name}};
  if (iface.guest_mac) out["guest_mac"] = *iface.guest_mac;
  if (iface.guest_ip) out["guest_ip"] = *iface.guest_ip;
  if (iface.guest_gateway) out["guest_gateway"] = *iface.guest_gateway;
  if (iface.guest_dns) out["guest_dns"] = *iface.guest_dns;
  return out;
}

}  // namespace microvm::api
