// Error values shared by the VMM and microvm-init: every fallible operation returns Result<T>; the
// message is the one line a user reads, the kind says whose fault it is (and so which HTTP status
// or exit code it becomes). No fmt here, so the static init can include it: the formatting helpers
// (fail(...)) are in base/error.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace microvm {

// Whose fault an error is. The API maps kinds to HTTP status codes (api/status.h) and the CLI to
// exit codes; everything else only passes them on.
enum class ErrorKind : std::uint8_t {
  kInvalidArgument,  // the caller's input is wrong: a value out of range, a file that cannot be opened
  kWrongState,       // well-formed input at the wrong time: a second InstanceStart, a change after start
  kHost,             // the host failed: out of memory, a system call that should not fail
  kKvm,              // KVM refused or failed an ioctl
  kGuest,            // the guest broke its side of a contract (a bad image, a crash)
  kInternal,         // a bug in microvm
};

[[nodiscard]] constexpr std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kWrongState: return "wrong state";
    case ErrorKind::kHost: return "host failure";
    case ErrorKind::kKvm: return "KVM failure";
    case ErrorKind::kGuest: return "guest failure";
    case ErrorKind::kInternal: return "internal error";
  }
  return "unknown";
}

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::kInvalidArgument;

  // Prefixes the message with what was being done: "loading kernel: <message>"; the kind stays.
  [[nodiscard]] Error context(std::string_view what) const {
    std::string text(what);
    text += ": ";
    text += message;
    return Error{std::move(text), kind};
  }
};

template <typename T = void>
using Result = std::expected<T, Error>;

[[nodiscard]] inline std::unexpected<Error> fail_with(ErrorKind kind, std::string message) {
  return std::unexpected(Error{std::move(message), kind});
}

// Message for an errno value, e.g. "Permission denied".
[[nodiscard]] inline std::string errno_text(int err) {
  return std::strerror(err);
}

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
