// `banyan bench throughput`: offline throughput like vLLM's benchmark_throughput:
// random prompts of a fixed length, all submitted at once, fixed output length
// (ignore_eos), reporting requests/s and tokens/s plus the scheduler's share of each
// step. `banyan bench serve` (HTTP load) is registered by the server when built.
#include "core/cli/commands.h"

#include "core/engine/llm.h"
#include "core/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>

namespace banyan::cli {


void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks: throughput (offline) and serve (HTTP)");
  bench->require_subcommand(1);
  static DeploymentFlags flags;
  static int num_prompts = 64, input_len = 128, output_len = 128;
  static uint64_t seed = 0;
  static std::string output_json, adapter;
  auto* tp = bench->add_subcommand("throughput", "Offline throughput on random prompts");
  tp->add_option("--num-prompts", num_prompts, "Requests")->check(CLI::Range(1, 1 << 20));
  tp->add_option("--input-len", input_len, "Prompt tokens per request")->check(CLI::Range(1, 1 << 20));
  tp->add_option("--output-len", output_len, "New tokens per request")->check(CLI::Range(1, 1 << 20));
  tp->add_option("--dataset-seed", seed, "Seed of the random prompts");
  tp->add_option("--adapter", adapter, "Run every request on this adapter");
  tp->add_option("--output-json", output_json, "Also write the results as JSON here");
  flags.add_to(*tp);
  tp->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    LLM llm(config);
    std::mt19937_64 rng(seed);
    // Ids from a middle range of the vocabulary, away from special tokens.
    const int32_t vocab = llm.engine().tokenizer().vocab_size();
    std::uniform_int_distribution<int32_t> pick(std::min(100, vocab - 1), vocab - 1);
    std::vector<std::vector<int32_t>> prompts(num_prompts);
    for (auto& p : prompts) {
      p.resize(input_len);
      for (auto& t : p) t = pick(rng);
    }
    SamplingParams params{.temperature = 0.0, .max_tokens = output_len, .ignore_eos = true};
    llm.generate(std::vector<std::vector<int32_t>>{prompts[0]}, {.max_tokens = 2});  // warm-up
    auto before = llm.engine().stats();
    auto t0 = std::chrono::steady_clock::now();
    auto outs = llm.generate(prompts, params, adapter);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto after = llm.engine().stats();
    int64_t out_tokens = 0;
    for (const auto& o : outs) out_tokens += static_cast<int64_t>(o.outputs[0].token_ids.size());
    const double step = after.step_seconds - before.step_seconds;
    const double sched = after.schedule_seconds - before.schedule_seconds;
    nlohmann::json r = {{"num_prompts", num_prompts},
                        {"input_len", input_len},
                        {"output_len", output_len},
                        {"elapsed_s", secs},
                        {"requests_per_s", num_prompts / secs},
                        {"total_tokens_per_s", (static_cast<double>(num_prompts) * input_len + out_tokens) / secs},
                        {"output_tokens_per_s", out_tokens / secs},
                        {"scheduler_fraction_of_step", step > 0 ? sched / step : 0.0},
                        {"preemptions", after.preemptions - before.preemptions}};
    std::cout << "Throughput: " << r["requests_per_s"].get<double>() << " requests/s, "
              << r["total_tokens_per_s"].get<double>() << " total tokens/s, "
              << r["output_tokens_per_s"].get<double>() << " output tokens/s\n"
              << "Scheduler time: " << 100.0 * r["scheduler_fraction_of_step"].get<double>()
              << "% of step time\n";
    if (!output_json.empty()) std::ofstream(output_json) << r.dump(2) << "\n";
  });
  register_bench_serve(*bench);
}

}  // namespace banyan::cli
