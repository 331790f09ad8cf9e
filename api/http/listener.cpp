#include "api/http/listener.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>
#include <vector>

#include "api/http/connection.h"
#include "api/http/wire.h"
#include "base/error.h"

namespace microvm::api {
namespace {

namespace asio = boost::asio;
using wire::Local;

// How long the listener waits before accepting again after accept() failed (EMFILE, say).
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

}  // namespace

Listener::Listener(asio::io_context& io, std::string path, Limits limits, std::shared_ptr<VmmChannel> channel)
    : path_(std::move(path)), limits_(limits), channel_(std::move(channel)), acceptor_(io), retry_timer_(io) {}

Result<void> Listener::bind() {
  boost::system::error_code error;
  acceptor_.open(Local(), error);
  if (!error) acceptor_.bind(Local::endpoint(path_), error);
  if (error) return fail("cannot bind API socket {}: {}", path_, error.message());
  return {};
}

Result<void> Listener::listen() {
  boost::system::error_code error;
  acceptor_.listen(asio::socket_base::max_listen_connections, error);
  if (error) return fail("cannot listen on API socket {}: {}", path_, error.message());
  return {};
}

void Listener::start() {
  accept_next();
}

void Listener::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
  // Copied first: closing may drop the last reference to a connection, which forgets itself.
  std::vector<std::shared_ptr<Connection>> open;
  for (const auto& [raw, weak] : connections_) {
    if (auto connection = weak.lock()) open.push_back(std::move(connection));
  }
  for (const auto& connection : open) connection->close();
}

void Listener::forget(Connection* connection) {
  connections_.erase(connection);
  connection_count_.store(connections_.size());
}

void Listener::accept_next() {
  acceptor_.async_accept([self = shared_from_this()](const boost::system::error_code& error, Local::socket socket) {
    if (self->stopped_ || error == asio::error::operation_aborted) return;
    if (error) {
      // EMFILE and friends: try again shortly instead of spinning.
      if (!self->accept_failing_) spdlog::warn("API socket {}: accept failed: {}", self->path_, error.message());
      self->accept_failing_ = true;
      self->retry_timer_.expires_after(kAcceptRetryDelay);
      self->retry_timer_.async_wait([self](const boost::system::error_code& wait_error) {
        if (!wait_error && !self->stopped_) self->accept_next();
      });
      return;
    }
    self->accept_failing_ = false;
    if (self->connections_.size() >= self->limits_.max_connections) {
      self->refuse(std::move(socket));
    } else {
      auto connection = std::make_shared<Connection>(self, std::move(socket));
      self->connections_.emplace(connection.get(), connection);
      self->connection_count_.store(self->connections_.size());
      connection->start();
    }
    self->accept_next();
  });
}

// Over the connection limit: a 503 if the socket takes it right now (never blocks), then close.
void Listener::refuse(Local::socket socket) const {
  const std::string text = wire::serialize(
      error_response(kStatusUnavailable,
                     fmt::format("too many API connections (limit {}); retry later", limits_.max_connections)),
      /*keep_alive=*/false);
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(text), ignored);
  socket.shutdown(Local::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace microvm::api
