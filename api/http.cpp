// Everything HTTP (Boost.Beast) for the API, in one translation unit because Beast compiles slowly:
// the server on a Unix socket, serve_bytes (the same parsing without a socket) and the client.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "api/client.h"
#include "api/server.h"

namespace microvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using RequestParser = http::request_parser<http::string_body>;

constexpr unsigned kHttp11 = 11;  // Beast's version number for HTTP/1.1
constexpr std::string_view kServerName = "microvm";
constexpr std::string_view kJsonType = "application/json";
// RFC 9110 §10.1.1: the interim answer to "Expect: 100-continue".
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// sun_path in <sys/un.h>, including the terminating NUL.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
// How long the server waits before accepting again after accept() failed (EMFILE, say).
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// The largest response the client takes (metrics can be long).
constexpr std::uint64_t kMaxClientBody = 16ULL << 20;
// The API socket is the VM's control: its owner only.
constexpr mode_t kSocketMode = 0600;

// --- what the socket server and serve_bytes share -----------------------------------------------------

// Boost 1.74's Beast takes boost::string_view.
beast::string_view view(std::string_view text) {
  return {text.data(), text.size()};
}

void configure(RequestParser& parser, const Limits& limits) {
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header, UINT32_MAX)));
  parser.body_limit(limits.max_body);
}

// True when the client waits for "100 Continue" before sending the body it announced.
bool wants_continue(const RequestParser& parser) {
  if (parser.is_done()) return false;
  const auto expect = parser.get()[http::field::expect];
  return beast::iequals(expect, "100-continue");
}

Request to_request(const HttpRequest& request) {
  return Request{std::string(request.method_string()), std::string(request.target()), request.body()};
}

// Runs the handler; nothing a request does may escape as an exception.
Response answer(Controller& controller, const Request& request) {
  try {
    return handle(controller, request);
  } catch (const std::exception& error) {
    return error_response(kStatusInternalError, fmt::format("internal error: {}", error.what()));
  } catch (...) {
    return error_response(kStatusInternalError, "internal error");
  }
}

// `target` is the request's (for the Allow header of a 405, RFC 9110 §15.5.6).
HttpResponse to_http(const Response& response, bool keep_alive, std::string_view target = {}) {
  HttpResponse out{static_cast<http::status>(response.status), kHttp11};
  out.set(http::field::server, view(kServerName));
  if (!response.body.empty()) out.set(http::field::content_type, view(kJsonType));

  out.body() = response.body;
  if (response.status == kStatusMethodNotAllowed) out.set(http::field::allow, view(allowed_methods(target)));
  out.keep_alive(keep_alive);
  // RFC 9110 §8.6: no Content-Length in a 204.
  if (response.status != kStatusNoContent) out.prepare_payload();
  return out;
}

// The answer to a request that could not be read, after which the connection closes; nullopt when
// the client went away (nothing to answer).
std::optional<Response> read_failure(const beast::error_code& error, const Limits& limits) {
  if (error == http::error::body_limit) {
    return error_response(kStatusPayloadTooLarge,
                          fmt::format("request body is larger than the limit of {} bytes", limits.max_body));
  }
  if (error == http::error::header_limit || error == http::error::buffer_overflow) {
    return error_response(kStatusHeaderTooLarge,
                          fmt::format("request header is larger than the limit of {} bytes", limits.max_header));
  }
  if (error == http::error::end_of_stream || error == http::error::partial_message) return std::nullopt;
  if (error.category() == http::make_error_code(http::error::bad_method).category()) {
    return error_response(kStatusBadRequest, fmt::format("malformed HTTP request: {}", error.message()));
  }
  return std::nullopt;  // a socket error: the client is gone
}

// --- the server ------------------------------------------------------------------------------------------

class Connection;

}  // namespace

namespace detail {

struct ServerState {
  ServerState(asio::io_context& io, Controller& controller_ref, Limits limits_value, std::string socket_path)
      : controller(controller_ref), limits(limits_value), path(std::move(socket_path)), acceptor(io), retry_timer(io) {}

  Controller& controller;
  const Limits limits;
  const std::string path;
  Local::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  bool stopped = false;
  bool accept_failing = false;  // logged once until an accept succeeds again
  // Identity of the socket file this server created (removed on destruction only if unchanged).
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
};

}  // namespace detail

namespace {

using State = detail::ServerState;

// One client connection: read a request, answer it, repeat while keep-alive; one request and one
// response in flight at most.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<State> state, Local::socket socket)
      : state_(std::move(state)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(state_->limits.max_header + state_->limits.max_body) {}

  ~Connection() { state_->connections.erase(this); }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() { read_request(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    socket_.shutdown(Local::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

 private:
  bool gone() const { return closed_ || state_->stopped; }

  // One deadline at a time; a stale expiry (a handler queued before the deadline moved) is ignored.
  void arm_deadline() {
    const std::uint64_t generation = ++deadline_generation_;
    timer_.expires_after(state_->limits.timeout);
    timer_.async_wait([self = shared_from_this(), generation](const beast::error_code& error) {
      if (error || generation != self->deadline_generation_ || self->gone()) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);  // the pending read or write completes with operation_aborted
    });
  }

  void disarm_deadline() {
    ++deadline_generation_;
    timer_.cancel();
  }

  void read_request() {
    parser_.emplace();
    configure(*parser_, state_->limits);
    timed_out_ = false;
    arm_deadline();
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](const beast::error_code& error, std::size_t) { self->on_header(error); });
  }

  void on_header(const beast::error_code& error) {
    if (gone()) return;
    if (error) return read_failed(error);
    if (wants_continue(*parser_)) {
      asio::async_write(socket_, asio::buffer(kContinue),
                        [self = shared_from_this()](const beast::error_code& write_error, std::size_t) {
                          if (self->gone()) return;
                          if (write_error) return self->read_failed(write_error);
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_request({});
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](const beast::error_code& error, std::size_t) { self->on_request(error); });
  }

  void on_request(const beast::error_code& error) {
    if (gone()) return;
    if (error) return read_failed(error);
    disarm_deadline();
    const HttpRequest& request = parser_->get();
    respond(answer(state_->controller, to_request(request)), request.keep_alive(), request.target());
  }

  void read_failed(const beast::error_code& error) {
    disarm_deadline();
    if (timed_out_) {
      // A client that started a request and stalled learns why it is dropped; an idle one is closed.
      if (parser_ && parser_->got_some()) {
        return respond(error_response(kStatusRequestTimeout,
                                      fmt::format("request not received within {} ms", state_->limits.timeout.count())),
                       false);
      }
      return close();
    }
    if (auto response = read_failure(error, state_->limits)) {
      spdlog::debug("API socket {}: {}", state_->path, error.message());
      return respond(*response, false);
    }
    close();
  }

  void respond(const Response& response, bool keep_alive, beast::string_view target = {}) {
    response_ = to_http(response, keep_alive, std::string_view(target.data(), target.size()));
    timed_out_ = false;
    arm_deadline();
    http::async_write(socket_, response_,
                      [self = shared_from_this(), keep_alive](const beast::error_code& error, std::size_t) {
                        if (self->gone()) return;
                        self->disarm_deadline();
                        if (error || !keep_alive) return self->close();
                        self->read_request();
                      });
  }

  std::shared_ptr<State> state_;
  Local::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;  // bytes read but not yet parsed (a pipelined request, say)
  std::optional<RequestParser> parser_;
  HttpResponse response_;
  std::uint64_t deadline_generation_ = 0;
  bool timed_out_ = false;
  bool closed_ = false;
};

// Over the connection limit: a 503 if the socket takes it right now (never blocks), then close.
void refuse(Local::socket socket, const Limits& limits) {
  const std::string body = error_response(kStatusUnavailable, fmt::format("too many API connections (limit {}); "
                                                                          "retry later",
                                                                          limits.max_connections))
                               .body;
  const std::string text = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nServer: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      kServerName, kJsonType, body.size(), body);
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(text), ignored);
  socket.shutdown(Local::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void accept_next(const std::shared_ptr<State>& state) {
  state->acceptor.async_accept([state](const beast::error_code& error, Local::socket socket) {
    if (state->stopped || error == asio::error::operation_aborted) return;
    if (error) {
      // EMFILE and friends: try again shortly instead of spinning.
      if (!state->accept_failing) spdlog::warn("API socket {}: accept failed: {}", state->path, error.message());
      state->accept_failing = true;
      state->retry_timer.expires_after(kAcceptRetryDelay);
      state->retry_timer.async_wait([state](const beast::error_code& wait_error) {
        if (!wait_error && !state->stopped) accept_next(state);
      });
      return;
    }
    state->accept_failing = false;
    if (state->connections.size() >= state->limits.max_connections) {
      refuse(std::move(socket), state->limits);
    } else {
      auto connection = std::make_shared<Connection>(state, std::move(socket));
      state->connections.emplace(connection.get(), connection);
      connection->start();
    }
    accept_next(state);
  });
}

// Removes a stale socket file at `path`; fails if something else is there or someone listens on it.
Result<void> clear_socket_path(asio::io_context& io, const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return {};
    return fail("cannot inspect API socket path {}: {}", path, errno_text(errno));
  }
  if (!S_ISSOCK(info.st_mode)) {
    return fail("API socket path {} exists and is not a socket: remove it or choose another path", path);
  }
  // Non-blocking: a listener with a full backlog would otherwise block connect().
  Local::socket probe(io);
  beast::error_code error;
  probe.open(Local(), error);
  if (!error) probe.non_blocking(true, error);
  if (!error) probe.connect(Local::endpoint(path), error);
  if (!error || error == asio::error::would_block || error == asio::error::try_again) {
    return fail("API socket {} is in use by another process (another microvm?): choose another path", path);
  }
  if (error != asio::error::connection_refused) {
    return fail("cannot check whether API socket {} is in use: {}", path, error.message());
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail("cannot remove stale API socket {}: {}", path, errno_text(errno));
  }
  spdlog::info("removed stale API socket {}", path);
  return {};
}

}  // namespace

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, const std::string& path, Controller& controller,
                                               Limits limits) {
  if (path.empty()) return fail("API socket path is empty");
  if (path.size() > kMaxSocketPath) {
    return fail("API socket path {} is {} bytes long; Unix sockets allow at most {}: choose a shorter path", path,
                path.size(), kMaxSocketPath);
  }
  if (path.find('\0') != std::string::npos) return fail("API socket path contains a NUL character");
  if (limits.max_connections == 0 || limits.timeout.count() <= 0) {
    return fail("API limits need at least one connection and a positive timeout");
  }
  TRY_VOID(clear_socket_path(io, path));

  auto state = std::make_shared<State>(io, controller, limits, path);
  beast::error_code error;
  state->acceptor.open(Local(), error);
  if (!error) state->acceptor.bind(Local::endpoint(path), error);
  if (error) return fail("cannot bind API socket {}: {}", path, error.message());
  struct stat info {};
  if (::chmod(path.c_str(), kSocketMode) != 0 || ::stat(path.c_str(), &info) != 0) {
    const int saved = errno;
    ::unlink(path.c_str());
    return fail("cannot set up API socket {}: {}", path, errno_text(saved));
  }
  state->socket_dev = info.st_dev;
  state->socket_ino = info.st_ino;
  state->acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    ::unlink(path.c_str());
    return fail("cannot listen on API socket {}: {}", path, error.message());
  }
  accept_next(state);
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Server::~Server() {
  State& state = *state_;
  state.stopped = true;
  beast::error_code ignored;
  state.acceptor.close(ignored);
  state.retry_timer.cancel();
  // Copied first: closing may drop the last reference to a connection, which unregisters itself.
  std::vector<std::shared_ptr<Connection>> open;
  for (const auto& [raw, weak] : state.connections) {
    if (auto connection = weak.lock()) open.push_back(std::move(connection));
  }
  for (const auto& connection : open) connection->close();
  open.clear();
  struct stat info {};
  if (::stat(state.path.c_str(), &info) == 0 && info.st_dev == state.socket_dev && info.st_ino == state.socket_ino) {
    ::unlink(state.path.c_str());
  }
}

const std::string& Server::path() const {
  return state_->path;
}

std::size_t Server::connection_count() const {
  return state_->connections.size();
}

std::string serve_bytes(Controller& controller, std::string_view input, const Limits& limits) {
  std::string output;
  const auto send = [&output](const Response& response, bool keep_alive, beast::string_view target = {}) {
    std::ostringstream text;
    text << to_http(response, keep_alive, std::string_view(target.data(), target.size()));
    output += text.str();
  };
  while (!input.empty()) {
    RequestParser parser;
    configure(parser, limits);
    parser.eager(false);  // stop after the header, as the socket server does, to see Expect: 100-continue
    bool continued = false;
    beast::error_code error;
    while (!parser.is_done()) {
      const std::size_t used = parser.put(asio::buffer(input.data(), input.size()), error);
      input.remove_prefix(used);
      if (error == http::error::need_more) {
        if (used == 0) return output;  // the client closed in the middle of a request
        error = {};
      } else if (error) {
        if (auto response = read_failure(error, limits)) send(*response, false);
        return output;
      } else if (used == 0 && !parser.is_done()) {
        return output;  // no progress without more input: as a client that stopped sending
      }
      if (parser.is_header_done() && !continued && wants_continue(parser)) {
        output += kContinue;
        continued = true;
      }
    }
    const HttpRequest& request = parser.get();
    send(answer(controller, to_request(request)), request.keep_alive(), request.target());
    if (!request.keep_alive()) break;
  }
  return output;
}

Result<Response> request(const std::string& socket_path, std::string_view method, std::string_view target,
                         std::string_view body, std::chrono::milliseconds timeout) {
  if (socket_path.size() > kMaxSocketPath) return fail("API socket path {} is too long", socket_path);
  try {
    asio::io_context io;
    Local::socket socket(io);
    HttpRequest message;
    message.version(kHttp11);
    const http::verb verb = http::string_to_verb(view(method));
    if (verb == http::verb::unknown) {
      message.method_string(view(method));
    } else {
      message.method(verb);
    }
    message.target(view(target));
    message.set(http::field::host, "localhost");
    message.set(http::field::user_agent, view(kServerName));
    if (!body.empty()) {
      message.set(http::field::content_type, view(kJsonType));
      message.body() = std::string(body);
    }
    message.keep_alive(false);
    message.prepare_payload();

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxClientBody);
    std::optional<beast::error_code> connect_error;
    std::optional<beast::error_code> write_error;
    std::optional<beast::error_code> read_error;
    socket.async_connect(Local::endpoint(socket_path), [&](const beast::error_code& connected) {
      connect_error = connected;
      if (connected) return;
      http::async_write(socket, message, [&](const beast::error_code& written, std::size_t) {
        write_error = written;
        // Read even when the write failed: the server may have answered early (413) and closed.
        http::async_read(socket, buffer, parser,
                         [&](const beast::error_code& read, std::size_t) { read_error = read; });
      });
    });
    io.run_for(timeout);
    if (connect_error && *connect_error) {
      return fail("cannot connect to API socket {}: {}", socket_path, connect_error->message());
    }
    if (!read_error) {
      return fail("API socket {}: no answer to {} {} within {} ms", socket_path, method, target, timeout.count());
    }
    if (*read_error) {
      const beast::error_code& cause = write_error && *write_error ? *write_error : *read_error;
      return fail("API socket {}: {} {} failed: {}", socket_path, method, target, cause.message());
    }
    return Response{parser.get().result_int(), parser.get().body()};
  } catch (const std::exception& error) {
    return fail("API socket {}: {}", socket_path, error.what());
  }
}

}  // namespace microvm::api
