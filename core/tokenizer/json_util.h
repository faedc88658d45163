// Small helpers for reading tokenizer JSON files with errors that name the file and the
// component path ("tokenizer.json: pre_tokenizer.pretokenizers[1]: ..."). Internal to
// core/tokenizer (it includes nlohmann/json).
#pragma once

#include <banyan/error.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace banyan::core::json {

using Json = nlohmann::json;

/// A JSON node plus where it sits, for error messages.
struct Node {
  const Json& j;
  std::string where;  // "tokenizer.json: normalizer.normalizers[0]"

  // The root node's `where` is "file:"; paths below it read "file: a.b[2].c".
  Node child(std::string_view key) const {
    const bool root = !where.empty() && where.back() == ':';
    return {j.at(std::string(key)), where + (root ? " " : ".") + std::string(key)};
  }
  Node at(size_t i) const { return {j.at(i), where + "[" + std::to_string(i) + "]"}; }

  [[noreturn]] void fail(const std::string& what) const {
    std::string w = where;
    if (!w.empty() && w.back() == ':') w.pop_back();
    throw Error(w + ": " + what);
  }

  bool has(std::string_view key) const {
    return j.is_object() && j.contains(key) && !j.at(std::string(key)).is_null();
  }

  std::string type() const {
    if (!j.is_object()) fail("expected an object, found " + std::string(j.type_name()));
    if (!j.contains("type") || !j["type"].is_string()) fail("missing the \"type\" field");
    return j["type"].get<std::string>();
  }

  std::string str(std::string_view key) const {
    if (!has(key) || !j.at(std::string(key)).is_string()) fail("\"" + std::string(key) + "\" must be a string");
    return j.at(std::string(key)).get<std::string>();
  }
  std::string str_or(std::string_view key, const std::string& dflt) const {
    return has(key) ? str(key) : dflt;
  }
  bool boolean_or(std::string_view key, bool dflt) const {
    if (!has(key)) return dflt;
    const Json& v = j.at(std::string(key));
    if (!v.is_boolean()) fail("\"" + std::string(key) + "\" must be true or false");
    return v.get<bool>();
  }
  int64_t integer(std::string_view key) const {
    if (!has(key) || !j.at(std::string(key)).is_number_integer())
      fail("\"" + std::string(key) + "\" must be an integer");
    return j.at(std::string(key)).get<int64_t>();
  }
  int64_t integer_or(std::string_view key, int64_t dflt) const { return has(key) ? integer(key) : dflt; }
  Node array(std::string_view key) const {
    if (!has(key) || !j.at(std::string(key)).is_array()) fail("\"" + std::string(key) + "\" must be an array");
    return child(key);
  }
};

/// Reads a single character field (Metaspace replacement, Strip content).
char32_t single_char(const Node& n, std::string_view key);

}  // namespace banyan::core::json
