#include "api/resources/action.h"

#include "api/fields.h"
#include "api/json.h"
#include "base/error.h"

namespace microvm::api {

Result<Action> parse_action(const nlohmann::json& body) {
  auto fields = TRY(Fields::of(body, "actions"));
  const std::string action = TRY(fields.required_string("action_type"));
  TRY_VOID(fields.finish());
  if (action == "InstanceStart") return Action::kInstanceStart;
  if (action == "SendCtrlAltDel") return Action::kSendCtrlAltDel;
  if (action == "FlushMetrics") return Action::kFlushMetrics;
  return fail("actions: `action_type` must be \"InstanceStart\", \"SendCtrlAltDel\" or \"FlushMetrics\", got {}",
              quote(action));
}

}  // namespace microvm::api
