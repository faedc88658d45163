// The accumulated outputs of one generation job: per prompt, per completion index,
// the text, token ids and logprobs received so far and how each ended. Fed with the
// engine's RequestOutput messages in order; read by the response presenters.
//
// Thread-safety: none; lives on one session's strand.
#pragma once

#include "core/engine/request.h"
#include "core/server/generation_job.h"

#include <optional>
#include <string>
#include <vector>

namespace banyan::core::server {

struct ChoiceState {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;
  std::optional<std::string> finish_reason;
  std::optional<std::string> stop_reason;
  double cumulative_logprob = 0;
};

struct PromptState {
  std::vector<ChoiceState> choices;  ///< n of them
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;
  bool finished = false;
  std::optional<std::string> error;
  RequestMetrics metrics;
};

class JobResult {
 public:
  explicit JobResult(const GenerationJob& job);

  /// Applies one engine message for prompt `prompt`.
  void apply(size_t prompt, const RequestOutput& out);

  const GenerationJob& job() const { return job_; }
  const std::vector<PromptState>& prompts() const { return prompts_; }
  bool finished() const;  ///< every prompt's request has finished
  /// The first engine error of any prompt, if any.
  std::optional<std::string> error() const;
  int prompt_tokens() const;
  int completion_tokens() const;
  /// Choice index as the OpenAI APIs number them: prompt * n + index.
  size_t choice_index(size_t prompt, int index) const;

 private:
  const GenerationJob& job_;
  std::vector<PromptState> prompts_;
};

}  // namespace banyan::core::server
