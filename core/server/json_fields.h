// Typed reading of request bodies: each getter checks one field's type and range
// and throws ApiError (400, naming the field) when it is wrong. A missing field and
// a JSON null both read as "not given".
#pragma once

#include "core/server/api_error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace banyan::core::server {

using json = nlohmann::json;

/// Parses a request body; malformed JSON or a non-object gives a 400.
json parse_body_object(const std::string& body);

class Fields {
 public:
  /// `obj` must be a JSON object; `prefix` is prepended to field names in messages
  /// (e.g. "parameters." for TGI).
  Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}

  bool has(const char* key) const;  ///< present and not null
  const json* get(const char* key) const;

  std::optional<bool> boolean(const char* key) const;
  std::optional<int64_t> integer(const char* key, int64_t min, int64_t max) const;
  std::optional<double> number(const char* key, double min, double max) const;
  /// A number strictly greater than `min` (e.g. TGI's temperature > 0).
  std::optional<double> number_above(const char* key, double min, double max) const;
  std::optional<std::string> string(const char* key) const;
  /// A string or a list of strings (OpenAI's `stop`); at most max_items.
  std::vector<std::string> string_or_list(const char* key, size_t max_items) const;
  /// A list of integers in [min, max]; at most max_items.
  std::vector<int64_t> int_list(const char* key, int64_t min, int64_t max,
                                size_t max_items) const;

  std::string name(const char* key) const { return prefix_ + key; }
  ApiError error(const char* key, const std::string& message) const {
    return bad_field(name(key), message);
  }

 private:
  const json& obj_;
  std::string prefix_;
};

/// An integer from a JSON value (integral floats accepted), or nullopt.
std::optional<int64_t> as_integer(const json& v);

/// "a string", "an integer", ... for messages.
std::string json_type_name(const json& v);

}  // namespace banyan::core::server
