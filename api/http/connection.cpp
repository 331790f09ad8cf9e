#include "api/http/connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>
#include <utility>

#include "api/http/listener.h"

namespace microvm::api {
namespace {

namespace asio = boost::asio;
namespace http = wire::http;
using boost::beast::error_code;

}  // namespace

Connection::Connection(std::shared_ptr<Listener> listener, wire::Local::socket socket)
    : listener_(std::move(listener)),
      socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      buffer_(listener_->limits().max_header + listener_->limits().max_body) {}

Connection::~Connection() {
  listener_->forget(this);
}

void Connection::start() {
  read_request();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  if (pending_) static_cast<void>(pending_->cancel());
  pending_.reset();
  error_code ignored;
  socket_.shutdown(wire::Local::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
}

bool Connection::gone() const {
  return closed_ || listener_->stopped();
}

void Connection::arm_deadline(Waiting waiting) {
  const std::uint64_t generation = ++deadline_generation_;
  const Limits& limits = listener_->limits();
  timer_.expires_after(waiting == Waiting::kVmm ? limits.vmm_timeout : limits.timeout);
  timer_.async_wait([self = shared_from_this(), generation, waiting](const error_code& error) {
    if (error || generation != self->deadline_generation_ || self->gone()) return;
    self->on_deadline(waiting);
  });
}

void Connection::disarm_deadline() {
  ++deadline_generation_;
  timer_.cancel();
}

void Connection::on_deadline(Waiting waiting) {
  if (waiting == Waiting::kClient) {
    timed_out_ = true;
    error_code ignored;
    socket_.cancel(ignored);  // the pending read or write completes with operation_aborted
    return;
  }
  if (pending_ && pending_->cancel()) {
    pending_.reset();
    return respond(
        error_response(kStatusUnavailable, fmt::format("the VMM did not take the request within {} ms, so it was not "
                                                       "applied: retry later",
                                                       listener_->limits().vmm_timeout.count())),
        false);
  }
  // The VMM is running it: its answer comes when the Controller call returns. The timer keeps this
  // connection alive until then.
  arm_deadline(Waiting::kVmm);
}

void Connection::read_request() {
  parser_.emplace();
  wire::configure(*parser_, listener_->limits());
  timed_out_ = false;
  arm_deadline(Waiting::kClient);
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](const error_code& error, std::size_t) { self->on_header(error); });
}

void Connection::on_header(const error_code& error) {
  if (gone()) return;
  if (error) return read_failed(error);
  if (wire::wants_continue(*parser_)) {
    asio::async_write(socket_, asio::buffer(wire::kContinue),
                      [self = shared_from_this()](const error_code& write_error, std::size_t) {
                        if (self->gone()) return;
                        if (write_error) return self->read_failed(write_error);
                        self->read_body();
                      });
    return;
  }
  read_body();
}

void Connection::read_body() {
  if (parser_->is_done()) return on_request({});
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](const error_code& error, std::size_t) { self->on_request(error); });
}

void Connection::on_request(const error_code& error) {
  if (gone()) return;
  if (error) return read_failed(error);
  disarm_deadline();
  const wire::HttpRequest& request = parser_->get();
  keep_alive_ = request.keep_alive();
  const std::uint64_t id = ++requests_;
  // A weak reference: the channel may drop this reply on the VMM thread, which must not be the one
  // that destroys a connection. The deadline below keeps the connection alive meanwhile.
  pending_ = listener_->channel().submit(wire::to_request(request), [weak = weak_from_this(), id](Response response) {
    if (auto self = weak.lock()) self->on_answer(id, std::move(response));
  });
  arm_deadline(Waiting::kVmm);
}

void Connection::on_answer(std::uint64_t request, Response response) {
  if (gone() || !pending_ || request != requests_) return;
  pending_.reset();
  disarm_deadline();
  respond(response, keep_alive_);
}

void Connection::read_failed(const error_code& error) {
  disarm_deadline();
  const Limits& limits = listener_->limits();
  if (timed_out_) {
    // A client that started a request and stalled learns why it is dropped; an idle one is closed.
    if (parser_ && parser_->got_some()) {
      return respond(error_response(kStatusRequestTimeout,
                                    fmt::format("request not received within {} ms", limits.timeout.count())),
                     false);
    }
    return close();
  }
  if (auto response = wire::read_failure(error, limits)) {
    spdlog::debug("API socket {}: {}", listener_->path(), error.message());
    return respond(*response, false);
  }
  close();
}

void Connection::respond(const Response& response, bool keep_alive) {
  response_ = wire::to_http(response, keep_alive);
  timed_out_ = false;
  arm_deadline(Waiting::kClient);
  http::async_write(socket_, response_, [self = shared_from_this(), keep_alive](const error_code& error, std::size_t) {
    if (self->gone()) return;
    self->disarm_deadline();
    if (error || !keep_alive) return self->close();
    self->read_request();
  });
}

}  // namespace microvm::api
