// The offline API, after vLLM's `LLM`: load a model once, then generate for many
// prompts at a time; every prompt runs concurrently through the engine.
//
//   banyan::LLM llm("models/demo");
//   auto outs = llm.generate({"Hello, my name is"}, {.temperature = 0.8, .max_tokens = 32});
//   std::cout << outs[0].prompt << outs[0].outputs[0].text;
//
// Thread-safety: generate() may be called from several threads at once.
#pragma once

#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/engine/output_collector.h"

#include <memory>
#include <string>
#include <vector>

namespace banyan {

using SamplingParams = core::SamplingParams;
using CompletionOutput = core::CompletionResult;

struct RequestOutput {
  std::string request_id;
  std::string prompt;
  std::vector<int32_t> prompt_token_ids;
  std::vector<CompletionOutput> outputs;
  std::vector<std::optional<core::TokenLogprob>> prompt_logprobs;
};

class LLM {
 public:
  /// A model directory with default settings on the CPU (or `device`).
  explicit LLM(const std::string& model, const std::string& device = "cpu");
  /// A full deployment configuration (model.path must be set).
  explicit LLM(const core::Config& config);
  ~LLM();

  /// Generates for every prompt (text, tokenized with special tokens) and returns the
  /// outputs in prompt order. Throws banyan::Error if a prompt is refused.
  std::vector<RequestOutput> generate(const std::vector<std::string>& prompts,
                                      const SamplingParams& params = {},
                                      const std::string& adapter = "");
  /// The same for already tokenized prompts.
  std::vector<RequestOutput> generate(const std::vector<std::vector<int32_t>>& prompts,
                                      const SamplingParams& params = {},
                                      const std::string& adapter = "");

  core::Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<core::Engine> engine_;
};

}  // namespace banyan
