// Subcommands whose engine parts are still being built. Each parses its real flags
// (so --help and config errors work today) and says plainly that it cannot run yet.
#include "core/cli/commands.h"

#include <iostream>

namespace banyan::cli {
namespace {
void not_yet(const char* what) {
  std::cerr << "error: `banyan " << what << "` needs the engine, which this build does not have yet\n";
  g_exit_code = 1;
}
}  // namespace

#if !BANYAN_HAVE_SERVER
void register_serve(CLI::App& app) {
  static DeploymentFlags flags;
  auto* cmd = app.add_subcommand("serve", "Serve the OpenAI, vLLM and TGI HTTP APIs");
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) g_exit_code = 2;
    else not_yet("serve");
  });
}
#endif

#if !(BANYAN_HAVE_ENGINE && BANYAN_HAVE_SERVER)  // run-batch shares the server's parsing
void register_run_batch(CLI::App& app) {
  static DeploymentFlags flags;
  static std::string in, out;
  auto* cmd = app.add_subcommand("run-batch", "Run an OpenAI Batch file (JSONL) offline");
  cmd->add_option("-i,--input-file", in, "Input JSONL")->required();
  cmd->add_option("-o,--output-file", out, "Output JSONL")->required();
  flags.add_to(*cmd);
  cmd->callback([] { not_yet("run-batch"); });
}
#endif

#if !BANYAN_HAVE_ENGINE
void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Benchmarks: throughput (offline) and serve (HTTP)");
  cmd->callback([] { not_yet("bench"); });
}
#endif


#if !BANYAN_HAVE_ENGINE
void register_generate(CLI::App& app) {
  static DeploymentFlags flags;
  auto* cmd = app.add_subcommand("generate", "Print a continuation of a prompt (greedy by default)");
  flags.add_to(*cmd);
  cmd->callback([] { not_yet("generate"); });
}
#endif

}  // namespace banyan::cli
