#include "api/http/wire.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

namespace microvm::api::wire {

void configure(RequestParser& parser, const Limits& limits) {
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header, UINT32_MAX)));
  parser.body_limit(limits.max_body);
}

bool wants_continue(const RequestParser& parser) {
  if (parser.is_done()) return false;
  const auto expect = parser.get()[http::field::expect];
  return boost::beast::iequals(expect, "100-continue");
}

Request to_request(const HttpRequest& request) {
  return Request{std::string(request.method_string()), std::string(request.target()), request.body()};
}

HttpResponse to_http(const Response& response, bool keep_alive) {
  HttpResponse out{static_cast<http::status>(response.status), kHttp11};
  out.set(http::field::server, view(kServerName));
  if (!response.body.empty()) out.set(http::field::content_type, view(kJsonType));
  out.body() = response.body;
  // RFC 9110 §15.5.6: a 405 lists the methods the target takes.
  if (response.status == kStatusMethodNotAllowed) out.set(http::field::allow, view(response.allow));
  out.keep_alive(keep_alive);
  // RFC 9110 §8.6: no Content-Length in a 204.
  if (response.status != kStatusNoContent) out.prepare_payload();
  return out;
}

std::string serialize(const Response& response, bool keep_alive) {
  std::ostringstream text;
  text << to_http(response, keep_alive);
  return text.str();
}

std::optional<Response> read_failure(const boost::beast::error_code& error, const Limits& limits) {
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

}  // namespace microvm::api::wire
