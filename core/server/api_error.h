// Errors answered to HTTP clients. Route code throws ApiError; the session turns it
// into a response in the shape the route's API uses: OpenAI's
// {"error": {"message", "type", "param", "code"}} or TGI's {"error", "error_type"}.
#pragma once

#include <stdexcept>
#include <string>

namespace banyan::core::server {

enum class ErrorShape { openai, tgi };

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : std::runtime_error(std::move(message)),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }    ///< the field at fault, or ""
  const std::string& code() const { return code_; }      ///< e.g. "model_not_found", or ""

  /// The JSON body in the given shape (one line, no trailing newline).
  std::string body(ErrorShape shape) const;

 private:
  int status_;
  std::string type_, param_, code_;
};

/// 400 invalid_request_error about one field.
ApiError bad_field(const std::string& param, const std::string& message);

/// TGI's error_type for an HTTP status ("validation", "overloaded", ...).
const char* tgi_error_type(int status);

}  // namespace banyan::core::server
