#include "api/resources/console.h"

#include <utility>

#include "api/fields.h"
#include "api/json.h"
#include "base/error.h"

namespace microvm::api {

Result<vmm::ConsoleKind> parse_console(const nlohmann::json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  const std::string kind = TRY(fields.required_string("kind"));
  TRY_VOID(fields.finish());
  if (kind == "serial") return vmm::ConsoleKind::kSerial;
  if (kind == "virtio") return vmm::ConsoleKind::kVirtio;
  return fail("{}: `kind` must be \"serial\" or \"virtio\", got {}", fields.what(), quote(kind));
}

nlohmann::json to_json(vmm::ConsoleKind kind) {
  return {{"kind", kind == vmm::ConsoleKind::kVirtio ? "virtio" : "serial"}};
}

}  // namespace microvm::api
