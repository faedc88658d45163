// Folds a request's streamed RequestOutput messages into its complete result, for
// callers that do not stream (LLM::generate, run-batch, non-streaming HTTP).
#pragma once

#include "core/engine/request.h"

#include <string>
#include <vector>

namespace banyan::core {

struct CompletionResult {
  int index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;
  double cumulative_logprob = 0;
  std::string finish_reason;  ///< "stop" | "length" | "abort"
  std::optional<std::string> stop_reason;
};

struct RequestResult {
  std::string request_id;
  std::vector<CompletionResult> outputs;  ///< by index
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::optional<std::string> error;
  bool finished = false;
  RequestMetrics metrics;

  /// Applies one message from the engine.
  void add(RequestOutput&& message);
};

}  // namespace banyan::core
