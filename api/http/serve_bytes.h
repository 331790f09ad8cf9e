// What one API connection answers to a byte stream, without a socket, a thread or timeouts: the
// Server's HTTP parser, limits and handler, run on the caller's thread. For tests and the fuzzer.
#pragma once

#include <string>
#include <string_view>

#include "api/controller.h"
#include "api/http/limits.h"

namespace microvm::api {

// The bytes a connection writes when a client sends `input` and then closes its side.
[[nodiscard]] std::string serve_bytes(Controller& controller, std::string_view input, const Limits& limits = {});

}  // namespace microvm::api
