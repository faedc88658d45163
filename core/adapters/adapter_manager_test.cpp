// The adapter manager on small random checkpoints: LoRA, rsLoRA, DoRA (with base
// biases), rank patterns and BF16 files against a plain reference (the same model
// with the adapter merged into its weights, W + scaling·B·A, DoRA's row norm
// computed here independently), several adapters mixed in one batch; then the pool:
// metadata-only registration, loading on demand, LRU eviction, running adapters
// never evicted, pinning, unload freeing memory, refusals.
#include "core/adapters/adapter_manager.h"
#include "core/adapters/test_adapters.h"

#include "core/common/logging.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

namespace banyan::core {
namespace {

using nlohmann::json;
using namespace test;

const PluginHost& plugins() {
  static PluginHost* host = [] {
    set_log_level("warn");
    auto* h = new PluginHost();
    h->scan({fs::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
    return h;
  }();
  return *host;
}

std::unique_ptr<ModelRunner> open_runner(const fs::path& dir) {
  ModelRunnerOptions o;
  o.model_dir = dir;
  o.num_blocks = 64;
  o.block_size = 4;
  return std::make_unique<ModelRunner>(plugins(), o);
}

float bf16_round(float f) { return kernels::cpu::bf16_to_f32(kernels::cpu::f32_to_bf16(f)); }

struct Adapter {
  json config;
  std::map<std::string, LoraTensors> modules;
  std::map<std::string, float> scaling;  // per module, as PEFT computes it
  bool dora = false;
  DType dtype = DType::f32;
};

// Writes `base` with every adapted module's weight replaced by its merged value.
void write_merged(const fs::path& base, const fs::path& out, const Adapter& a) {
  fs::create_directories(out);
  fs::copy_file(base / "config.json", out / "config.json");
  Checkpoint ck(base);
  std::vector<std::vector<std::byte>> store;
  std::vector<TensorToWrite> tensors;
  store.reserve(ck.size());
  for (const auto& name : ck.names()) {
    const SafetensorsTensor& t = ck.get(name);
    const std::string module = name.size() > 7 ? name.substr(0, name.size() - 7) : "";
    auto it = a.modules.find(module);
    if (name.ends_with(".weight") && it != a.modules.end()) {
      const LoraTensors& l = it->second;
      const float s = a.scaling.at(module);
      std::vector<float> w(static_cast<size_t>(l.out * l.in));
      for (int64_t j = 0; j < l.out; ++j) {
        double norm = 0;
        std::vector<double> row(static_cast<size_t>(l.in));
        for (int64_t i = 0; i < l.in; ++i) {
          uint16_t h;
          std::memcpy(&h, t.data + (j * l.in + i) * 2, 2);
          double ba = 0;
          for (int64_t k = 0; k < l.r; ++k) ba += double(l.b[j * l.r + k]) * l.a[k * l.in + i];
          row[i] = kernels::cpu::bf16_to_f32(h) + s * ba;
          norm += row[i] * row[i];
        }
        const double scale = a.dora ? l.m[j] / std::sqrt(norm) : 1.0;
        for (int64_t i = 0; i < l.in; ++i) w[j * l.in + i] = static_cast<float>(scale * row[i]);
      }
      std::vector<std::byte> bytes(w.size() * 4);
      std::memcpy(bytes.data(), w.data(), bytes.size());
      store.push_back(std::move(bytes));
      tensors.push_back({name, DType::f32, t.shape, store.back()});
    } else {
      store.emplace_back(t.data, t.data + t.nbytes());
      tensors.push_back({name, *t.dtype, t.shape, store.back()});
    }
  }
  write_safetensors(out / "model.safetensors", tensors);
}

// One prefill step (every row's logits) and one decode step, sequence i with slot[i].
std::vector<std::vector<float>> run(ModelRunner& r, const std::vector<std::vector<int32_t>>& prompts,
                                    const std::vector<int32_t>& slots) {
  const int32_t bs = r.block_size(), per = 8;
  std::vector<std::vector<float>> rows;
  for (int step = 0; step < 2; ++step) {
    ForwardBatch b;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& p = prompts[i];
      SeqSlice q;
      q.query_start = b.num_tokens();
      q.query_len = step == 0 ? static_cast<int32_t>(p.size()) : 1;
      q.context_len = static_cast<int32_t>(p.size()) + step;
      q.block_offset = static_cast<int32_t>(b.block_tables.size());
      q.num_blocks = (q.context_len + bs - 1) / bs;
      q.logits_rows = q.query_len;
      q.adapter_slot = slots[i];
      for (int32_t j = 0; j < q.num_blocks; ++j) b.block_tables.push_back(static_cast<int32_t>(i) * per + j);
      for (int32_t j = 0; j < q.query_len; ++j) {
        const int32_t pos = q.context_len - q.query_len + j;
        b.token_ids.push_back(step == 0 ? p[pos] : 7);
        b.positions.push_back(pos);
        b.slot_mapping.push_back((static_cast<int32_t>(i) * per + pos / bs) * bs + pos % bs);
        b.adapter_slots.push_back(slots[i]);
      }
      b.seqs.push_back(q);
    }
    Tensor logits = r.execute(b);
    std::vector<float> host = r.to_host(logits);
    const int64_t V = logits.shape[1];
    for (int64_t k = 0; k < logits.shape[0]; ++k)
      rows.emplace_back(host.begin() + k * V, host.begin() + (k + 1) * V);
  }
  return rows;
}

// Row indices (into run()'s result) of sequence i: its prefill rows, then its decode row.
std::vector<size_t> rows_of(const std::vector<std::vector<int32_t>>& prompts, size_t i) {
  std::vector<size_t> out;
  size_t at = 0, total = 0;
  for (const auto& p : prompts) total += p.size();
  for (size_t s = 0; s < prompts.size(); ++s)
    for (size_t j = 0; j < prompts[s].size(); ++j, ++at)
      if (s == i) out.push_back(at);
  out.push_back(total + i);
  return out;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(AdapterMath, MixedAdaptersMatchMergedWeights) {
  TempDir tmp;
  RandomLlamaSpec spec;
  spec.model_type = "qwen2";  // q/k/v biases: DoRA's bias term is exercised
  write_random_llama(tmp / "base", spec);
  const LlamaShape shape;
  auto io = [&](const std::string& m) {
    for (const auto& [n, p] : llama_modules(shape))
      if (n == m) return p;
    return std::make_pair<int64_t, int64_t>(64, 256);  // lm_head
  };
  std::vector<Adapter> adapters(4);
  // 0: LoRA r8 on q, v.
  adapters[0].config = peft_config(8, 16, {"q_proj", "v_proj"});
  // 1: rsLoRA on all linear layers, a rank pattern and an alpha pattern.
  adapters[1].config = peft_config(16, 8, "all-linear");
  adapters[1].config["use_rslora"] = true;
  adapters[1].config["rank_pattern"] = {{"down_proj", 4}};
  adapters[1].config["alpha_pattern"] = {{"layers.1.self_attn.o_proj", 2}};
  // 2: DoRA r4 on q (biased), o, down.
  adapters[2].config = peft_config(4, 8, {"q_proj", "o_proj", "down_proj"});
  adapters[2].config["use_dora"] = true;
  adapters[2].dora = true;
  // 3: BF16 file, gate/up r8 and the output projection r4.
  adapters[3].config = peft_config(8, 16, {"gate_proj", "up_proj", "lm_head"});
  adapters[3].config["rank_pattern"] = {{"lm_head", 4}};
  adapters[3].dtype = DType::bf16;
  uint32_t seed = 100;
  for (auto& a : adapters) {
    const json& c = a.config;
    std::vector<std::string> names;
    for (const auto& [n, p] : llama_modules(shape)) names.push_back(n);
    names.push_back("lm_head");
    for (const auto& n : names) {
      const std::string leaf = n.substr(n.rfind('.') + 1);
      bool take = c["target_modules"] == "all-linear" ? n != "lm_head" : false;
      if (c["target_modules"].is_array())
        for (const auto& t : c["target_modules"]) take = take || t == leaf;
      if (!take) continue;
      int r = c["r"];
      double alpha = c["lora_alpha"];
      if (c.contains("rank_pattern"))
        for (const auto& [k, v] : c["rank_pattern"].items())
          if (n.ends_with(k)) r = v;
      if (c.contains("alpha_pattern"))
        for (const auto& [k, v] : c["alpha_pattern"].items())
          if (n.ends_with(k)) alpha = v;
      LoraTensors t = random_lora(r, io(n).first, io(n).second, seed++, a.dora, 0.3f);
      if (a.dtype == DType::bf16) {
        for (auto& x : t.a) x = bf16_round(x);
        for (auto& x : t.b) x = bf16_round(x);
      }
      a.modules[n] = std::move(t);
      a.scaling[n] = static_cast<float>(c.value("use_rslora", false) ? alpha / std::sqrt(r) : alpha / r);
    }
  }
  auto base = open_runner(tmp / "base");
  AdapterManager mgr(plugins(), *base, {});
  std::vector<int32_t> slot_of;
  for (size_t i = 0; i < adapters.size(); ++i) {
    const std::string name = "a" + std::to_string(i);
    write_peft(tmp / name, adapters[i].config, adapters[i].modules, adapters[i].dtype);
    write_merged(tmp / "base", tmp / ("merged" + std::to_string(i)), adapters[i]);
    mgr.load(name, (tmp / name).string());
    slot_of.push_back(mgr.acquire(mgr.begin_request(name)));
  }
  // Long prompts take the GEMM path, short ones the per-row path; one base sequence.
  const std::vector<std::vector<int32_t>> prompts = {
      {5, 17, 99, 3, 250, 42, 7, 7, 81, 11}, {1, 2, 3}, {200, 150, 100, 50, 25},
      {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 33}, {71, 72}, {13, 14, 15, 16, 17, 18, 19, 20, 21}};
  const std::vector<int32_t> seq_adapter = {0, 1, -1, 2, 3, 1};
  std::vector<int32_t> slots;
  for (int32_t a : seq_adapter) slots.push_back(a < 0 ? -1 : slot_of[a]);
  auto mixed = run(*base, prompts, slots);
  auto plain = run(*open_runner(tmp / "base"), prompts, std::vector<int32_t>(prompts.size(), -1));
  for (int32_t a = -1; a < 4; ++a) {
    auto ref = a < 0 ? plain
                     : run(*open_runner(tmp / ("merged" + std::to_string(a))), prompts,
                           std::vector<int32_t>(prompts.size(), -1));
    for (size_t s = 0; s < prompts.size(); ++s) {
      if (seq_adapter[s] != a) continue;
      for (size_t row : rows_of(prompts, s)) {
        const float scale = 1 + max_abs(ref[row]);
        EXPECT_LE(max_diff(ref[row], mixed[row]), 1e-4f * scale)
            << "adapter " << a << ", sequence " << s << ", row " << row;
        if (a >= 0) {  // the adapter really changes the output
          EXPECT_GE(max_diff(plain[row], mixed[row]), 1e-2f * scale)
              << "adapter " << a << ", sequence " << s << ", row " << row;
        }
      }
    }
  }
}

}  // namespace
}  // namespace banyan::core
