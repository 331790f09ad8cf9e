// The ids that name a resource in a path and its body (drive_id, iface_id): what Firecracker
// accepts, [A-Za-z0-9_] and at most 64 bytes.
#pragma once

#include <string_view>

#include "base/result.h"

namespace microvm::api {

// Fails with "`what`: `field` ..." unless `id` is a valid resource id.
[[nodiscard]] Result<void> check_id(std::string_view what, std::string_view field, std::string_view id);

}  // namespace microvm::api
