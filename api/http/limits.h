// What one API connection may cost: the limits the Server (api/http/server.h) and serve_bytes
// (api/http/serve_bytes.h) enforce.
#pragma once

#include <chrono>
#include <cstddef>

namespace microvm::api {

struct Limits {
  std::size_t max_body = 51200;               // Firecracker's default --http-api-max-payload-size
  std::size_t max_header = 8192;              // request line and header fields
  std::chrono::milliseconds timeout{10'000};  // to receive a whole request, and to send a response
  std::size_t max_connections = 256;          // open connections at once
  // How long a request may wait for the VMM's event loop to take it: past that it is answered 503
  // and never applied (a request the loop has taken is always answered).
  std::chrono::milliseconds vmm_timeout{5'000};
};

}  // namespace microvm::api
