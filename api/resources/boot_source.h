// PUT /boot-source and the config file's "boot-source" (Firecracker's BootSource):
// kernel_image_path, boot_args, initrd_path.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

[[nodiscard]] Result<vmm::BootSource> parse_boot_source(const nlohmann::json& body, std::string what);
[[nodiscard]] nlohmann::json to_json(const vmm::BootSource& source);

}  // namespace microvm::api
