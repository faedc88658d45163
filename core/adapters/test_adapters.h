// Helpers shared by the adapter tests (header-only, not part of the library):
// PEFT adapter directories written the way peft's save_pretrained writes them.
#pragma once

#include "core/runtime/safetensors_writer.h"
#include "kernels/cpu/convert.h"

#include <banyan/tensor.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace banyan::core::test {

namespace fs = std::filesystem;

/// One module's LoRA tensors in f32: A [r, in], B [out, r], DoRA magnitude [out].
struct LoraTensors {
  int64_t r = 0, in = 0, out = 0;
  std::vector<float> a, b, m;
};

inline LoraTensors random_lora(int64_t r, int64_t in, int64_t out, uint32_t seed, bool dora,
                               float b_scale = 0.1f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  LoraTensors t{r, in, out, {}, {}, {}};
  t.a.resize(static_cast<size_t>(r * in));
  t.b.resize(static_cast<size_t>(out * r));
  for (auto& x : t.a) x = d(rng) / std::sqrt(static_cast<float>(in));
  for (auto& x : t.b) x = d(rng) * b_scale;
  if (dora) {
    t.m.resize(static_cast<size_t>(out));
    for (auto& x : t.m) x = 0.5f + 0.5f * (d(rng) + 1.0f);
  }
  return t;
}

/// Writes dir/adapter_config.json and dir/adapter_model.safetensors, tensors named
/// base_model.model.<module>.lora_A.weight etc., stored in `dtype` (F32 or BF16).
inline void write_peft(const fs::path& dir, const nlohmann::json& config,
                       const std::map<std::string, LoraTensors>& modules, DType dtype = DType::f32) {
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << config.dump(2);
  std::vector<std::vector<std::byte>> store;
  std::vector<TensorToWrite> tensors;
  auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape) {
    std::vector<std::byte> bytes(v.size() * dtype_size(dtype));
    for (size_t i = 0; i < v.size(); ++i) {
      if (dtype == DType::f32) {
        std::memcpy(bytes.data() + i * 4, &v[i], 4);
      } else {
        uint16_t h = kernels::cpu::f32_to_bf16(v[i]);
        std::memcpy(bytes.data() + i * 2, &h, 2);
      }
    }
    store.push_back(std::move(bytes));
    tensors.push_back({name, dtype, std::move(shape), store.back()});
  };
  store.reserve(modules.size() * 3);
  for (const auto& [name, t] : modules) {
    const std::string p = "base_model.model." + name;
    add(p + ".lora_A.weight", t.a, {t.r, t.in});
    add(p + ".lora_B.weight", t.b, {t.out, t.r});
    if (!t.m.empty()) add(p + ".lora_magnitude_vector", t.m, {t.out});
  }
  write_safetensors(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
}

/// A minimal adapter_config.json as peft writes it.
inline nlohmann::json peft_config(int r, double alpha, nlohmann::json target_modules) {
  return {{"peft_type", "LORA"}, {"r", r}, {"lora_alpha", alpha}, {"target_modules", target_modules},
          {"bias", "none"}, {"use_dora", false}, {"use_rslora", false}, {"fan_in_fan_out", false},
          {"modules_to_save", nullptr}, {"lora_dropout", 0.0}, {"task_type", "CAUSAL_LM"}};
}

/// The linear layers of a Llama checkpoint made by write_random_llama().
struct LlamaShape {
  int64_t layers = 2, hidden = 64, kv = 32, inter = 128, vocab = 256;
};

inline std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> llama_modules(const LlamaShape& s) {
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "self_attn.q_proj", {s.hidden, s.hidden}});
    out.push_back({p + "self_attn.k_proj", {s.hidden, s.kv}});
    out.push_back({p + "self_attn.v_proj", {s.hidden, s.kv}});
    out.push_back({p + "self_attn.o_proj", {s.hidden, s.hidden}});
    out.push_back({p + "mlp.gate_proj", {s.hidden, s.inter}});
    out.push_back({p + "mlp.up_proj", {s.hidden, s.inter}});
    out.push_back({p + "mlp.down_proj", {s.inter, s.hidden}});
  }
  return out;
}

/// A fresh temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "banyan-lora-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& n) const { return path_ / n; }

 private:
  fs::path path_;
};

}  // namespace banyan::core::test
