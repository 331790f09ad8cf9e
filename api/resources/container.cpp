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
constexpr std::uint64_t kMaxGroupId = 2147483647;  // runc's maxID, as guest/protocol/user.h
constexpr std::uint64_t kMaxFileMode = 07777;
constexpr std::uint64_t kDefaultFileMode = 0644;

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
  if (const nlohmann::json* gids = fields.find("additional_gids")) {
    if (!gids->is_array()) return fail("{}: field `additional_gids` must be an array of group ids", fields.what());
    for (const nlohmann::json& gid : *gids) {
      if (!gid.is_number_unsigned() || gid.get<std::uint64_t>() > kMaxGroupId) {
        return fail("{}: field `additional_gids` must hold group ids 0 to {}", fields.what(), kMaxGroupId);
      }
      spec.additional_gids.push_back(static_cast<std::uint32_t>(gid.get<std::uint64_t>()));
    }
  }
  spec.read_only_root = TRY(fields.optional_bool("read_only_root")).value_or(false);
  if (const nlohmann::json* files = fields.find("files")) {
    if (!files->is_array()) return fail("{}: field `files` must be an array of files", fields.what());
    for (std::size_t i = 0; i < files->size(); ++i) {
      auto file = TRY(Fields::of((*files)[i], fmt::format("{}: files[{}]", fields.what(), i)));
      vmm::ContainerFile entry;
      entry.path = TRY(file.required_nonempty("path"));
      if (!entry.path.starts_with('/')) return fail("{}: field `path` must be absolute", file.what());
      entry.contents = TRY(file.optional_string("contents")).value_or("");
      entry.mode =
          static_cast<std::uint32_t>(TRY(file.optional_uint("mode", 0, kMaxFileMode)).value_or(kDefaultFileMode));
      TRY_VOID(file.finish());
      spec.files.push_back(std::move(entry));
    }
  }
  TRY_VOID(fields.finish());
  return spec;
}

nlohmann::json to_json(const vmm::ContainerSpec& spec) {
  nlohmann::json out = {{"args", spec.args}, {"env", spec.env}};
  if (spec.cwd) out["cwd"] = *spec.cwd;
  if (spec.user) out["user"] = *spec.user;
  if (spec.hostname) out["hostname"] = *spec.hostname;
  if (!spec.additional_gids.empty()) out["additional_gids"] = spec.additional_gids;
  if (spec.read_only_root) out["read_only_root"] = true;
  if (!spec.files.empty()) {
    nlohmann::json files = nlohmann::json::array();
    for (const vmm::ContainerFile& file : spec.files) {
      files.push_back({{"path", file.path}, {"contents", file.contents}, {"mode", file.mode}});
    }
    out["files"] = std::move(files);
  }
  return out;
}

}  // namespace microvm::api
