#include "api/resources/resource_id.h"

#include <algorithm>
#include <cstddef>

#include "api/json.h"
#include "base/error.h"

namespace microvm::api {
namespace {

// Firecracker's resource ids (drive_id, iface_id): at most 64 bytes.
constexpr std::size_t kMaxIdLength = 64;

}  // namespace

Result<void> check_id(std::string_view what, std::string_view field, std::string_view id) {
  if (id.empty()) return fail("{}: `{}` must not be empty", what, field);
  if (id.size() > kMaxIdLength) return fail("{}: `{}` must be at most {} characters", what, field, kMaxIdLength);
  const bool valid = std::ranges::all_of(id, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!valid) return fail("{}: `{}` {} may only contain letters, digits and '_'", what, field, quote(id));
  return {};
}

}  // namespace microvm::api
