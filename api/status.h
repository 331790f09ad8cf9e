// HTTP status codes (RFC 9110 §15) the API answers with.
#pragma once

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

}  // namespace microvm::api
