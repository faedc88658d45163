#include "core/config/config.h"

#include "core/common/strings.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace banyan::core {
namespace {

using nlohmann::json;

std::string qt(const std::string& s) { return json(s).dump(); }

std::string describe(const YAML::Node& n) {
  if (n.IsScalar()) return qt(n.Scalar());
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "null";
}

std::optional<int64_t> as_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  try {
    long long v = std::stoll(s, &pos, 10);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<double> as_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  try {
    double v = std::stod(s, &pos);
    if (pos == s.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<bool> as_bool(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "off") return false;
  return std::nullopt;
}

bool is_null_scalar(const YAML::Node& n) {
  return n.IsNull() || (n.IsScalar() && n.Tag() != "!" && (n.Scalar() == "~" || n.Scalar() == "null"));
}

json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n) o[kv.first.Scalar()] = yaml_to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& x : n) a.push_back(yaml_to_json(x));
    return a;
  }
  if (is_null_scalar(n)) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (auto i = as_int(s)) return *i;
  if (auto d = as_number(s)) return *d;
  if (auto b = as_bool(s)) return *b;
  return s;
}

// Converts one scalar/list to a typed value, or returns an error message.
std::string convert(const ConfigKey& key, const YAML::Node& n, ConfigValue& out) {
  const std::string expected = std::string("expected ") + type_name(key.type);
  if (is_null_scalar(n) && key.type != ValueType::mapping) {
    if (key.default_yaml.empty()) {
      out = std::monostate{};
      return {};
    }
    return expected + ", got null";
  }
  auto range_error = [&](double v) -> std::string {
    if ((key.min && v < *key.min) || (key.max && v > *key.max)) {
      std::ostringstream o;
      o << v << " is out of range";
      if (key.min && key.max) o << " [" << *key.min << ", " << *key.max << "]";
      else if (key.min) o << " (at least " << *key.min << ")";
      return o.str();
    }
    return {};
  };
  switch (key.type) {
    case ValueType::boolean: {
      auto b = n.IsScalar() ? as_bool(n.Scalar()) : std::nullopt;
      if (!b) return expected + ", got " + describe(n);
      out = *b;
      return {};
    }
    case ValueType::integer: {
      auto i = n.IsScalar() ? as_int(n.Scalar()) : std::nullopt;
      if (!i) return expected + ", got " + describe(n);
      if (auto e = range_error(static_cast<double>(*i)); !e.empty()) return e;
      out = *i;
      return {};
    }
    case ValueType::number: {
      auto d = n.IsScalar() ? as_number(n.Scalar()) : std::nullopt;
      if (!d) return expected + ", got " + describe(n);
      if (auto e = range_error(*d); !e.empty()) return e;
      out = *d;
      return {};
    }
    case ValueType::bytes: {
      if (!n.IsScalar()) return expected + ", got " + describe(n);
      try {
        size_t b = parse_bytes(n.Scalar());
        if (auto e = range_error(static_cast<double>(b)); !e.empty()) return e;
        out = static_cast<int64_t>(b);
      } catch (const Error& e) {
        return expected + ", got " + describe(n) + " (" + e.what() + ")";
      }
      return {};
    }
    case ValueType::string: {
      if (!n.IsScalar()) return expected + ", got " + describe(n);
      if (!key.choices.empty() &&
          std::find(key.choices.begin(), key.choices.end(), n.Scalar()) == key.choices.end()) {
        std::string list;
        for (const auto& c : key.choices) list += (list.empty() ? "" : ", ") + c;
        return qt(n.Scalar()) + " is not one of " + list;
      }
      out = n.Scalar();
      return {};
    }
    case ValueType::string_list: {
      std::vector<std::string> v;
      if (!n.IsSequence()) return expected + ", got " + describe(n);
      for (const auto& x : n) {
        if (!x.IsScalar()) return expected + ", got a list holding " + describe(x);
        v.push_back(x.Scalar());
      }
      out = std::move(v);
      return {};
    }
    case ValueType::adapter_list: {
      std::vector<AdapterSpec> v;
      if (!n.IsSequence()) return expected + ", got " + describe(n);
      for (const auto& x : n) {
        AdapterSpec a;
        if (x.IsScalar()) {
          auto eq = x.Scalar().find('=');
          if (eq == std::string::npos || eq == 0 || eq + 1 == x.Scalar().size())
            return "expected name=path, got " + qt(x.Scalar());
          a.name = x.Scalar().substr(0, eq);
          a.path = x.Scalar().substr(eq + 1);
        } else if (x.IsMap()) {
          for (const auto& kv : x) {
            std::string k = kv.first.Scalar();
            if (k != "name" && k != "path")
              return "unknown key " + qt(k) + " in an adapter entry (expected name, path)";
            if (!kv.second.IsScalar()) return qt(k) + " of an adapter entry must be a string";
            (k == "name" ? a.name : a.path) = kv.second.Scalar();
          }
          if (a.name.empty() || a.path.empty()) return "an adapter entry needs both name and path";
        } else {
          return expected + ", got a list holding " + describe(x);
        }
        for (const auto& prev : v)
          if (prev.name == a.name) return "adapter name " + qt(a.name) + " appears twice";
        v.push_back(std::move(a));
      }
      out = std::move(v);
      return {};
    }
    case ValueType::mapping:
      if (!n.IsMap() && !is_null_scalar(n)) return expected + ", got " + describe(n);
      return {};
  }
  return "internal: unhandled type";
}

// Section names ("engine", ...) and the top-level leaf keys.
std::set<std::string> children_of(const std::string& prefix) {
  std::set<std::string> out;
  for (const auto& k : config_schema()) {
    if (!prefix.empty() && k.path.rfind(prefix + ".", 0) != 0) continue;
    std::string rest = prefix.empty() ? k.path : k.path.substr(prefix.size() + 1);
    out.insert(rest.substr(0, rest.find('.')));
  }
  return out;
}

bool is_section(const std::string& path) {
  for (const auto& k : config_schema())
    if (k.path.rfind(path + ".", 0) == 0) return true;
  return false;
}

}  // namespace

std::string ConfigIssue::str() const {
  std::string s = key.empty() ? message : key + ": " + message;
  if (!where.empty()) s += " (" + where + ")";
  return s;
}

Config::Config() {
  for (const auto& k : config_schema()) {
    Entry e;
    if (k.type == ValueType::mapping) {
      mappings_[k.path] = "{}";
    } else if (!k.default_yaml.empty()) {
      std::string err = convert(k, YAML::Load(k.default_yaml), e.value);
      if (!err.empty()) throw Error(Code::internal, "bad default of " + k.path + ": " + err);
    }
    values_[k.path] = std::move(e);
  }
}

void Config::merge_yaml_file(const std::filesystem::path& file, std::vector<ConfigIssue>& issues) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    issues.push_back({"", "cannot read configuration file: no such file", file.string()});
    return;
  }
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    issues.push_back({"", "cannot read configuration file", file.string()});
    return;
  }
  merge_yaml_text(ss.str(), file.string(), issues);
}

void Config::merge_yaml_text(const std::string& text, const std::string& source,
                             std::vector<ConfigIssue>& issues) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    issues.push_back({"", std::string("not valid YAML: ") + e.msg,
                      source + ":" + std::to_string(e.mark.line + 1)});
    return;
  }
  if (root.IsNull()) return;  // an empty file is a valid, all-default deployment
  auto where = [&](const YAML::Node& n) {
    return n.Mark().line >= 0 ? source + ":" + std::to_string(n.Mark().line + 1) : source;
  };
  std::function<void(const YAML::Node&, const std::string&)> walk =
      [&](const YAML::Node& node, const std::string& prefix) {
        if (!node.IsMap()) {
          issues.push_back({prefix, "expected a mapping, got " + describe(node), where(node)});
          return;
        }
        for (const auto& kv : node) {
          std::string name = kv.first.Scalar();
          std::string path = prefix.empty() ? name : prefix + "." + name;
          if (const ConfigKey* key = find_key(path)) {
            ConfigValue v;
            std::string err = convert(*key, kv.second, v);
            if (!err.empty()) {
              issues.push_back({path, err, where(kv.second)});
            } else if (key->type == ValueType::mapping) {
              mappings_[path] = is_null_scalar(kv.second) ? "{}" : yaml_to_json(kv.second).dump();
              values_[path].source = where(kv.second);
            } else {
              values_[path] = {std::move(v), where(kv.second)};
            }
          } else if (is_section(path)) {
            walk(kv.second, path);
          } else {
            auto siblings = children_of(prefix);
            std::string hint =
                closest_match(name, std::vector<std::string>(siblings.begin(), siblings.end()));
            if (hint.empty()) {  // maybe the key belongs to another section
              for (const auto& k : config_schema())
                if (k.path.size() > name.size() &&
                    k.path.compare(k.path.size() - name.size(), name.size(), name) == 0 &&
                    k.path[k.path.size() - name.size() - 1] == '.')
                  hint = k.path;
            } else if (!prefix.empty()) {
              hint = prefix + "." + hint;
            }
            issues.push_back({path, std::string("unknown key") + (hint.empty() ? "" : "; did you mean " + qt(hint) + "?"),
                              where(kv.first)});
          }
        }
      };
  walk(root, "");
}

void Config::set_from_text(const std::string& key_path, const std::vector<std::string>& texts,
                           const std::string& source, std::vector<ConfigIssue>& issues) {
  const ConfigKey* key = find_key(key_path);
  if (!key) throw Error(Code::internal, "no configuration key " + key_path);
  YAML::Node n;
  if (key->type == ValueType::string_list || key->type == ValueType::adapter_list) {
    n = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& t : texts) n.push_back(t);
  } else {
    n = YAML::Node(texts.empty() ? std::string() : texts.back());
  }
  ConfigValue v;
  std::string err = convert(*key, n, v);
  if (!err.empty()) {
    issues.push_back({key_path, err, source});
    return;
  }
  values_[key_path] = {std::move(v), source};
}

const ConfigValue& Config::value(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw Error(Code::internal, "no configuration key " + key);
  return it->second.value;
}

bool Config::has(const std::string& key) const {
  return !std::holds_alternative<std::monostate>(value(key));
}
bool Config::get_bool(const std::string& key) const { return std::get<bool>(value(key)); }
int64_t Config::get_int(const std::string& key) const { return std::get<int64_t>(value(key)); }
double Config::get_number(const std::string& key) const { return std::get<double>(value(key)); }
size_t Config::get_bytes(const std::string& key) const {
  return static_cast<size_t>(std::get<int64_t>(value(key)));
}
std::string Config::get_string(const std::string& key) const {
  const auto& v = value(key);
  return std::holds_alternative<std::monostate>(v) ? std::string() : std::get<std::string>(v);
}
std::vector<std::string> Config::get_strings(const std::string& key) const {
  return std::get<std::vector<std::string>>(value(key));
}
std::vector<AdapterSpec> Config::get_adapters(const std::string& key) const {
  return std::get<std::vector<AdapterSpec>>(value(key));
}
std::string Config::get_mapping_json(const std::string& key) const {
  auto it = mappings_.find(key);
  if (it == mappings_.end()) throw Error(Code::internal, "no mapping key " + key);
  return it->second;
}
std::string Config::source(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second.source;
}

std::string Config::dump_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const auto& k : config_schema()) {
    auto dot = k.path.find('.');
    std::string s = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (s != section) {
      if (!section.empty()) out << YAML::EndMap;
      section = s;
      if (!s.empty()) out << YAML::Key << s << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << (dot == std::string::npos ? k.path : k.path.substr(dot + 1)) << YAML::Value;
    if (k.type == ValueType::mapping) {
      out << YAML::Load(mappings_.at(k.path));
      continue;
    }
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::monostate>) out << YAML::Null;
          else if constexpr (std::is_same_v<T, std::vector<AdapterSpec>>) {
            out << YAML::BeginSeq;
            for (const auto& a : v)
              out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << a.name << YAML::Key
                  << "path" << YAML::Value << a.path << YAML::EndMap;
            out << YAML::EndSeq;
          } else out << v;
        },
        values_.at(k.path).value);
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace banyan::core
