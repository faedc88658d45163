#include "core/server/json_fields.h"

#include <cmath>
#include <sstream>

namespace banyan::core::server {

namespace {
// Deeply nested JSON would only cost stack and time; no route needs more than a few levels.
constexpr int kMaxDepth = 64;

bool too_deep(const std::string& s) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (char c : s) {
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}
}  // namespace

json parse_body_object(const std::string& body) {
  if (too_deep(body))
    throw ApiError(400, "request body nests deeper than " + std::to_string(kMaxDepth) + " levels");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at ...".
    auto pos = what.find("] ");
    throw ApiError(400, "request body is not valid JSON: " +
                            (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!j.is_object())
    throw ApiError(400, "request body must be a JSON object, got " + json_type_name(j));
  return j;
}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

std::optional<int64_t> as_integer(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

namespace {
std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

bool Fields::has(const char* key) const { return get(key) != nullptr; }

const json* Fields::get(const char* key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> Fields::boolean(const char* key) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw error(key, "expected a boolean, got " + json_type_name(*v));
  return v->get<bool>();
}

std::optional<int64_t> Fields::integer(const char* key, int64_t min, int64_t max) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  auto i = as_integer(*v);
  if (!i) throw error(key, "expected an integer, got " + json_type_name(*v));
  if (*i < min || *i > max)
    throw error(key, std::to_string(*i) + " is out of range [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
  return i;
}

std::optional<double> Fields::number(const char* key, double min, double max) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw error(key, "expected a number, got " + json_type_name(*v));
  double d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max)
    throw error(key, num(d) + " is out of range [" + num(min) + ", " + num(max) + "]");
  return d;
}

std::optional<double> Fields::number_above(const char* key, double min, double max) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw error(key, "expected a number, got " + json_type_name(*v));
  double d = v->get<double>();
  if (!std::isfinite(d) || d <= min || d > max)
    throw error(key, num(d) + " is out of range (" + num(min) + ", " + num(max) + "]");
  return d;
}

std::optional<std::string> Fields::string(const char* key) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw error(key, "expected a string, got " + json_type_name(*v));
  return v->get<std::string>();
}

std::vector<std::string> Fields::string_or_list(const char* key, size_t max_items) const {
  const json* v = get(key);
  if (!v) return {};
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array())
    throw error(key, "expected a string or a list of strings, got " + json_type_name(*v));
  if (v->size() > max_items)
    throw error(key, "at most " + std::to_string(max_items) + " items, got " +
                         std::to_string(v->size()));
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string()) throw error(key, "expected strings, got " + json_type_name(e));
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int64_t> Fields::int_list(const char* key, int64_t min, int64_t max,
                                      size_t max_items) const {
  const json* v = get(key);
  if (!v) return {};
  if (!v->is_array()) throw error(key, "expected a list of integers, got " + json_type_name(*v));
  if (v->size() > max_items)
    throw error(key, "at most " + std::to_string(max_items) + " items, got " +
                         std::to_string(v->size()));
  std::vector<int64_t> out;
  for (const auto& e : *v) {
    auto i = as_integer(e);
    if (!i) throw error(key, "expected integers, got " + json_type_name(e));
    if (*i < min || *i > max)
      throw error(key, std::to_string(*i) + " is out of range [" + std::to_string(min) + ", " +
                           std::to_string(max) + "]");
    out.push_back(*i);
  }
  return out;
}

}  // namespace banyan::core::server
