#include "api/resources/container.h"

#include <cstddef>
#include <utility>
#include <vector>

#include "api/fields.h"
#include "api/json.h"
#include "base/error.h"

namespace microvm::api {
namespace {

// HOST_NAME_MAX (<limits.h>, sethostname(2)).
constexpr std::size_t kMaxHostnameLength = 64;

}  // namespace

Result<vmm::ContainerSpec> parse_container(const nlohmann::json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  vmm::ContainerSpec spec;
  auto args = TRY(fields.optional_string_array("args"));
  if (!args) return fail("{}: missing required field `args` (an array of strings: the command)", fields.what());
  if (args->empty() || args->front().empty()) {
    return fail("{}: field `args` must start with a non-empty command", fields.what());
  }
  spec.args = std::move(*args);
  spec.env = TRY(fields.optional_string_array("env")).value_or(std::vector<std::string>{});
  for (std::size_t i = 0; i < spec.env.size(); ++i) {
    const auto equals = spec.env[i].find('=');
    if (equals == std::string::npos || equals == 0) {
      return fail("{}: field `env[{}]` must be KEY=VALUE with a non-empty KEY, got {}", fields.what(), i,
                  quote(spec.env[i]));
    }
  }
  spec.cwd = TRY(fields.optional_string("cwd"));
  if (spec.cwd && !spec.cwd->starts_with('/')) {
    return fail("{}: field `cwd` must be an absolute path, got {}", fields.what(), quote(*spec.cwd));
  }
  spec.user = TRY(fields.optional_string("user"));
  spec.hostname = TRY(fields.optional_string("hostname"));
  if (spec.hostname && (spec.hostname->empty() || spec.hostname->size() > kMaxHostnameLength)) {
    return fail("{}: field `hostname` must be 1 to {} characters long", fields.what(), kMaxHostnameLength);
  }
  TRY_VOID(fields.finish());
  return spec;
}

nlohmann::json to_json(const vmm::ContainerSpec& spec) {
  nlohmann::json out = {{"args", spec.args}, {"env", spec.env}};
  if (spec.cwd) out["cwd"] = *spec.cwd;
  if (spec.user) out["user"] = *spec.user;
  if (spec.hostname) out["hostname"] = *spec.hostname;
  return out;
}

}  // namespace microvm::api
