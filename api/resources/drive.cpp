#include "api/resources/drive.h"

#include <utility>

#include "api/fields.h"
#include "api/resources/resource_id.h"

namespace microvm::api {

Result<vmm::DriveConfig> parse_drive(const nlohmann::json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  vmm::DriveConfig drive;
  drive.drive_id = TRY(fields.required_string("drive_id"));
  TRY_VOID(check_id(fields.what(), "drive_id", drive.drive_id));
  drive.path_on_host = TRY(fields.required_nonempty("path_on_host"));
  drive.is_root_device = TRY(fields.required_bool("is_root_device"));
  drive.is_read_only = TRY(fields.optional_bool("is_read_only")).value_or(false);
  // microvm's block device completes flushes with fdatasync: right for both of Firecracker's modes.
  TRY_VOID(fields.only("cache_type", {"Unsafe", "Writeback"}));
  TRY_VOID(fields.only("io_engine", {"Sync"}));
  TRY_VOID(fields.only("partuuid", {}));
  TRY_VOID(fields.only("rate_limiter", {}));
  TRY_VOID(fields.only("socket", {}));
  TRY_VOID(fields.finish());
  return drive;
}

nlohmann::json to_json(const vmm::DriveConfig& drive) {
  return {{"drive_id", drive.drive_id},
          {"path_on_host", drive.path_on_host},
          {"is_root_device", drive.is_root_device},
          {"is_read_only", drive.is_read_only}};
}

}  // namespace microvm::api
