// What GET /, GET /version (Firecracker's InstanceInfo and FirecrackerVersion) and GET
// /microvm/status (microvm's own) answer.
#pragma once

#include <nlohmann/json.hpp>

#include "api/controller.h"

namespace microvm::api {

// {"id", "state", "vmm_version", "app_name"}
[[nodiscard]] nlohmann::json to_json(const InstanceInfo& info);
// {"firecracker_version": vmm_version}
[[nodiscard]] nlohmann::json version_json(const InstanceInfo& info);
// {"state"} plus "exit_code" once there is one.
[[nodiscard]] nlohmann::json to_json(const Status& status);

}  // namespace microvm::api
