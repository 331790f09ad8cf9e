#include "guest/protocol/result.h"

#include <cstdio>
#include <cstring>

namespace microvm::guest {

std::unexpected<Error> fail_errno(std::string_view what, int err) {
  return std::unexpected(Error{std::string(what) + ": " + std::strerror(err), ErrorKind::kHost});
}

std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace microvm::guest
