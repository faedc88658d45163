// `banyan run-batch`: an OpenAI Batch file through the engine, with the HTTP
// server's request parsing and response bodies (core/server/batch_runner.cpp).
#include "core/cli/commands.h"

#include "core/server/entry_points.h"

namespace banyan::cli {

void register_run_batch(CLI::App& app) {
  static DeploymentFlags flags;
  static std::string in, out;
  auto* cmd = app.add_subcommand("run-batch", "Run an OpenAI Batch file (JSONL) offline");
  cmd->add_option("-i,--input-file", in, "Input JSONL")->required();
  cmd->add_option("-o,--output-file", out, "Output JSONL")->required();
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    g_exit_code = core::server::run_batch_main(config, in, out);
  });
}

}  // namespace banyan::cli
