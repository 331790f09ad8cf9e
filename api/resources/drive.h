// PUT /drives/{drive_id} and the config file's "drives" (Firecracker's Drive, a virtio-blk device):
// drive_id, path_on_host, is_root_device, is_read_only.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::DriveConfig> parse_drive(const nlohmann::json& body, std::string what);
[[nodiscard]] nlohmann::json to_json(const vmm::DriveConfig& drive);

}  // namespace microvm::api
