#include "api/resources/snapshot.h"

#include <string>

#include "api/fields.h"
#include "api/json.h"
#include "api/resources/network_interface.h"
#include "api/resources/resource_id.h"
#include "base/error.h"

namespace microvm::api {

Result<SnapshotCreateParams> parse_snapshot_create(const nlohmann::json& body) {
  auto fields = TRY(Fields::of(body, "snapshot-create"));
  SnapshotCreateParams params;
  params.snapshot_path = TRY(fields.required_nonempty("snapshot_path"));
  params.mem_file_path = TRY(fields.required_nonempty("mem_file_path"));
  if (const auto type = TRY(fields.optional_string("snapshot_type")); type && *type != "Full") {
    if (*type == "Diff")
      return fail("snapshot-create: `snapshot_type` \"Diff\" is not supported by microvm (use \"Full\")");
    return fail("snapshot-create: `snapshot_type` must be \"Full\" or \"Diff\", got {}", quote(*type));
  }
  TRY_VOID(fields.finish());
  return params;
}

Result<SnapshotLoadParams> parse_snapshot_load(const nlohmann::json& body) {
  auto fields = TRY(Fields::of(body, "snapshot-load"));
  SnapshotLoadParams params;
  params.snapshot_path = TRY(fields.required_nonempty("snapshot_path"));
  const auto mem_file_path = TRY(fields.optional_string("mem_file_path"));
  const nlohmann::json* backend = fields.find("mem_backend");
  if (mem_file_path && backend != nullptr) {
    return fail("snapshot-load: `mem_backend` and `mem_file_path` are mutually exclusive: give one");
  }
  if (!mem_file_path && backend == nullptr) {
    return fail("snapshot-load: missing field `mem_backend` (or the older `mem_file_path`): where guest memory is");
  }
  if (mem_file_path) {
    if (mem_file_path->empty()) return fail("snapshot-load: field `mem_file_path` must not be empty");
    params.mem_file_path = *mem_file_path;
  } else {
    auto mem = TRY(Fields::of(*backend, "snapshot-load mem_backend"));
    const std::string type = TRY(mem.required_string("backend_type"));
    const std::string path = TRY(mem.required_nonempty("backend_path"));
    if (type == "Uffd")
      return fail("snapshot-load mem_backend: `backend_type` \"Uffd\" is not supported by microvm (use \"File\")");
    if (type != "File") {
      return fail("snapshot-load mem_backend: `backend_type` must be \"File\" or \"Uffd\", got {}", quote(type));
    }
    TRY_VOID(mem.finish());
    params.mem_file_path = path;
  }
  params.resume_vm = TRY(fields.optional_bool("resume_vm")).value_or(false);
  if (const nlohmann::json* overrides = fields.find("network_overrides")) {
    if (!overrides->is_array()) {
      return fail("snapshot-load: field `network_overrides` must be an array, got {}", describe(*overrides));
    }
    for (std::size_t i = 0; i < overrides->size(); ++i) {
      auto item = TRY(Fields::of((*overrides)[i], fmt::format("snapshot-load network_overrides[{}]", i)));
      vmm::NetworkOverride override_;
      override_.iface_id = TRY(item.required_string("iface_id"));
      TRY_VOID(check_id(item.what(), "iface_id", override_.iface_id));
      override_.host_dev_name = TRY(item.required_nonempty("host_dev_name"));
      TRY_VOID(check_host_dev_name(item.what(), override_.host_dev_name));
      TRY_VOID(item.finish());
      params.network_overrides.push_back(std::move(override_));
    }
  }
  // Firecracker's options microvm does not have, accepted where they mean what microvm does anyway.
  TRY_VOID(fields.only("enable_diff_snapshots", {false}));
  TRY_VOID(fields.only("track_dirty_pages", {false}));
  TRY_VOID(fields.only("vsock_override", {}));
  TRY_VOID(fields.only("clock_realtime", {false}));
  TRY_VOID(fields.only("huge_pages", {"Snapshot", "None"}));
  TRY_VOID(fields.finish());
  return params;
}

}  // namespace microvm::api
