// config.json of the Llama family (llama, mistral, qwen2, qwen3), read the way
// transformers reads it, including transformers 5's `rope_parameters`.
#pragma once

#include <banyan/abi.h>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace banyan::llama {

struct LlamaConfig {
  std::string model_type;
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t vocab = 0, max_position = 0;
  float rms_eps = 1e-6f;
  BanyanRopeSpec rope{};
  int32_t activation = BANYAN_ACT_SILU;
  bool tie_embeddings = false;
  bool qk_norm = false;       ///< Qwen3: RMSNorm over each head of q and k
  bool qkv_bias = false;      ///< q/k/v projections carry a bias
  bool o_bias = false;
  bool mlp_bias = false;
  std::vector<int32_t> window;  ///< per layer sliding window (0: full attention)
};

/// Throws banyan::Error naming the key for a missing or invalid value, and
/// Error(unsupported) for an unknown model_type, rope type or activation.
LlamaConfig parse_llama_config(const nlohmann::json& config);

}  // namespace banyan::llama
