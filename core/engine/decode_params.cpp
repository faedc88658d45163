#include "core/engine/sequence.h"

namespace banyan::core {

DecodeParams::DecodeParams(const SamplingParams& p, const std::vector<int32_t>& eos) {
  for (const auto& [id, b] : p.logit_bias) {
    bias_ids.push_back(id);
    bias_values.push_back(static_cast<float>(b));
  }
  stop_ids = p.stop_token_ids;
  eos_ids = eos;
  c.struct_size = sizeof(BanyanDecodeParams);
  c.temperature = p.use_beam_search ? 0.0 : p.temperature;
  c.top_p = p.top_p;
  c.min_p = p.min_p;
  c.typical_p = p.typical_p;
  c.presence_penalty = p.presence_penalty;
  c.frequency_penalty = p.frequency_penalty;
  c.repetition_penalty = p.repetition_penalty;
  c.length_penalty = p.length_penalty;
  c.top_k = p.top_k;
  c.min_tokens = p.min_tokens;
  c.ignore_eos = p.ignore_eos ? 1 : 0;
  c.num_logprobs = p.logprobs.value_or(0);
  c.bias_ids = bias_ids.data();
  c.bias_values = bias_values.data();
  c.num_bias = static_cast<int32_t>(bias_ids.size());
  c.stop_token_ids = stop_ids.data();
  c.num_stop_token_ids = static_cast<int32_t>(stop_ids.size());
  c.eos_ids = eos_ids.data();
  c.num_eos = static_cast<int32_t>(eos_ids.size());
}

}  // namespace banyan::core
