// Writes a Llama-family checkpoint directory with random bf16 weights (config.json
// + model.safetensors), for tests and benchmarks of shapes no fixture covers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace banyan::core {

struct RandomLlamaSpec {
  std::string model_type = "llama";  ///< llama | mistral | qwen2 | qwen3
  int64_t hidden = 64, intermediate = 128, layers = 2, heads = 4, kv_heads = 2;
  int64_t head_dim = 0;  ///< 0: hidden / heads
  int64_t vocab = 256, max_position = 512;
  bool tie_embeddings = false;
  int32_t sliding_window = 0;  ///< written for mistral when > 0
  /// A JSON object merged into config.json last (e.g. rope parameters).
  std::string extra_config = "{}";
  uint32_t seed = 1;
  /// Fill from a counter-based hash on every core instead of one mt19937 stream
  /// (other values, same distribution): for benchmark-size checkpoints (8B in
  /// seconds rather than a minute).
  bool fast = false;
};

/// Creates `dir` if needed and writes config.json and model.safetensors. Qwen2 gets
/// q/k/v biases, Qwen3 q/k norms. Returns the number of parameters.
int64_t write_random_llama(const std::filesystem::path& dir, const RandomLlamaSpec& spec);

/// Llama-3-8B's shape (hidden 4096, FFN 14336, 32 query / 8 KV heads of 128, vocab
/// 128256) with `layers` decoder layers, filled fast.
RandomLlamaSpec llama3_8b_spec(int64_t layers = 32);

/// A random checkpoint (write_random_llama) in a fresh temporary directory, removed
/// with its contents when this goes: benchmark models.
class TempRandomLlama {
 public:
  explicit TempRandomLlama(const RandomLlamaSpec& spec);
  ~TempRandomLlama();
  TempRandomLlama(const TempRandomLlama&) = delete;
  TempRandomLlama& operator=(const TempRandomLlama&) = delete;
  const std::filesystem::path& dir() const { return dir_; }
  int64_t params() const { return params_; }

 private:
  std::filesystem::path dir_;
  int64_t params_ = 0;
};

}  // namespace banyan::core
