#include "api/resources/boot_source.h"

#include <utility>

#include "api/fields.h"
#include "base/error.h"

namespace microvm::api {

Result<vmm::BootSource> parse_boot_source(const nlohmann::json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  vmm::BootSource source;
  source.kernel_image_path = TRY(fields.required_nonempty("kernel_image_path"));
  source.boot_args = TRY(fields.optional_string("boot_args"));
  source.initrd_path = TRY(fields.optional_string("initrd_path"));
  if (source.initrd_path && source.initrd_path->empty()) {
    return fail("{}: field `initrd_path` must not be empty (omit it for no initrd)", fields.what());
  }
  TRY_VOID(fields.finish());
  return source;
}

nlohmann::json to_json(const vmm::BootSource& source) {
  nlohmann::json out = {{"kernel_image_path", source.kernel_image_path}};
  if (source.boot_args) out["boot_args"] = *source.boot_args;
  if (source.initrd_path) out["initrd_path"] = *source.initrd_path;
  return out;
}

}  // namespace microvm::api
