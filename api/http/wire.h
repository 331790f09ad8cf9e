// What the API's HTTP pieces share (Beast): the socket and message types, the request parser's
// limits, Response -> HTTP message, and what a request that could not be read is answered. Included
// only by the .cpp files that speak HTTP: Beast compiles slowly.
#pragma once

#include <sys/un.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "api/http/limits.h"
#include "api/message.h"

namespace microvm::api::wire {

namespace http = boost::beast::http;
using Local = boost::asio::local::stream_protocol;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using RequestParser = http::request_parser<http::string_body>;

inline constexpr unsigned kHttp11 = 11;  // Beast's version number for HTTP/1.1
inline constexpr std::string_view kServerName = "microvm";
inline constexpr std::string_view kJsonType = "application/json";
// RFC 9110 §10.1.1: the interim answer to "Expect: 100-continue".
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// sun_path in <sys/un.h>, including the terminating NUL.
inline constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;

// Boost 1.74's Beast takes boost::string_view.
[[nodiscard]] inline boost::beast::string_view view(std::string_view text) {
  return {text.data(), text.size()};
}

// A fresh parser's header and body limits.
void configure(RequestParser& parser, const Limits& limits);
// True when the client waits for "100 Continue" before sending the body it announced.
[[nodiscard]] bool wants_continue(const RequestParser& parser);
[[nodiscard]] Request to_request(const HttpRequest& request);
// The HTTP/1.1 message for `response` (a 405 carries its Allow header).
[[nodiscard]] HttpResponse to_http(const Response& response, bool keep_alive);
// The same as bytes on the wire.
[[nodiscard]] std::string serialize(const Response& response, bool keep_alive);
// The answer to a request that could not be read, after which the connection closes; nullopt when
// the client went away (nothing to answer).
[[nodiscard]] std::optional<Response> read_failure(const boost::beast::error_code& error, const Limits& limits);

}  // namespace microvm::api::wire
