#include "api/http/client.h"

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstdint>
#include <exception>
#include <optional>

#include "api/http/wire.h"
#include "base/error.h"

namespace microvm::api {
namespace {

namespace http = wire::http;
using boost::beast::error_code;
using wire::view;

// The largest response the client takes (metrics can be long).
constexpr std::uint64_t kMaxClientBody = 16ULL << 20;

}  // namespace

Result<Response> request(const std::string& socket_path, std::string_view method, std::string_view target,
                         std::string_view body, std::chrono::milliseconds timeout) {
  if (socket_path.size() > wire::kMaxSocketPath) return fail("API socket path {} is too long", socket_path);
  try {
    boost::asio::io_context io;
    wire::Local::socket socket(io);
    wire::HttpRequest message;
    message.version(wire::kHttp11);
    const http::verb verb = http::string_to_verb(view(method));
    if (verb == http::verb::unknown) {
      message.method_string(view(method));
    } else {
      message.method(verb);
    }
    message.target(view(target));
    message.set(http::field::host, "localhost");
    message.set(http::field::user_agent, view(wire::kServerName));
    if (!body.empty()) {
      message.set(http::field::content_type, view(wire::kJsonType));
      message.body() = std::string(body);
    }
    message.keep_alive(false);
    message.prepare_payload();

    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxClientBody);
    std::optional<error_code> connect_error;
    std::optional<error_code> write_error;
    std::optional<error_code> read_error;
    socket.async_connect(wire::Local::endpoint(socket_path), [&](const error_code& connected) {
      connect_error = connected;
      if (connected) return;
      http::async_write(socket, message, [&](const error_code& written, std::size_t) {
        write_error = written;
        // Read even when the write failed: the server may have answered early (413) and closed.
        http::async_read(socket, buffer, parser, [&](const error_code& read, std::size_t) { read_error = read; });
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
      const error_code& cause = write_error && *write_error ? *write_error : *read_error;
      return fail("API socket {}: {} {} failed: {}", socket_path, method, target, cause.message());
    }
    return Response{parser.get().result_int(), parser.get().body()};
  } catch (const std::exception& error) {
    return fail("API socket {}: {}", socket_path, error.what());
  }
}

}  // namespace microvm::api
