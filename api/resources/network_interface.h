// PUT /network-interfaces/{iface_id} and the config file's "network-interfaces" (Firecracker's
// NetworkInterface on a TAP: iface_id, host_dev_name, guest_mac), plus microvm's container-mode
// guest_ip, guest_gateway and guest_dns.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::NetworkInterfaceConfig> parse_network_interface(const nlohmann::json& body, std::string what);
[[nodiscard]] nlohmann::json to_json(const vmm::NetworkInterfaceConfig& iface);
// A TAP name Linux accepts (dev_valid_name, at most 15 bytes): `host_dev_name` here and in
// PUT /snapshot/load's network_overrides.
[[nodiscard]] Result<void> check_host_dev_name(std::string_view what, std::string_view name);

}  // namespace microvm::api
