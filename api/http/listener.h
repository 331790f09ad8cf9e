// Listener: the API socket's acceptor on the API thread, and the registry of its open connections:
// it enforces Limits::max_connections (a client beyond it gets 503 and is closed), retries after a
// failed accept (EMFILE, say) instead of spinning, and closes everything on stop().
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "api/http/limits.h"
#include "api/http/vmm_channel.h"
#include "base/result.h"

namespace microvm::api {

class Connection;

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Everything runs on `io`, the API thread's loop; each request goes to the VMM through `channel`.
  Listener(boost::asio::io_context& io, std::string path, Limits limits, std::shared_ptr<VmmChannel> channel);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Before the API thread runs: bind() creates the socket file at the path, listen() opens it to
  // clients, start() accepts them until stop().
  [[nodiscard]] Result<void> bind();
  [[nodiscard]] Result<void> listen();
  void start();
  // On the API thread: closes the acceptor and every connection (requests in flight are dropped).
  void stop();

  // For the connections, on the API thread.
  [[nodiscard]] const Limits& limits() const { return limits_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] VmmChannel& channel() { return *channel_; }
  [[nodiscard]] bool stopped() const { return stopped_; }
  void forget(Connection* connection);

  // Any thread.
  [[nodiscard]] std::size_t connection_count() const { return connection_count_.load(); }

 private:
  void accept_next();
  void refuse(boost::asio::local::stream_protocol::socket socket) const;

  const std::string path_;
  const Limits limits_;
  const std::shared_ptr<VmmChannel> channel_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
  std::atomic<std::size_t> connection_count_{0};  // connections_.size(), for other threads
  bool stopped_ = false;
  bool accept_failing_ = false;  // logged once until an accept succeeds again
};

}  // namespace microvm::api
