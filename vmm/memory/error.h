// Error values: every fallible operation returns Result<T>; the message is what a user reads.
#pragma once

#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace microvm {

struct Error {
  std::string message;

  // Prefixes the message with what was being done: "loading kernel: <message>".
  [[nodiscard]] Error context(std::string_view what) const { return Error{fmt::format("{}: {}", what, message)}; }
};

template <typename T = void>
using Result = std::expected<T, Error>;

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{fmt::format(format, std::forward<Args>(args)...)});
}

// Message for the current errno, e.g. "Permission denied".
std::string errno_text(int err);

}  // namespace microvm

// TRY(expr): evaluates a Result; returns its error from the enclosing function, else yields the value.
#define TRY(...)                                                   \
  ({                                                               \
    auto&& try_result_ = (__VA_ARGS__);                            \
    if (!try_result_) return std::unexpected(try_result_.error()); \
    std::move(*try_result_);                                       \
  })

// TRY_CONTEXT(what, expr): like TRY, but prefixes the error with `what` ("what: message").
// (g++ 12's std::expected has no transform_error yet.)
#define TRY_CONTEXT(what, ...)                                                   \
  ({                                                                             \
    auto&& try_result_ = (__VA_ARGS__);                                          \
    if (!try_result_) return std::unexpected(try_result_.error().context(what)); \
    std::move(*try_result_);                                                     \
  })

// TRY_VOID(expr): the same for Result<void>.
#define TRY_VOID(...)                                              \
  do {                                                             \
    auto&& try_result_ = (__VA_ARGS__);                            \
    if (!try_result_) return std::unexpected(try_result_.error()); \
  } while (false)
