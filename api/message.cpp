#include "api/message.h"

#include <nlohmann/json.hpp>

#include "api/json.h"

namespace microvm::api {

Response error_response(unsigned status, std::string_view message) {
  return Response{status, json_text(nlohmann::json{{"fault_message", message}})};
}

Response error_response(const Error& error) {
  return error_response(http_status(error.kind), error.message);
}

Response result_response(const Result<void>& result) {
  if (!result) return error_response(result.error());
  return Response{kStatusNoContent, {}};
}

}  // namespace microvm::api
