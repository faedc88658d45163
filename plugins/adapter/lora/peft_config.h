// adapter_config.json of a PEFT LoRA adapter, and PEFT's rules for which modules
// it adapts and with which rank and alpha:
//  - target_modules: a string is a regular expression that must match the whole
//    module name; a list matches a name equal to an entry or ending in "." + entry;
//    "all-linear" is every linear layer except the output projection;
//  - exclude_modules: the same forms, checked first;
//  - layers_to_transform (list form of target_modules only): the layer index is the
//    first number between dots ("model.layers.3.mlp" -> 3), after layers_pattern
//    when given;
//  - rank_pattern / alpha_pattern: the first key k (in file order) such that the
//    whole name matches "(.*\.)?(k)" gives the value; else r / lora_alpha.
#pragma once

#include "py_regex.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace banyan::lora {

struct PeftConfig {
  std::filesystem::path file;
  int32_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  bool use_dora = false;
  bool fan_in_fan_out = false;
  bool all_linear = false;
  bool target_is_regex = false;
  bool has_targets = false;  ///< false: target_modules absent (trust the weights file)
  std::string target_regex;
  std::vector<std::string> target_list;
  std::optional<std::string> exclude_regex;
  std::vector<std::string> exclude_list;
  std::vector<int64_t> layers_to_transform;  ///< empty: every layer
  std::vector<std::string> layers_pattern;
  std::vector<std::pair<std::string, int32_t>> rank_pattern;  ///< file order
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::string base_model;  ///< base_model_name_or_path, for hints

  /// Reads and checks the file; refuses features this plugin does not implement
  /// (modules_to_save, bias other than "none", lora_bias, ...) with their key.
  static PeftConfig read(const std::filesystem::path& file);

  /// Whether PEFT would adapt the module `name` (is_output: the output projection).
  bool targets(const std::string& name, bool is_output) const;
  int32_t rank_of(const std::string& name) const;
  double alpha_of(const std::string& name) const;
  /// alpha / r, or alpha / sqrt(r) with use_rslora.
  double scaling_of(const std::string& name) const;
};

}  // namespace banyan::lora
