// Errors for the container init: every fallible step returns Result<T>; the message is the one line
// the init prints on the console ("microvm-init: <message>"). Kept apart from vmm/memory/error.h so
// the static init needs no fmt and defines no TRY macros that would clash with the VMM's.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace microvm::guest {

struct Error {
  std::string message;

  // Prefixes the message with what was being done: "mounting /dev/vda: <message>".
  [[nodiscard]] Error context(std::string_view what) const { return Error{std::string(what) + ": " + message}; }
};

template <typename T = void>
using Result = std::expected<T, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected(Error{std::move(message)});
}

// "what: <strerror(err)>", for a failed system call.
[[nodiscard]] std::unexpected<Error> fail_errno(std::string_view what, int err);

// Text in double quotes, the way the init quotes names in its messages: "foo".
[[nodiscard]] std::string in_quotes(std::string_view text);

}  // namespace microvm::guest
