// The API server: HTTP/1.1 on a Unix socket, served on the VMM's Boost.Asio io_context, answering with
// api/handler.h. Firecracker-compatible: `curl --unix-socket PATH http://localhost/machine-config`.
//
// Threading: the Server, its connections and every Controller call live on the one thread that runs
// `io` (the VMM's event loop); create and destroy the Server on that thread, or while `io` is not
// running, and before `io` itself is destroyed (with several threads running `io`, the Server would
// need a strand: it has none). Nothing blocks that thread: all socket I/O is asynchronous, and each
// Controller call must return promptly (api/controller.h).
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
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "api/controller.h"
#include "api/handler.h"
#include "base/error.h"

namespace microvm::api {

struct Limits {
  std::size_t max_body = 51200;               // Firecracker's default --http-api-max-payload-size
  std::size_t max_header = 8192;              // request line and header fields
  std::chrono::milliseconds timeout{10'000};  // to receive a whole request, and to send a response
  std::size_t max_connections = 256;          // open connections at once
};

namespace detail {
struct ServerState;
}

class Server {
 public:
  // Binds a Unix socket at `path` (mode 0600) and serves it on `io`. Fails if `path` exists and is not
  // a socket, or is a socket some process is listening on; a stale socket file (nobody listening) is
  // removed first.
  [[nodiscard]] static Result<std::unique_ptr<Server>> create(boost::asio::io_context& io, const std::string& path,
                                                              Controller& controller, Limits limits = {});
  // Closes the listener and every connection (requests in flight are dropped) and removes the socket
  // file if it is still the one this Server created.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] const std::string& path() const;
  [[nodiscard]] std::size_t connection_count() const;

 private:
  explicit Server(std::shared_ptr<detail::ServerState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::ServerState> state_;
};

// What one connection answers when a client sends `input` and then closes its side: the same HTTP
// parser, limits and handler as the Server, without a socket or timeouts. For tests and the fuzzer.
[[nodiscard]] std::string serve_bytes(Controller& controller, std::string_view input, const Limits& limits = {});

}  // namespace microvm::api
