#include "core/server/job_result.h"

namespace banyan::core::server {

JobResult::JobResult(const GenerationJob& job) : job_(job) {
  prompts_.resize(job.prompts.size());
  for (size_t i = 0; i < job.prompts.size(); ++i) {
    prompts_[i].choices.resize(static_cast<size_t>(job.params.n));
    prompts_[i].prompt_tokens = static_cast<int>(job.prompts[i].ids.size());
  }
}

void JobResult::apply(size_t prompt, const RequestOutput& out) {
  auto& p = prompts_.at(prompt);
  if (out.prompt_tokens > 0) p.prompt_tokens = out.prompt_tokens;
  p.completion_tokens = std::max(p.completion_tokens, out.completion_tokens);
  if (!out.prompt_logprobs.empty()) p.prompt_logprobs = out.prompt_logprobs;
  if (out.error) p.error = out.error;
  for (const auto& d : out.outputs) {
    if (d.index < 0) continue;
    if (static_cast<size_t>(d.index) >= p.choices.size())
      p.choices.resize(static_cast<size_t>(d.index) + 1);
    auto& c = p.choices[static_cast<size_t>(d.index)];
    c.text += d.text;
    c.token_ids.insert(c.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    c.logprobs.insert(c.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
    if (d.finish_reason) c.finish_reason = d.finish_reason;
    if (d.stop_reason) c.stop_reason = d.stop_reason;
    c.cumulative_logprob = d.cumulative_logprob;
  }
  if (out.finished) {
    p.finished = true;
    p.metrics = out.metrics;
    // A request that ends (abort, error) leaves no choice without a reason.
    for (auto& c : p.choices)
      if (!c.finish_reason) c.finish_reason = "abort";
  }
}

bool JobResult::finished() const {
  for (const auto& p : prompts_)
    if (!p.finished) return false;
  return true;
}

std::optional<std::string> JobResult::error() const {
  for (const auto& p : prompts_)
    if (p.error) return p.error;
  return std::nullopt;
}

int JobResult::prompt_tokens() const {
  int t = 0;
  for (const auto& p : prompts_) t += p.prompt_tokens;
  return t;
}

int JobResult::completion_tokens() const {
  int t = 0;
  for (const auto& p : prompts_) t += p.completion_tokens;
  return t;
}

size_t JobResult::choice_index(size_t prompt, int index) const {
  return prompt * static_cast<size_t>(job_.params.n) + static_cast<size_t>(index);
}

}  // namespace banyan::core::server
