// Turns one row of logits into a token, as vLLM does: logprobs are those of the
// model's raw distribution; then min_tokens masking, logit_bias, penalties
// (repetition: Hugging Face/vLLM semantics over prompt and output; presence and
// frequency: OpenAI semantics over the output), temperature, top_k, top_p, min_p,
// and a draw from the request's own generator (argmax when temperature is 0).
//
// Stateless apart from a scratch buffer; engine thread only.
#pragma once

#include "core/engine/request.h"

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace banyan::core {

struct SampleResult {
  int32_t token = 0;
  float logprob = 0;              ///< raw log-probability of the token
  std::vector<TopLogprob> top;    ///< raw top logprobs, when asked
};

class Sampler {
 public:
  /// `context` is prompt + output so far; `output_len` its output part.
  SampleResult sample(std::span<const float> logits, const SamplingParams& params,
                      std::span<const int32_t> context, int32_t output_len,
                      std::span<const int32_t> eos_ids, std::mt19937_64& rng);

  /// log_softmax of a row (raw), into `out`.
  static void log_softmax(std::span<const float> logits, std::vector<float>& out);
  /// The k largest entries of a row, largest first (ties: lower id first).
  static std::vector<TopLogprob> top_k(std::span<const float> values, int k);

  /// Applies the logits processors (penalties, bias, min_tokens) in place.
  static void process(std::vector<float>& logits, const SamplingParams& params,
                      std::span<const int32_t> context, int32_t output_len,
                      std::span<const int32_t> eos_ids);

 private:
  std::vector<float> work_, logp_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace banyan::core
