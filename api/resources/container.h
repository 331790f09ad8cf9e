// PUT /microvm/container and the config file's "container" (microvm's own): the workload of
// container mode: args, env, cwd, user, hostname.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::ContainerSpec> parse_container(const nlohmann::json& body, std::string what);
[[nodiscard]] nlohmann::json to_json(const vmm::ContainerSpec& spec);

}  // namespace microvm::api
