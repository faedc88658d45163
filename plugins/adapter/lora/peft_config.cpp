#include "peft_config.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>

namespace banyan::lora {
namespace {

// ordered: rank_pattern / alpha_pattern are tried in file order, as PEFT does.
using json = nlohmann::ordered_json;

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get<std::string>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with_part(const std::string& name, const std::string& key) {
  return name.size() > key.size() && name.compare(name.size() - key.size(), key.size(), key) == 0 &&
         name[name.size() - key.size() - 1] == '.';
}

bool in_list(const std::string& name, const std::vector<std::string>& list) {
  for (const auto& k : list)
    if (name == k || ends_with_part(name, k)) return true;
  return false;
}

// Keys that change what the adapter computes, which this plugin does not implement.
// (key, the value PEFT uses when the feature is off, what it is)
struct Unsupported {
  const char* key;
  const char* what;
};
constexpr Unsupported kUnsupported[] = {
    {"modules_to_save", "full copies of modules (modules_to_save)"},
    {"lora_bias", "a bias on lora_B (lora_bias)"},
    {"layer_replication", "layer replication"},
    {"target_parameters", "LoRA on parameters (target_parameters)"},
    {"trainable_token_indices", "trainable token embeddings (trainable_token_indices)"},
    {"alora_invocation_tokens", "activated LoRA (alora_invocation_tokens)"},
    {"use_qalora", "QA-LoRA (use_qalora)"},
    {"use_bdlora", "block-diagonal LoRA (use_bdlora)"},
    {"arrow_config", "Arrow routing (arrow_config)"},
    {"monteclora_config", "MonteCLoRA (monteclora_config)"},
    {"velora_config", "VeLoRA (velora_config)"},
    {"kasa_config", "KaSA (kasa_config)"},
};

std::vector<std::string> string_or_list(const json& v, const std::string& at) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& x : v) {
      if (!x.is_string()) throw Error(at + " must hold strings, got " + x.dump());
      out.push_back(x.get<std::string>());
    }
  } else if (!v.is_null()) {
    throw Error(at + " must be a string or a list of strings, got " + v.dump());
  }
  return out;
}

}  // namespace

PeftConfig PeftConfig::read(const std::filesystem::path& file) {
  PeftConfig c;
  c.file = file;
  const std::string f = file.string();
  std::ifstream in(file);
  if (!in) throw Error(Code::not_found, "cannot read " + f);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(f + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(f + ": expected a JSON object");
  auto at = [&](const char* key) { return f + ": \"" + std::string(key) + "\""; };

  if (auto t = j.find("peft_type"); t != j.end() && !t->is_null()) {
    std::string type = t->is_string() ? t->get<std::string>() : t->dump();
    if (type != "LORA")
      throw Error(Code::unsupported, f + ": peft_type is \"" + type +
                                         "\"; the lora plugin reads LORA adapters only");
  }
  for (const auto& u : kUnsupported)
    if (auto v = j.find(u.key); v != j.end() && truthy(*v))
      throw Error(Code::unsupported, at(u.key) + " is " + v->dump() + ": " + u.what +
                                         " is not supported by the lora plugin; only the "
                                         "low-rank matrices (and DoRA magnitudes) are applied");
  if (auto b = j.find("bias"); b != j.end() && !b->is_null() && *b != "none")
    throw Error(Code::unsupported, at("bias") + " is " + b->dump() +
                                       ": trained base-layer biases are not supported "
                                       "(only bias \"none\")");

  auto number = [&](const char* key, double def) {
    auto v = j.find(key);
    if (v == j.end() || v->is_null()) return def;
    if (!v->is_number()) throw Error(at(key) + " must be a number, got " + v->dump());
    return v->get<double>();
  };
  auto boolean = [&](const char* key) {
    auto v = j.find(key);
    if (v == j.end() || v->is_null()) return false;
    if (!v->is_boolean()) throw Error(at(key) + " must be true or false, got " + v->dump());
    return v->get<bool>();
  };
  const double r = number("r", 8);
  if (r < 1 || r != std::floor(r)) throw Error(at("r") + " must be a positive integer");
  c.r = static_cast<int32_t>(r);
  c.lora_alpha = number("lora_alpha", 8);
  c.use_rslora = boolean("use_rslora");
  c.use_dora = boolean("use_dora");
  c.fan_in_fan_out = boolean("fan_in_fan_out");
  if (auto v = j.find("base_model_name_or_path"); v != j.end() && v->is_string())
    c.base_model = v->get<std::string>();

  if (auto t = j.find("target_modules"); t != j.end() && !t->is_null()) {
    c.has_targets = true;
    if (t->is_string()) {
      const std::string s = t->get<std::string>();
      if (lower(s) == "all-linear") {
        c.all_linear = true;
      } else {
        c.target_is_regex = true;
        c.target_regex = s;
        PyRegex(s, at("target_modules"));  // refuse a bad pattern now
      }
    } else {
      c.target_list = string_or_list(*t, at("target_modules"));
    }
  }
  if (auto e = j.find("exclude_modules"); e != j.end() && !e->is_null()) {
    if (e->is_string()) {
      c.exclude_regex = e->get<std::string>();
      PyRegex(*c.exclude_regex, at("exclude_modules"));
    } else {
      c.exclude_list = string_or_list(*e, at("exclude_modules"));
    }
  }
  if (auto l = j.find("layers_to_transform"); l != j.end() && !l->is_null()) {
    if (l->is_number_integer()) {
      c.layers_to_transform.push_back(l->get<int64_t>());
    } else if (l->is_array()) {
      for (const auto& x : *l) {
        if (!x.is_number_integer()) throw Error(at("layers_to_transform") + " must hold integers");
        c.layers_to_transform.push_back(x.get<int64_t>());
      }
    } else {
      throw Error(at("layers_to_transform") + " must be an integer or a list of integers");
    }
  }
  if (auto p = j.find("layers_pattern"); p != j.end())
    c.layers_pattern = string_or_list(*p, at("layers_pattern"));
  if (auto p = j.find("rank_pattern"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) throw Error(at("rank_pattern") + " must be a mapping");
    for (const auto& [k, v] : p->items()) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        throw Error(at("rank_pattern") + ": \"" + k + "\" must map to a positive integer");
      PyRegex(k, at("rank_pattern"));
      c.rank_pattern.emplace_back(k, v.get<int32_t>());
    }
  }
  if (auto p = j.find("alpha_pattern"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) throw Error(at("alpha_pattern") + " must be a mapping");
    for (const auto& [k, v] : p->items()) {
      if (!v.is_number()) throw Error(at("alpha_pattern") + ": \"" + k + "\" must map to a number");
      PyRegex(k, at("alpha_pattern"));
      c.alpha_pattern.emplace_back(k, v.get<double>());
    }
  }
  return c;
}

bool PeftConfig::targets(const std::string& name, bool is_output) const {
  const std::string what = file.string();
  if (exclude_regex) {
    if (PyRegex::fullmatch(*exclude_regex, name, what + ": exclude_modules")) return false;
  } else if (in_list(name, exclude_list)) {
    return false;
  }
  if (!has_targets) return true;
  if (all_linear) return !is_output;  // PEFT lists the modules by full name: no layer filter
  if (target_is_regex) return PyRegex::fullmatch(target_regex, name, what + ": target_modules");
  if (std::find(target_list.begin(), target_list.end(), name) != target_list.end()) return true;
  bool found = false;
  for (const auto& k : target_list) found = found || ends_with_part(name, k);
  if (!found || layers_to_transform.empty()) return found;
  std::optional<std::string> index;
  if (layers_pattern.empty()) {
    index = PyRegex::match_group1(R"(.*?\.[^.]*\.(\d+)\.)", name, what);
  } else {
    for (const auto& p : layers_pattern) {
      index = PyRegex::match_group1(".*?\\." + p + "\\.(\\d+)\\.", name, what + ": layers_pattern");
      if (index) break;
    }
  }
  if (!index || index->empty()) return false;
  const int64_t layer = std::stoll(*index);
  return std::find(layers_to_transform.begin(), layers_to_transform.end(), layer) !=
         layers_to_transform.end();
}

namespace {
template <class V>
const V* pattern_value(const std::vector<std::pair<std::string, V>>& patterns,
                       const std::string& name, const std::string& what) {
  for (const auto& [key, value] : patterns)
    if (PyRegex::fullmatch("(.*\\.)?(" + key + ")", name, what)) return &value;
  return nullptr;
}
}  // namespace

int32_t PeftConfig::rank_of(const std::string& name) const {
  const int32_t* v = pattern_value(rank_pattern, name, file.string() + ": rank_pattern");
  return v ? *v : r;
}

double PeftConfig::alpha_of(const std::string& name) const {
  const double* v = pattern_value(alpha_pattern, name, file.string() + ": alpha_pattern");
  return v ? *v : lora_alpha;
}

double PeftConfig::scaling_of(const std::string& name) const {
  const double rank = rank_of(name), alpha = alpha_of(name);
  return use_rslora ? alpha / std::sqrt(rank) : alpha / rank;
}

}  // namespace banyan::lora
