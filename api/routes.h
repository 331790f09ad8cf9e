// The route table: every path the API serves, the methods each takes and the endpoint each runs
// (api/endpoints.h). Routing (handle(), api/handler.h) and the Allow header of a 405 both read it,
// so they cannot disagree.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "api/controller.h"
#include "api/message.h"

namespace microvm::api {

// What an endpoint gets: the request, and the path's {id} segment when its pattern has one (a valid
// resource id by then: api/resources/resource_id.h).
struct Call {
  Controller& controller;
  const Request& request;
  std::string_view id;
};
using Endpoint = Response (*)(const Call& call);

struct Route {
  std::string_view pattern;  // "/machine-config", or "/drives/{drive_id}": at most one {name}, the last segment
  std::string_view method;   // "GET", "PUT", "PATCH"
  Endpoint endpoint;
};

// Every route, grouped by pattern, each pattern's methods in the order the Allow header lists them.
[[nodiscard]] std::span<const Route> routes();

// Whether `path` matches `pattern`; a {name} segment matches any text without '/' (even none: the
// id check then says what is wrong), which goes to `id`.
[[nodiscard]] bool match(std::string_view pattern, std::string_view path, std::string_view& id);
// The name in a pattern's {name} segment ("drive_id"), empty when it has none.
[[nodiscard]] std::string_view id_name(std::string_view pattern);

// The methods `path` takes ("GET, PUT, PATCH"), empty for an unknown path: the Allow header of a 405.
[[nodiscard]] std::string allowed_methods(std::string_view path);

// Firecracker endpoints microvm does not implement (their 404 says so).
[[nodiscard]] bool is_firecracker_only(std::string_view path);

}  // namespace microvm::api
