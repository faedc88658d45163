#include "core/cli/commands.h"

#include "core/common/paths.h"
#include "core/common/strings.h"
#include "core/plugin_host/plugin_host.h"

#include <iostream>

namespace banyan::cli {

void DeploymentFlags::add_to(CLI::App& app) {
  app.add_option("--config", config_file_, "Deployment YAML file (see docs/configuration.md)");
  for (const auto& key : core::config_schema()) {
    if (key.cli_flag.empty()) continue;
    flag_of_[key.path] = key.cli_flag;
    std::string help = key.doc + " [" + key.path + "]";
    if (key.type == core::ValueType::boolean) {
      app.add_flag(key.cli_flag, flags_[key.path], help);
      std::string neg = "--no-" + key.cli_flag.substr(2);
      app.add_flag(neg, neg_flags_[key.path], "Turn off " + key.cli_flag);
    } else if (key.type == core::ValueType::string_list ||
               key.type == core::ValueType::adapter_list) {
      app.add_option(key.cli_flag, values_[key.path], help)->expected(1, -1);
    } else {
      app.add_option(key.cli_flag, values_[key.path], help)->expected(1);
    }
  }
}

core::Config DeploymentFlags::resolve(std::vector<core::ConfigIssue>& issues) const {
  core::Config config;
  if (!config_file_.empty()) config.merge_yaml_file(config_file_, issues);
  for (const auto& [path, texts] : values_) {
    if (texts.empty()) continue;
    std::vector<std::string> vals = texts;
    if (path == "plugins.search_paths") {  // DIR[:DIR...] as well as repeated values
      vals.clear();
      for (const auto& t : texts)
        for (auto& p : core::split(t, ':')) vals.push_back(p);
    }
    config.set_from_text(path, vals, flag_of_.at(path), issues);
  }
  for (const auto& [path, on] : flags_)
    if (on) config.set_from_text(path, {"true"}, flag_of_.at(path), issues);
  for (const auto& [path, on] : neg_flags_)
    if (on) config.set_from_text(path, {"false"}, "--no-" + flag_of_.at(path).substr(2), issues);
  return config;
}

bool DeploymentFlags::report(const std::vector<core::ConfigIssue>& issues) {
  for (const auto& i : issues) std::cerr << "error: " << i.str() << "\n";
  return issues.empty();
}

std::vector<std::filesystem::path> plugin_search_paths(const core::Config& config) {
  auto paths = core::PluginHost::default_search_paths();
  for (const auto& p : config.get_strings("plugins.search_paths")) paths.emplace_back(p);
  return paths;
}

}  // namespace banyan::cli
