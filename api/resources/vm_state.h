// PATCH /vm (Firecracker's Vm): {"state": "Paused"|"Resumed"}.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace microvm::api {

enum class VmState {
  kPaused,
  kResumed,
};

[[nodiscard]] Result<VmState> parse_vm_state(const nlohmann::json& body);

}  // namespace microvm::api
