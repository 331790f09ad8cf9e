// PUT|PATCH|GET /machine-config and the config file's "machine-config" (Firecracker's
// MachineConfiguration): vcpu_count, mem_size_mib, smt.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

// PUT (base == nullptr: vcpu_count and mem_size_mib required) or PATCH (the given fields over
// `base`). `what` names the object in messages.
[[nodiscard]] Result<vmm::MachineSpec> parse_machine_config(const nlohmann::json& body, std::string what,
                                                            const vmm::MachineSpec* base);
[[nodiscard]] nlohmann::json to_json(const vmm::MachineSpec& config);

}  // namespace microvm::api
