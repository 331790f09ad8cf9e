#include "api/http/serve_bytes.h"

#include <boost/asio/buffer.hpp>

#include "api/handler.h"
#include "api/http/wire.h"

namespace microvm::api {

std::string serve_bytes(Controller& controller, std::string_view input, const Limits& limits) {
  namespace http = wire::http;
  std::string output;
  while (!input.empty()) {
    wire::RequestParser parser;
    wire::configure(parser, limits);
    parser.eager(false);  // stop after the header, as the socket server does, to see Expect: 100-continue
    bool continued = false;
    boost::beast::error_code error;
    while (!parser.is_done()) {
      const std::size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), error);
      input.remove_prefix(used);
      if (error == http::error::need_more) {
        if (used == 0) return output;  // the client closed in the middle of a request
        error = {};
      } else if (error) {
        if (auto response = wire::read_failure(error, limits)) output += wire::serialize(*response, false);
        return output;
      } else if (used == 0 && !parser.is_done()) {
        return output;  // no progress without more input: as a client that stopped sending
      }
      if (parser.is_header_done() && !continued && wire::wants_continue(parser)) {
        output += wire::kContinue;
        continued = true;
      }
    }
    const wire::HttpRequest& request = parser.get();
    output += wire::serialize(handle(controller, wire::to_request(request)), request.keep_alive());
    if (!request.keep_alive()) break;
  }
  return output;
}

}  // namespace microvm::api
