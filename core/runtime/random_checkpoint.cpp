#include "core/runtime/random_checkpoint.h"

#include "core/runtime/safetensors_writer.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

namespace banyan::core {

int64_t write_random_llama(const std::filesystem::path& dir, const RandomLlamaSpec& s) {
  std::filesystem::create_directories(dir);
  const int64_t D = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
  const int64_t H = s.hidden, I = s.intermediate, QD = s.heads * D, KD = s.kv_heads * D;
  nlohmann::json c = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", s.model_type},
      {"hidden_size", H}, {"intermediate_size", I}, {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads}, {"head_dim", D},
      {"vocab_size", s.vocab}, {"max_position_embeddings", s.max_position},
      {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"hidden_act", "silu"},
      {"tie_word_embeddings", s.tie_embeddings}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (s.model_type == "mistral") {
    if (s.sliding_window > 0) c["sliding_window"] = s.sliding_window;
    else c["sliding_window"] = nullptr;
  }
  c.merge_patch(nlohmann::json::parse(s.extra_config));
  std::ofstream(dir / "config.json") << c.dump(2);

  // Weights: uniform with the variance of a 1/sqrt(fan_in) init; norms around 1.
  std::mt19937 rng(s.seed);
  std::vector<std::vector<uint16_t>> storage;
  std::vector<TensorToWrite> tensors;
  int64_t params = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float center) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    params += n;
    std::uniform_real_distribution<float> dist(center - scale, center + scale);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    auto to_bf16 = [](float f) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    };
    if (s.fast) {
      const uint64_t key = (uint64_t{s.seed} << 32) ^ (static_cast<uint64_t>(storage.size()) * 0x9e3779b97f4a7c15ull);
      auto fill = [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          uint64_t z = key + (i + 1) * 0x9e3779b97f4a7c15ull;  // splitmix64
          z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
          z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
          z ^= z >> 31;
          const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
          v[i] = to_bf16(center + scale * (2.0f * unit - 1.0f));
        }
      };
      const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 64);
      const size_t per = (v.size() + threads - 1) / threads;
      std::vector<std::thread> pool;
      for (size_t t = 0; t < threads && t * per < v.size(); ++t)
        pool.emplace_back(fill, t * per, std::min(v.size(), (t + 1) * per));
      for (auto& t : pool) t.join();
    } else {
      for (auto& x : v) x = to_bf16(dist(rng));
    }
    storage.push_back(std::move(v));
    const auto& b = storage.back();
    tensors.push_back({name, DType::bf16, shape,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(b.data()),
                                                  b.size() * 2)});
  };
  auto lin = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", {out, in}, std::sqrt(3.0f / static_cast<float>(in)), 0.0f);
  };
  add("model.embed_tokens.weight", {s.vocab, H}, 1.0f, 0.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.2f, 1.0f);
    add(p + "post_attention_layernorm.weight", {H}, 0.2f, 1.0f);
    lin(p + "self_attn.q_proj", QD, H);
    lin(p + "self_attn.k_proj", KD, H);
    lin(p + "self_attn.v_proj", KD, H);
    lin(p + "self_attn.o_proj", H, QD);
    lin(p + "mlp.gate_proj", I, H);
    lin(p + "mlp.up_proj", I, H);
    lin(p + "mlp.down_proj", H, I);
    if (s.model_type == "qwen2") {
      add(p + "self_attn.q_proj.bias", {QD}, 0.1f, 0.0f);
      add(p + "self_attn.k_proj.bias", {KD}, 0.1f, 0.0f);
      add(p + "self_attn.v_proj.bias", {KD}, 0.1f, 0.0f);
    }
    if (s.model_type == "qwen3") {
      add(p + "self_attn.q_norm.weight", {D}, 0.2f, 1.0f);
      add(p + "self_attn.k_norm.weight", {D}, 0.2f, 1.0f);
    }
  }
  add("model.norm.weight", {H}, 0.2f, 1.0f);
  if (!s.tie_embeddings) lin("lm_head", s.vocab, H);
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  return params;
}

RandomLlamaSpec llama3_8b_spec(int64_t layers) {
  RandomLlamaSpec s;
  s.hidden = 4096;
  s.intermediate = 14336;
  s.layers = layers;
  s.heads = 32;
  s.kv_heads = 8;
  s.vocab = 128256;
  s.max_position = 8192;
  s.fast = true;
  return s;
}

TempRandomLlama::TempRandomLlama(const RandomLlamaSpec& spec) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "banyan-random-llama-XXXXXX").string();
  if (!mkdtemp(tmpl.data()))
    throw Error("cannot create a temporary directory from " + tmpl + ": " + std::strerror(errno));
  dir_ = tmpl;
  try {
    params_ = write_random_llama(dir_, spec);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

TempRandomLlama::~TempRandomLlama() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace banyan::core
