// A synchronous client for the API socket (the CLI's side of api/http/server.h).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "api/message.h"
#include "base/result.h"

namespace microvm::api {

inline constexpr std::chrono::milliseconds kDefaultClientTimeout{10'000};

// Sends one request (`body` as JSON when non-empty) on a new connection to the API socket at
// `socket_path` and returns the response, whatever its status. Fails if the socket cannot be reached,
// the exchange does not finish within `timeout`, or the answer is not valid HTTP.
[[nodiscard]] Result<Response> request(const std::string& socket_path, std::string_view method, std::string_view target,
                                       std::string_view body,
                                       std::chrono::milliseconds timeout = kDefaultClientTimeout);

}  // namespace microvm::api
