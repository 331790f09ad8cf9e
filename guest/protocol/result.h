// Errors for the container init: the project's one Error type (base/result.h: a message and a
// kind), with the init's own helpers. The message is the one line the init prints on the console
// ("microvm-init: <message>"). base/result.h needs no fmt, so the static init stays small.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace microvm::guest {

using microvm::Error;
using microvm::Result;

[[nodiscard]] inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected(Error{std::move(message)});
}

// "what: <strerror(err)>", for a failed system call.
[[nodiscard]] std::unexpected<Error> fail_errno(std::string_view what, int err);

// Text in double quotes, the way the init quotes names in its messages: "foo".
[[nodiscard]] std::string in_quotes(std::string_view text);

}  // namespace microvm::guest
