// Connection: one API client on the API thread. It reads a request (one deadline for all of it),
// hands it to the VMM through the Listener's VmmChannel and writes the answer when it comes back (one
// deadline for that), then reads the next while keep-alive lasts: one request and one response in
// flight at most, so pipelined requests are answered in order and a client that does not read stops
// being read. A half-sent request that times out gets 408, malformed HTTP 400, a body over
// Limits::max_body 413, a header over Limits::max_header 431, a request the VMM loop does not take
// within Limits::vmm_timeout 503 (not applied); after each of those the connection closes.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstdint>
#include <memory>
#include <optional>

#include "api/http/vmm_channel.h"
#include "api/http/wire.h"

namespace microvm::api {

class Listener;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Listener> listener, wire::Local::socket socket);
  // Forgets itself in the listener.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Closes the socket; a request waiting for the VMM is cancelled if it has not run yet.
  void close();

 private:
  enum class Waiting { kClient, kVmm };  // what the current deadline is for

  [[nodiscard]] bool gone() const;
  // One deadline at a time; a stale expiry (a handler queued before the deadline moved) is ignored.
  void arm_deadline(Waiting waiting);
  void disarm_deadline();
  void on_deadline(Waiting waiting);

  void read_request();
  void on_header(const boost::beast::error_code& error);
  void read_body();
  void on_request(const boost::beast::error_code& error);
  void on_answer(std::uint64_t request, Response response);
  void read_failed(const boost::beast::error_code& error);
  void respond(const Response& response, bool keep_alive);

  std::shared_ptr<Listener> listener_;
  wire::Local::socket socket_;
  boost::asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;  // bytes read but not yet parsed (a pipelined request, say)
  std::optional<wire::RequestParser> parser_;
  wire::HttpResponse response_;
  std::shared_ptr<VmmChannel::Ticket> pending_;  // the request the VMM has, until its answer comes
  std::uint64_t requests_ = 0;                   // requests handed to the VMM, to match their answers
  bool keep_alive_ = true;                       // the pending request's
  std::uint64_t deadline_generation_ = 0;
  bool timed_out_ = false;
  bool closed_ = false;
};

}  // namespace microvm::api
