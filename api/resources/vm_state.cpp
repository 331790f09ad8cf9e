#include "api/resources/vm_state.h"

#include "api/fields.h"
#include "api/json.h"
#include "base/error.h"

namespace microvm::api {

Result<VmState> parse_vm_state(const nlohmann::json& body) {
  auto fields = TRY(Fields::of(body, "vm"));
  const std::string state = TRY(fields.required_string("state"));
  TRY_VOID(fields.finish());
  if (state == "Paused") return VmState::kPaused;
  if (state == "Resumed") return VmState::kResumed;
  return fail("vm: `state` must be \"Paused\" or \"Resumed\", got {}", quote(state));
}

}  // namespace microvm::api
