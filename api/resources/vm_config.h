// The whole configuration in Firecracker's full-config shape: GET /vm/config prints it and
// --config-file reads it. {"boot-source": {...}, "drives": [...], "machine-config": {...},
// "network-interfaces": [...]} plus microvm's "container" and "console" ({"kind": "serial"|"virtio"};
// network interfaces also take microvm's guest_ip, guest_gateway and guest_dns for container mode).
// Firecracker sections microvm does not implement ("balloon", "logger", "vsock", ...) are accepted
// only when null or empty, so GET /vm/config output of either VMM reads back.
#pragma once

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::VmResources> parse_vm_config(const nlohmann::json& config);
[[nodiscard]] nlohmann::json to_json(const vmm::VmResources& config);

// Parses `config` (the shape above), checks all of it, then applies it through the same Controller
// calls the endpoints use: machine-config, boot-source, drives, network-interfaces, container,
// console, in that order. It does not start the VM. Errors name the section and field.
[[nodiscard]] Result<void> apply_config_file(Controller& controller, const nlohmann::json& config);

}  // namespace microvm::api
