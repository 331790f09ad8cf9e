// PUT /snapshot/create and PUT /snapshot/load (Firecracker's SnapshotCreateParams and
// SnapshotLoadParams). The field names and which are required are Firecracker's; what microvm does
// not implement is refused with a message naming the field: "Diff" snapshots, a "Uffd" memory
// backend, dirty-page tracking, vsock overrides, clock_realtime and huge pages other than the
// snapshot's own.
#pragma once

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "base/result.h"

namespace microvm::api {

[[nodiscard]] Result<SnapshotCreateParams> parse_snapshot_create(const nlohmann::json& body);
// Exactly one of `mem_backend` and `mem_file_path`, as Firecracker insists.
[[nodiscard]] Result<SnapshotLoadParams> parse_snapshot_load(const nlohmann::json& body);

}  // namespace microvm::api
