// `banyan serve`: the OpenAI, vLLM and TGI HTTP APIs (core/server).
#include "core/cli/commands.h"

#include "core/server/entry_points.h"

namespace banyan::cli {

void register_serve(CLI::App& app) {
  static DeploymentFlags flags;
  auto* cmd = app.add_subcommand("serve", "Serve the OpenAI, vLLM and TGI HTTP APIs");
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    g_exit_code = core::server::serve_main(config);
  });
}

}  // namespace banyan::cli
