#include "api/handler.h"

#include <fmt/format.h>

#include <exception>
#include <string_view>

#include "api/json.h"
#include "api/resources/resource_id.h"
#include "api/routes.h"

namespace microvm::api {
namespace {

Response route(Controller& controller, const Request& request) {
  const std::string_view path = request.target;
  if (path.find('?') != std::string_view::npos) {
    return error_response(kStatusBadRequest, fmt::format("query strings are not supported: {}", quote(path)));
  }
  const Route* known = nullptr;  // the path's route for some method
  for (const Route& route : routes()) {
    std::string_view id;
    if (!match(route.pattern, path, id)) continue;
    known = &route;
    if (route.method != request.method) continue;
    if (const std::string_view name = id_name(route.pattern); !name.empty()) {
      if (auto valid = check_id(fmt::format("path {}", route.pattern), name, id); !valid) {
        return error_response(valid.error());
      }
    }
    return route.endpoint(Call{controller, request, id});
  }
  if (known != nullptr) {
    std::string allow = allowed_methods(path);
    Response response = error_response(kStatusMethodNotAllowed, fmt::format("{} is not supported on {} (allowed: {})",
                                                                            request.method, known->pattern, allow));
    response.allow = std::move(allow);
    return response;
  }
  if (is_firecracker_only(path)) {
    return error_response(kStatusNotFound,
                          fmt::format("{} is a Firecracker endpoint microvm does not implement", quote(path)));
  }
  return error_response(kStatusNotFound, fmt::format("no such endpoint: {}", quote(path)));
}

}  // namespace

Response handle(Controller& controller, const Request& request) {
  try {
    return route(controller, request);
  } catch (const std::exception& error) {
    return error_response(kStatusInternalError, fmt::format("internal error: {}", error.what()));
  } catch (...) {
    return error_response(kStatusInternalError, "internal error");
  }
}

}  // namespace microvm::api
