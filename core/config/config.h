// A deployment configuration: the schema's keys with values from defaults, a YAML
// file and command-line overrides, each value remembering where it came from.
//
// Thread-safety: built once at start-up, then read-only.
#pragma once

#include "core/config/schema.h"

#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace banyan::core {

struct AdapterSpec {
  std::string name;
  std::string path;
  friend bool operator==(const AdapterSpec&, const AdapterSpec&) = default;
};

/// One problem found while reading configuration.
struct ConfigIssue {
  std::string key;      ///< dotted path ("engine.max_num_seqs"), or "" for the file
  std::string message;  ///< what is wrong, e.g. `expected an integer, got "lots"`
  std::string where;    ///< "x.yaml:4", "--max-num-seqs", ...
  std::string str() const;  ///< `engine.max_num_seqs: expected ... (x.yaml:4)`
};

using ConfigValue = std::variant<std::monostate, bool, int64_t, double, std::string,
                                 std::vector<std::string>, std::vector<AdapterSpec>>;

class Config {
 public:
  /// Every key at its default.
  Config();

  /// Reads a YAML file over the defaults. Every problem is appended to `issues`
  /// (unknown keys with a did-you-mean, wrong types, out-of-range values); keys
  /// with problems keep their defaults.
  void merge_yaml_file(const std::filesystem::path& file, std::vector<ConfigIssue>& issues);
  void merge_yaml_text(const std::string& text, const std::string& source_name,
                       std::vector<ConfigIssue>& issues);

  /// Sets one key from command-line text ("64", "true", "a=b", "x:y"), checked like
  /// YAML. `source` names the flag for messages.
  void set_from_text(const std::string& key, const std::vector<std::string>& values,
                     const std::string& source, std::vector<ConfigIssue>& issues);

  bool has(const std::string& key) const;  ///< false when the value is null
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_number(const std::string& key) const;
  std::string get_string(const std::string& key) const;  ///< "" when null
  size_t get_bytes(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<AdapterSpec> get_adapters(const std::string& key) const;
  /// A mapping key (quantization.options) as JSON text.
  std::string get_mapping_json(const std::string& key) const;
  /// Where the value came from: "default", "x.yaml:4" or a flag.
  std::string source(const std::string& key) const;

  /// The effective configuration as YAML (for `banyan serve --print-config`).
  std::string dump_yaml() const;

 private:
  const ConfigValue& value(const std::string& key) const;
  struct Entry {
    ConfigValue value;
    std::string source = "default";
  };
  std::map<std::string, Entry> values_;
  std::map<std::string, std::string> mappings_;  // JSON text of mapping keys
};

}  // namespace banyan::core
