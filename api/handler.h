// The HTTP-independent half of the API: one parsed request in, one response out, with Firecracker's
// paths, methods, field names and status codes. Unit-tested and fuzzed without sockets; the Server
// (api/server.h) feeds it the requests it reads.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "base/error.h"

namespace microvm::api {

struct Request {
  std::string method;  // "GET", "PUT", "PATCH", ... (case-sensitive, as HTTP says)
  std::string target;  // origin-form: "/drives/rootfs"
  std::string body;
};

struct Response {
  unsigned status = 200;  // 200 with a JSON body, 204 without, 4xx/5xx with {"fault_message": ...}
  std::string body;       // JSON or empty
};

// Status codes (RFC 9110 §15) the API answers with.
inline constexpr unsigned kStatusOk = 200;
inline constexpr unsigned kStatusNoContent = 204;
inline constexpr unsigned kStatusBadRequest = 400;
inline constexpr unsigned kStatusNotFound = 404;
inline constexpr unsigned kStatusMethodNotAllowed = 405;
inline constexpr unsigned kStatusRequestTimeout = 408;
inline constexpr unsigned kStatusPayloadTooLarge = 413;
inline constexpr unsigned kStatusHeaderTooLarge = 431;
inline constexpr unsigned kStatusInternalError = 500;
inline constexpr unsigned kStatusUnavailable = 503;

// Routes `request` to `controller` (on the caller's thread). Never throws for any request: bad input
// is a 4xx with a fault_message naming what is wrong; an exception from the controller is a 500.
[[nodiscard]] Response handle(Controller& controller, const Request& request);

// The methods `target` takes ("GET, PUT, PATCH"), empty for an unknown path: the Allow header of a 405.
[[nodiscard]] std::string_view allowed_methods(std::string_view target);

// {"fault_message": message} with `status`.
[[nodiscard]] Response error_response(unsigned status, std::string_view message);

// Firecracker's full-config shape (GET /vm/config, --config-file): {"boot-source": {...},
// "drives": [...], "machine-config": {...}, "network-interfaces": [...]} plus microvm's "container"
// and "console" ({"kind": "serial"|"virtio"}; network interfaces also take microvm's guest_ip,
// guest_gateway and guest_dns for container mode).
// Firecracker sections microvm does not implement ("balloon", "logger", "vsock", ...) are accepted
// only when null or empty, so GET /vm/config output of either VMM reads back.
[[nodiscard]] Result<VmResources> parse_vm_config(const nlohmann::json& config);
[[nodiscard]] nlohmann::json to_json(const VmResources& config);

// Parses `config` (the shape above), checks all of it, then applies it through the same Controller
// calls the endpoints use: machine-config, boot-source, drives, network-interfaces, container, in
// that order. It does not start the VM. Errors name the section and field.
[[nodiscard]] Result<void> apply_config_file(Controller& controller, const nlohmann::json& config);

// JSON text -> value with the API's rules: at most kMaxJsonDepth levels of nesting, no duplicate
// keys in an object, valid UTF-8. Never throws.
inline constexpr int kMaxJsonDepth = 16;
[[nodiscard]] Result<nlohmann::json> parse_json(std::string_view text);

}  // namespace microvm::api
