#include "core/engine/output_collector.h"

namespace banyan::core {

void RequestResult::add(RequestOutput&& m) {
  request_id = m.request_id;
  prompt_tokens = m.prompt_tokens;
  completion_tokens = m.completion_tokens;
  if (!m.prompt_logprobs.empty()) prompt_logprobs = std::move(m.prompt_logprobs);
  if (m.error) error = m.error;
  for (auto& d : m.outputs) {
    if (d.index >= static_cast<int>(outputs.size())) outputs.resize(d.index + 1);
    CompletionResult& c = outputs[d.index];
    c.index = d.index;
    c.text += d.text;
    c.token_ids.insert(c.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    for (auto& lp : d.logprobs) c.logprobs.push_back(std::move(lp));
    c.cumulative_logprob = d.cumulative_logprob;
    if (d.finish_reason) c.finish_reason = *d.finish_reason;
    if (d.stop_reason) c.stop_reason = d.stop_reason;
  }
  if (m.finished) {
    finished = true;
    metrics = m.metrics;
  }
}

}  // namespace banyan::core
