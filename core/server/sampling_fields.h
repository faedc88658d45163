// The sampling fields shared by /v1/completions, /v1/chat/completions and vLLM's
// /generate (vLLM / OpenAI names), read into SamplingParams with range checks that
// name the field.
#pragma once

#include "core/engine/request.h"
#include "core/server/json_fields.h"
#include "core/server/server_options.h"

namespace banyan::core::server {

class TextCodec;

inline constexpr int kMaxN = 128;
inline constexpr int kMaxLogprobs = 20;
inline constexpr size_t kMaxStops = 64;

/// Reads every sampling field present in `f` over `defaults`. `logprobs` (an
/// integer in the completions API, a boolean in chat) is left to the caller.
SamplingParams read_sampling_fields(const Fields& f, const SamplingDefaults& defaults,
                                    const TextCodec& codec);

/// Checks relations between fields (best_of >= n, min_tokens <= max_tokens, ...).
void check_sampling(const SamplingParams& p);

/// A prompt + max_tokens over the model's length gives a 400 naming both.
void check_context_length(size_t prompt_tokens, const SamplingParams& p, int64_t max_model_len);

/// Reads `logit_bias` ({"token id": bias}) checking ids against the vocabulary.
std::map<int32_t, double> read_logit_bias(const Fields& f, const TextCodec& codec);

}  // namespace banyan::core::server
