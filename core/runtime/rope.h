// Rotary embedding frequencies, computed on the host exactly as transformers'
// ROPE_INIT_FUNCTIONS do (default, linear, dynamic NTK, llama3, yarn), in f32
// where transformers computes in f32.
#pragma once

#include <banyan/abi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace banyan::core {

struct RopeFrequencies {
  std::vector<float> inv_freq;    ///< [rotary_dim / 2]
  float attention_scaling = 1.0f; ///< multiplies cos and sin
};

/// Throws banyan::Error naming the field when `spec` is invalid or its type unknown.
void validate_rope(const BanyanRopeSpec& spec);

/// The frequencies of `spec`. `seq_len` is the sequence's length so far and only
/// matters for dynamic NTK (transformers recomputes the base once a sequence grows
/// past max_position; shorter sequences use the unscaled frequencies).
RopeFrequencies rope_frequencies(const BanyanRopeSpec& spec, int64_t seq_len = 0);

/// "default", "linear", "dynamic", "llama3", "yarn".
std::string rope_type_name(int32_t type);

}  // namespace banyan::core
