// The API server: HTTP/1.1 on a Unix socket, Firecracker-compatible (`curl --unix-socket PATH
// http://localhost/machine-config`), answering with api/handler.h.
//
// Threading (Firecracker's API thread; Boost.Beast's http_server_async_local shape): the Server runs
// its own io_context on a thread of its own, where it accepts, reads, times out and writes. Each
// request it has read is posted onto the VMM's event loop (`vmm`), where handle() makes the
// Controller call; the response comes back to the API thread (api/http/vmm_channel.h). So the
// Controller is only ever called on the VMM thread (api/controller.h), and a VMM loop that is busy
// (a slow device, a pause waiting for a vCPU) never stops the API from accepting, reading or timing
// out; a request the loop does not take within Limits::vmm_timeout is answered 503 and not applied.
//
// Robustness: every connection has one deadline (Limits::timeout) for reading a whole request and one
// for writing its response, so a half-sent request or a client that never reads is dropped without
// holding up anyone else (a half-sent request gets 408 first). A connection buffers at most one
// request and one response: pipelined requests are answered in order, one at a time, and a client
// that does not read stops being read. Malformed HTTP gets 400, a body over Limits::max_body 413, a
// header over Limits::max_header 431, and the connection is closed. Beyond Limits::max_connections,
// a new client gets 503 and is closed. Keep-alive is the HTTP/1.1 default.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "api/controller.h"
#include "api/http/limits.h"
#include "base/result.h"

namespace microvm::api {

class Server {
  struct Impl;

 public:
  // Binds a Unix socket at `path` (mode 0600) and starts the API thread serving it, with `controller`
  // called on `vmm` (the VMM's event loop, run by one thread). Fails if `path` exists and is not a
  // socket, or is a socket some process is listening on; a stale socket file (nobody listening) is
  // removed first. `vmm` and `controller` must outlive the Server.
  [[nodiscard]] static Result<std::unique_ptr<Server>> create(boost::asio::io_context& vmm, const std::string& path,
                                                              Controller& controller, Limits limits = {});
  // On any thread but inside a Controller call: stops the API thread, closes the listener and every
  // connection (requests in flight are dropped; one the VMM loop still holds never runs) and removes
  // the socket file if it is still the one this Server created. Once it returns the Controller is
  // not called again, even if the VMM loop runs on.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] const std::string& path() const;
  // Open connections (any thread).
  [[nodiscard]] std::size_t connection_count() const;

  // Only create() can make an Impl.
  explicit Server(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace microvm::api
