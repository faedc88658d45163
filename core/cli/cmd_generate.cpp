#include "core/cli/commands.h"

#include "core/engine/llm.h"
#include "core/tokenizer/tokenizer.h"

#include <iostream>

namespace banyan::cli {

void register_generate(CLI::App& app) {
  static DeploymentFlags flags;
  static std::string prompt;
  static int max_tokens = 64;
  static double temperature = 0.0;
  static std::string adapter;
  auto* cmd = app.add_subcommand("generate", "Print a continuation of a prompt (greedy by default)");
  cmd->add_option("--prompt", prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens", max_tokens, "New tokens at most")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", temperature, "0: greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--adapter", adapter, "Adapter name (from --lora-modules)");
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    LLM llm(config);
    // --seed (engine.seed) seeds requests that give none, as this one.
    SamplingParams p{.temperature = temperature, .max_tokens = max_tokens};
    auto out = llm.generate(std::vector<std::string>{prompt}, p, adapter);
    std::cout << prompt << out[0].outputs[0].text << std::endl;
  });
}

}  // namespace banyan::cli
