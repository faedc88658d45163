#include "core/cli/commands.h"

#include "core/plugin_host/plugin_host.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>

namespace banyan::cli {

void register_plugins(CLI::App& app) {
  auto* cmd = app.add_subcommand("plugins", "Inspect plugins");
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "List the plugins found on the search paths");
  static bool as_json = false;
  static DeploymentFlags flags;
  list->add_flag("--json", as_json, "Print a JSON array of {name, kind, version, abi, path}");
  flags.add_to(*list);
  list->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    core::PluginHost host;
    host.scan(plugin_search_paths(config));
    for (const auto& e : host.errors()) std::cerr << "warning: " << e << "\n";
    if (as_json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& p : host.plugins())
        out.push_back({{"name", p.name},
                       {"kind", p.kind},
                       {"version", p.version},
                       {"abi", std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor)},
                       {"path", p.library.string()}});
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << std::left << std::setw(12) << "KIND" << std::setw(16) << "NAME" << std::setw(10)
                << "VERSION" << std::setw(6) << "ABI" << "PATH\n";
      for (const auto& p : host.plugins())
        std::cout << std::setw(12) << p.kind << std::setw(16) << p.name << std::setw(10)
                  << p.version << std::setw(6)
                  << (std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor))
                  << p.library.string() << "\n";
    }
    if (!host.errors().empty()) g_exit_code = 1;
  });
}

}  // namespace banyan::cli
