// PUT /microvm/console and the config file's "console" (microvm's own): {"kind": "serial"|"virtio"}.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::ConsoleKind> parse_console(const nlohmann::json& body, std::string what);
[[nodiscard]] nlohmann::json to_json(vmm::ConsoleKind kind);

}  // namespace microvm::api
