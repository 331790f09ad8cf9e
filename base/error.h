// Formatting helpers over base/result.h: fail("...{}...", args) makes an error value. fail() is for
// the caller's mistakes (ErrorKind::kInvalidArgument); the other kinds have their own helper, so a
// call site says whose fault it reports.
#pragma once

#include <fmt/format.h>

#include <utility>

#include "base/result.h"

namespace microvm {

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail_kind(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{fmt::format(format, std::forward<Args>(args)...), kind});
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args) {
  return fail_kind(ErrorKind::kInvalidArgument, format, std::forward<Args>(args)...);
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail_state(fmt::format_string<Args...> format, Args&&... args) {
  return fail_kind(ErrorKind::kWrongState, format, std::forward<Args>(args)...);
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail_host(fmt::format_string<Args...> format, Args&&... args) {
  return fail_kind(ErrorKind::kHost, format, std::forward<Args>(args)...);
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail_kvm(fmt::format_string<Args...> format, Args&&... args) {
  return fail_kind(ErrorKind::kKvm, format, std::forward<Args>(args)...);
}

}  // namespace microvm
