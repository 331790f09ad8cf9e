// What an API request and its answer are, without HTTP: the handler (api/handler.h) turns one into
// the other; the HTTP layer (api/http/) reads the first from a socket and writes the second.
#pragma once

#include <string>
#include <string_view>

#include "api/status.h"
#include "base/result.h"

namespace microvm::api {

struct Request {
  std::string method;  // "GET", "PUT", "PATCH", ... (case-sensitive, as HTTP says)
  std::string target;  // origin-form: "/drives/rootfs"
  std::string body;
};

struct Response {
  unsigned status = kStatusOk;  // 200 with a JSON body, 204 without, 4xx/5xx with {"fault_message": ...}
  std::string body;             // JSON or empty
  std::string allow = {};       // a 405's Allow header: the methods the path takes ("GET, PUT, PATCH")
};

// {"fault_message": message} with `status`.
[[nodiscard]] Response error_response(unsigned status, std::string_view message);
// The same for an Error: its message, with the status its kind maps to (http_status, api/status.h).
[[nodiscard]] Response error_response(const Error& error);
// 204 for success, else error_response(error).
[[nodiscard]] Response result_response(const Result<void>& result);

}  // namespace microvm::api
