// Subcommands of the `banyan` CLI. Each register_* adds one subcommand (with its
// own --help) to the app; its callback sets the process exit code.
#pragma once

#include "core/config/config.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace banyan::cli {

/// Exit codes: 0 success, 1 a runtime failure, 2 bad usage or configuration.
inline int g_exit_code = 0;

/// The deployment flags (vLLM names) shared by serve, run-batch, generate and bench,
/// generated from the configuration schema.
class DeploymentFlags {
 public:
  void add_to(CLI::App& app);
  /// Defaults, then --config FILE, then flags. Problems go to `issues`.
  core::Config resolve(std::vector<core::ConfigIssue>& issues) const;
  /// Prints issues to stderr; returns true when there were none.
  static bool report(const std::vector<core::ConfigIssue>& issues);

 private:
  std::string config_file_;
  std::map<std::string, std::vector<std::string>> values_;  // key path -> texts
  std::map<std::string, std::string> flag_of_;               // key path -> flag
  std::map<std::string, bool> flags_;                        // boolean flags seen
  std::map<std::string, bool> neg_flags_;                    // --no-* seen
};

/// Plugin search paths: the defaults plus plugins.search_paths.
std::vector<std::filesystem::path> plugin_search_paths(const core::Config& config);

void register_version(CLI::App& app);
void register_config(CLI::App& app);
void register_plugins(CLI::App& app);
void register_tokenizer_commands(CLI::App& app);
void register_generate(CLI::App& app);
void register_serve(CLI::App& app);
void register_run_batch(CLI::App& app);
void register_bench(CLI::App& app);
void register_bench_serve(CLI::App& bench);  ///< under `banyan bench`

}  // namespace banyan::cli
