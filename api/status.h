// HTTP status codes (RFC 9110 §15) the API answers with, and the one mapping from an Error's kind
// (base/result.h) to the status its client gets.
#pragma once

#include "base/result.h"

namespace microvm::api {

inline constexpr unsigned kStatusContinue = 100;
inline constexpr unsigned kStatusOk = 200;
inline constexpr unsigned kStatusNoContent = 204;
inline constexpr unsigned kStatusBadRequest = 400;
inline constexpr unsigned kStatusNotFound = 404;
inline constexpr unsigned kStatusMethodNotAllowed = 405;
inline constexpr unsigned kStatusRequestTimeout = 408;
inline constexpr unsigned kStatusPayloadTooLarge = 413;
inline constexpr unsigned kStatusHeaderTooLarge = 431;
inline constexpr unsigned kStatusInternalError = 500;
inline constexpr unsigned kStatusUnavailable = 503;

// The status of a request that failed with an error of `kind`: 400 for what the client can change
// (its input, or its timing: Firecracker answers a request in the wrong state with 400 too), 500 for
// what it cannot (the host, KVM, a bug in microvm).
[[nodiscard]] constexpr unsigned http_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kWrongState: return kStatusBadRequest;
    // A guest failure on an API call comes from what the client chose to boot (a kernel or image that
    // is not what it claims): the client can fix it by sending another, and the VMM itself is fine, so
    // a 5xx (which invites retrying the same request) would be wrong.
    case ErrorKind::kGuest: return kStatusBadRequest;
    case ErrorKind::kHost:
    case ErrorKind::kKvm:
    case ErrorKind::kInternal: return kStatusInternalError;
  }
  return kStatusInternalError;  // not a kind: a bug
}

}  // namespace microvm::api
