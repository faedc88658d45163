// Greedy generation straight on a ModelRunner, for tests, benchmarks and the
// `banyan generate` command until the engine exists. Blocks are handed out
// contiguously per sequence (sequence i owns blocks [i * n, (i + 1) * n)).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace banyan::core {

class ModelRunner;

using TopLogprobs = std::vector<std::pair<int32_t, float>>;  ///< (token id, log prob), best first

struct GreedyOptions {
  int max_new_tokens = 16;
  /// Prefill in chunks of this many tokens (0: the whole prompt in one step).
  int prefill_chunk = 0;
  /// Record this many top log-probabilities per generated token (0: none).
  int top_logprobs = 0;
  /// Stop a sequence at one of the runner's eos ids (the eos token is kept).
  bool stop_at_eos = true;
};

struct GreedyResult {
  std::vector<int32_t> tokens;           ///< new tokens only
  std::vector<TopLogprobs> top_logprobs; ///< one entry per new token when asked
};

/// Generates for all prompts together (one batch per step). Throws banyan::Error
/// when the KV cache cannot hold every prompt plus max_new_tokens.
std::vector<GreedyResult> greedy_generate_batch(ModelRunner& runner,
                                                const std::vector<std::vector<int32_t>>& prompts,
                                                const GreedyOptions& options);

/// One prompt; with top_logprobs non-null, records the top 5 per step.
std::vector<int32_t> greedy_generate(ModelRunner& runner, std::span<const int32_t> prompt,
                                     int max_new_tokens,
                                     std::vector<TopLogprobs>* top_logprobs = nullptr);

/// log_softmax of one row of logits, top k entries (ties: lower id first).
TopLogprobs top_log_softmax(std::span<const float> logits, int k);

}  // namespace banyan::core
