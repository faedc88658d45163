// `banyan bench serve`: HTTP load like vLLM's benchmark_serving (core/server/bench_serve.h).
// register_bench (cmd_bench.cpp) adds it under `banyan bench`.
#include "core/cli/commands.h"

#include "core/server/bench_serve.h"

namespace banyan::cli {

void register_bench_serve(CLI::App& bench) {
  static DeploymentFlags flags;
  static core::server::BenchServeOptions o;
  static bool no_offline = false;
  auto* cmd = bench.add_subcommand("serve", "HTTP serving benchmark (TTFT, ITL, latency, throughput)");
  cmd->add_option("--base-url", o.base_url, "A running server (http://host:port); default: start one here");
  cmd->add_option("--num-prompts", o.num_prompts, "Requests")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--request-rate", o.request_rate, "Poisson arrivals per second (default: inf, all at once)");
  cmd->add_option("--max-concurrency", o.max_concurrency, "Requests in flight at most")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--input-len", o.input_len, "Prompt tokens per request")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--output-len", o.output_len, "New tokens per request")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--dataset-seed", o.seed, "Seed of the random prompts and arrivals");
  cmd->add_option("--served-model", o.model, "The request's `model` (an adapter name)");
  cmd->add_flag("--no-offline", no_offline, "Skip the same work through the engine alone");
  cmd->add_option("--output-json", o.output_json, "Also write the results as JSON here");
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    o.compare_offline = !no_offline;
    g_exit_code = core::server::bench_serve_main(config, o);
  });
}

}  // namespace banyan::cli
