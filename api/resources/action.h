// PUT /actions (Firecracker's InstanceActionInfo): {"action_type": ...}.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace microvm::api {

enum class Action {
  kInstanceStart,
  kSendCtrlAltDel,
  kFlushMetrics,
};

[[nodiscard]] Result<Action> parse_action(const nlohmann::json& body);

}  // namespace microvm::api
