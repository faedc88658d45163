// The deployment configuration schema: every key of the deployment YAML, declared
// once, with its type, default, range, CLI flag and documentation. The YAML
// checker, the CLI overrides and docs/configuration.md are all derived from it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace banyan::core {

enum class ValueType {
  boolean,
  integer,
  number,       ///< float
  string,
  bytes,        ///< an integer byte count or a string like "2GiB"
  string_list,  ///< a list of strings
  adapter_list, ///< a list of {name, path}
  mapping,      ///< a free-form mapping, checked by a plugin manifest
};

const char* type_name(ValueType t);  ///< "an integer", "a list of strings", ...

struct ConfigKey {
  std::string path;           ///< dotted YAML path, e.g. "engine.max_num_seqs"
  ValueType type;
  std::string default_yaml;   ///< the default as YAML text; "" means none (null)
  std::optional<double> min, max;
  std::vector<std::string> choices;
  std::string cli_flag;       ///< the vLLM-style flag that overrides it, or ""
  std::string doc;
};

/// All keys, in documentation order.
const std::vector<ConfigKey>& config_schema();
const ConfigKey* find_key(const std::string& path);

/// docs/configuration.md, generated from the schema.
std::string configuration_markdown();

}  // namespace banyan::core
