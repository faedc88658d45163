#include "core/cli/commands.h"

#include "core/config/schema.h"

#include <iostream>

namespace banyan::cli {

void register_config(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Check deployment files; print the reference");
  cmd->require_subcommand(1);

  auto* check = cmd->add_subcommand("check", "Report every error of a deployment YAML at once");
  static std::string file;
  static bool print = false;
  check->add_option("FILE", file, "Deployment YAML")->required();
  check->add_flag("--print", print, "Print the effective configuration when valid");
  check->callback([] {
    core::Config config;
    std::vector<core::ConfigIssue> issues;
    config.merge_yaml_file(file, issues);
    if (!DeploymentFlags::report(issues)) {
      std::cerr << file << ": " << issues.size() << (issues.size() == 1 ? " error" : " errors")
                << "\n";
      g_exit_code = 2;
      return;
    }
    if (print) std::cout << config.dump_yaml() << "\n";
    std::cout << file << ": ok\n";
  });

  auto* docs = cmd->add_subcommand("docs", "Print docs/configuration.md (generated from the schema)");
  docs->callback([] { std::cout << core::configuration_markdown(); });
}

}  // namespace banyan::cli
