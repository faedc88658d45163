#include "core/plugin_host/plugin_manifest.h"

#include <banyan/error.h>

#include <yaml-cpp/yaml.h>

#include <set>

namespace banyan::core {
namespace {

std::string where(const fs::path& file, const YAML::Node& node) {
  const auto& m = node.Mark();
  return file.string() + (m.line >= 0 ? ":" + std::to_string(m.line + 1) : "");
}

std::string scalar(const fs::path& file, const YAML::Node& parent, const char* key, bool required) {
  YAML::Node n = parent[key];
  if (!n) {
    if (required) throw Error("plugin manifest " + file.string() + ": missing key \"" + key + "\"");
    return {};
  }
  if (!n.IsScalar())
    throw Error("plugin manifest " + where(file, n) + ": \"" + key + "\" must be a string");
  return n.Scalar();
}

bool matches_type(const YAML::Node& v, const std::string& type) {
  if (!v.IsScalar()) return false;
  try {
    if (type == "bool") return (void)v.as<bool>(), true;
    if (type == "int") return (void)v.as<long long>(), true;
    if (type == "float") return (void)v.as<double>(), true;
    if (type == "string") return true;
  } catch (const YAML::Exception&) {
  }
  return false;
}

std::string to_json_literal(const YAML::Node& v, const std::string& type) {
  if (type == "bool") return v.as<bool>() ? "true" : "false";
  if (type == "int") return std::to_string(v.as<long long>());
  if (type == "float") return std::to_string(v.as<double>());
  std::string s = "\"";
  for (char c : v.Scalar()) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  return s + "\"";
}

}  // namespace

PluginInfo read_manifest(const fs::path& manifest) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(manifest.string());
  } catch (const YAML::Exception& e) {
    throw Error("plugin manifest " + manifest.string() + ": not valid YAML: " + e.what());
  }
  if (!root.IsMap()) throw Error("plugin manifest " + manifest.string() + ": expected a mapping");
  static const std::set<std::string> known = {"name", "kind", "version", "library", "description",
                                              "options", "abi"};
  for (const auto& kv : root) {
    auto key = kv.first.Scalar();
    if (!known.count(key))
      throw Error("plugin manifest " + where(manifest, kv.first) + ": unknown key \"" + key + "\"");
  }
  PluginInfo info;
  info.manifest = manifest;
  info.name = scalar(manifest, root, "name", true);
  info.kind = scalar(manifest, root, "kind", true);
  info.version = scalar(manifest, root, "version", true);
  if (!kind_from_name(info.kind))
    throw Error("plugin manifest " + where(manifest, root["kind"]) + ": unknown kind \"" +
                info.kind + "\" (expected model, adapter, quantizer or decoding)");
  std::string lib = scalar(manifest, root, "library", true);
  info.library = manifest.parent_path() / lib;

  if (YAML::Node opts = root["options"]) {
    if (!opts.IsSequence())
      throw Error("plugin manifest " + where(manifest, opts) + ": \"options\" must be a list");
    std::set<std::string> seen;
    for (const auto& o : opts) {
      PluginOption opt;
      opt.name = scalar(manifest, o, "name", true);
      opt.type = scalar(manifest, o, "type", true);
      opt.doc = scalar(manifest, o, "doc", false);
      std::string at = "plugin manifest " + where(manifest, o) + ": option \"" + opt.name + "\"";
      if (!seen.insert(opt.name).second) throw Error(at + " is declared twice");
      if (opt.type != "bool" && opt.type != "int" && opt.type != "float" && opt.type != "string")
        throw Error(at + ": unknown type \"" + opt.type + "\" (bool, int, float or string)");
      if (YAML::Node d = o["default"]) {
        if (!matches_type(d, opt.type))
          throw Error(at + ": default is not a " + opt.type);
        opt.default_json = to_json_literal(d, opt.type);
      }
      for (const char* k : {"min", "max"}) {
        if (YAML::Node b = o[k]) {
          if (opt.type != "int" && opt.type != "float")
            throw Error(at + ": \"" + k + "\" applies to int and float options only");
          if (!matches_type(b, "float")) throw Error(at + ": \"" + k + "\" must be a number");
          (std::string(k) == "min" ? opt.min : opt.max) = b.as<double>();
        }
      }
      if (opt.min && opt.max && *opt.min > *opt.max) throw Error(at + ": min is greater than max");
      if (YAML::Node c = o["choices"]) {
        if (!c.IsSequence() || opt.type != "string")
          throw Error(at + ": \"choices\" must be a list, on a string option");
        for (const auto& x : c) opt.choices.push_back(x.Scalar());
      }
      info.options.push_back(std::move(opt));
    }
  }
  return info;
}

}  // namespace banyan::core
