#include "core/server/api_error.h"

#include <nlohmann/json.hpp>

namespace banyan::core::server {

std::string ApiError::body(ErrorShape shape) const {
  nlohmann::json j;
  if (shape == ErrorShape::tgi) {
    j = {{"error", what()}, {"error_type", tgi_error_type(status_)}};
  } else {
    nlohmann::json e = {{"message", what()}, {"type", type_}, {"param", nullptr},
                        {"code", nullptr}};
    if (!param_.empty()) e["param"] = param_;
    if (!code_.empty()) e["code"] = code_;
    j = {{"error", std::move(e)}};
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiError bad_field(const std::string& param, const std::string& message) {
  return ApiError(400, param + ": " + message, "invalid_request_error", param);
}

const char* tgi_error_type(int status) {
  switch (status) {
    case 400:
    case 413:
    case 422: return "validation";
    case 401: return "authentication";
    case 404: return "not_found";
    case 408: return "timeout";
    case 429: return "overloaded";
    case 503: return "unavailable";
    default: return status >= 500 ? "generation" : "validation";
  }
}

}  // namespace banyan::core::server
