// ModelRunner and the llama plugin on small random checkpoints: batching and
// chunked prefill leave every sequence's result unchanged, the linear hook points
// work without model code, and bad checkpoints are refused by name.
#include "core/runtime/checkpoint.h"
#include "core/runtime/greedy.h"
#include "core/runtime/linear.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/runner_test_util.h"
#include "core/runtime/safetensors_writer.h"
#include "core/runtime/test_util.h"
#include "core/runtime/weight_store.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

namespace banyan::core {
namespace {

using test::TempDir;

std::unique_ptr<ModelRunner> open(const std::filesystem::path& dir, bool keep_bf16 = true,
                                  int64_t blocks = 64) {
  ModelRunnerOptions o;
  o.model_dir = dir;
  o.num_blocks = blocks;
  o.block_size = 4;
  o.cpu.keep_bf16_weights = keep_bf16;
  return std::make_unique<ModelRunner>(test::plugins(), o);
}

const std::vector<std::vector<int32_t>> kPrompts = {
    {5, 17, 99, 3, 250, 42, 7, 7, 81}, {1, 2}, {200, 150, 100, 50, 25, 12, 6, 3, 1, 0, 9, 33, 71}};

std::vector<GreedyResult> generate(ModelRunner& r, const std::vector<std::vector<int32_t>>& prompts,
                                   int chunk = 0) {
  GreedyOptions o;
  o.max_new_tokens = 12;
  o.prefill_chunk = chunk;
  o.top_logprobs = 5;
  o.stop_at_eos = false;
  return greedy_generate_batch(r, prompts, o);
}

void expect_same(const GreedyResult& a, const GreedyResult& b, double tol) {
  ASSERT_EQ(a.tokens, b.tokens);
  for (size_t s = 0; s < a.top_logprobs.size(); ++s)
    for (size_t k = 0; k < a.top_logprobs[s].size(); ++k) {
      EXPECT_EQ(a.top_logprobs[s][k].first, b.top_logprobs[s][k].first);
      EXPECT_NEAR(a.top_logprobs[s][k].second, b.top_logprobs[s][k].second, tol);
    }
}

class Families : public ::testing::TestWithParam<const char*> {};

TEST_P(Families, BatchingAndChunkingChangeNothing) {
  TempDir dir;
  RandomLlamaSpec s;
  s.model_type = GetParam();
  s.tie_embeddings = s.model_type == "qwen2";
  s.sliding_window = 5;
  if (s.model_type == "qwen3") s.head_dim = 24;  // differs from hidden / heads
  write_random_llama(dir.path(), s);
  auto runner = open(dir.path());
  auto together = generate(*runner, kPrompts);
  auto chunked = generate(*runner, kPrompts, 3);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SCOPED_TRACE(i);
    auto alone = generate(*runner, {kPrompts[i]});
    ASSERT_EQ(alone[0].tokens.size(), 12u);
    expect_same(alone[0], together[i], 1e-4);
    expect_same(alone[0], chunked[i], 1e-4);
  }
  // Converting the bf16 weights to f32 at load gives the same model.
  auto f32 = open(dir.path(), false);
  auto f32_out = generate(*f32, kPrompts);
  for (size_t i = 0; i < kPrompts.size(); ++i) expect_same(together[i], f32_out[i], 1e-4);
}

// linear_n over fused weights (the CUDA default, forced here on the CPU): q/k/v and
// gate/up are loaded side by side and run as one product (one row: the outputs are
// views of it; more rows: split), with the same results as one product per module.
TEST_P(Families, FusedProjectionsChangeNothing) {
  TempDir dir;
  RandomLlamaSpec s;
  s.model_type = GetParam();
  s.tie_embeddings = s.model_type == "qwen2";
  if (s.model_type == "qwen3") s.head_dim = 24;
  write_random_llama(dir.path(), s);
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.num_blocks = 64;
  o.block_size = 4;
  o.fuse_linears = true;
  ModelRunner fused(test::plugins(), o);
  o.fuse_linears = false;
  ModelRunner plain(test::plugins(), o);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto next_to = [&](const std::string& a, const std::string& b) {
      const Tensor& ta = fused.weights().get(p + a);
      return static_cast<const char*>(ta.data) + ta.nbytes() == fused.weights().get(p + b).data;
    };
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj",
                          "mlp.up_proj"}) {
      EXPECT_TRUE(fused.linears().fused(p + m)) << m;
      EXPECT_FALSE(plain.linears().fused(p + m)) << m;
    }
    EXPECT_FALSE(fused.linears().fused(p + "mlp.down_proj"));
    EXPECT_TRUE(next_to("self_attn.q_proj.weight", "self_attn.k_proj.weight"));
    EXPECT_TRUE(next_to("self_attn.k_proj.weight", "self_attn.v_proj.weight"));
    EXPECT_TRUE(next_to("mlp.gate_proj.weight", "mlp.up_proj.weight"));
    if (s.model_type == "qwen2") {
      EXPECT_TRUE(next_to("self_attn.q_proj.bias", "self_attn.k_proj.bias"));
    }
  }
  EXPECT_FALSE(plain.linears().fusion());
  auto a = generate(fused, kPrompts), b = generate(plain, kPrompts);
  auto a_chunked = generate(fused, kPrompts, 3);
  // gate/up of any row count as one product, act_mul_halves reading its halves.
  const int64_t gated_rows = gated_product_max_rows();
  set_gated_product_max_rows(1 << 20);
  auto a_gated = generate(fused, kPrompts), a_gated_chunked = generate(fused, kPrompts, 3);
  set_gated_product_max_rows(gated_rows);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(a[i], b[i], 1e-4);
    expect_same(a_chunked[i], b[i], 1e-4);
    expect_same(a_gated[i], b[i], 1e-4);
    expect_same(a_gated_chunked[i], b[i], 1e-4);
    auto alone = generate(fused, {kPrompts[i]});  // decode steps of one row
    expect_same(alone[0], b[i], 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Llama, Families, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

// Writes a copy of `src`'s checkpoint with every tensor converted to `dtype`, split
// over two shards with an index.
void copy_as(const std::filesystem::path& src, const std::filesystem::path& dst, DType dtype) {
  std::filesystem::create_directories(dst);
  std::filesystem::copy_file(src / "config.json", dst / "config.json");
  Checkpoint ck(src);
  auto names = ck.names();
  std::sort(names.begin(), names.end());
  std::vector<std::vector<std::byte>> data;
  std::vector<TensorToWrite> shard[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  auto backend = make_backend("cpu", CpuBackendOptions{0, false});
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& t = ck.get(names[i]);
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    std::vector<float> f(static_cast<size_t>(n));
    Tensor ft(f.data(), DType::f32, {n});
    backend->load_weight(t.data, *t.dtype, ft);  // bf16 → f32, exact
    std::vector<std::byte> out(static_cast<size_t>(n) * dtype_size(dtype));
    for (int64_t j = 0; j < n; ++j) {
      if (dtype == DType::f32) {
        std::memcpy(&out[j * 4], &f[j], 4);
      } else {  // f16: the bf16 values of these checkpoints fit exactly
        const _Float16 h = static_cast<_Float16>(f[j]);
        std::memcpy(&out[j * 2], &h, 2);
      }
    }
    data.push_back(std::move(out));
    const char* file = i % 2 ? "model-2.safetensors" : "model-1.safetensors";
    shard[i % 2].push_back({names[i], dtype, t.shape, data.back()});
    index["weight_map"][names[i]] = file;
  }
  write_safetensors(dst / "model-1.safetensors", shard[0]);
  write_safetensors(dst / "model-2.safetensors", shard[1]);
  std::ofstream(dst / "model.safetensors.index.json") << index.dump();
}

// TempRandomLlama: the checkpoint it writes opens with as many parameters as it
// reports, and its directory goes with it.
TEST(RandomCheckpoint, TempRandomLlamaWritesAndRemovesItsDirectory) {
  std::filesystem::path dir;
  {
    RandomLlamaSpec s = llama3_8b_spec(1);
    EXPECT_EQ(s.layers, 1);
    EXPECT_EQ(s.hidden / s.heads, 128);
    s.hidden = 64, s.intermediate = 96, s.heads = 4, s.kv_heads = 2, s.vocab = 100;
    const TempRandomLlama model(s);
    dir = model.dir();
    ASSERT_TRUE(std::filesystem::exists(dir / "config.json"));
    const Checkpoint ckpt(dir);
    int64_t params = 0;
    for (const std::string& name : ckpt.names()) {
      int64_t n = 1;
      for (int64_t d : ckpt.get(name).shape) n *= d;
      params += n;
    }
    EXPECT_EQ(params, model.params());
    EXPECT_EQ(ckpt.get("model.layers.0.mlp.gate_proj.weight").shape, (std::vector<int64_t>{96, 64}));
    EXPECT_EQ(ckpt.find("model.layers.1.mlp.gate_proj.weight"), nullptr);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ModelRunner, Bf16F16AndF32ShardedCopiesGiveTheSameModel) {
  TempDir dir;
  RandomLlamaSpec s;
  s.model_type = "qwen2";
  write_random_llama(dir / "bf16", s);
  copy_as(dir / "bf16", dir / "f32", DType::f32);
  copy_as(dir / "bf16", dir / "f16", DType::f16);
  auto ref = generate(*open(dir / "bf16"), kPrompts);
  for (const char* copy : {"f32", "f16"}) {
    SCOPED_TRACE(copy);
    auto got = generate(*open(dir / copy), kPrompts);
    for (size_t i = 0; i < kPrompts.size(); ++i) expect_same(ref[i], got[i], 1e-5);
  }
}

TEST(ModelRunner, SlidingWindowOnlyMattersBeyondTheWindow) {
  TempDir a, b;
  RandomLlamaSpec s;
  s.model_type = "mistral";
  s.sliding_window = 4;
  write_random_llama(a.path(), s);
  s.sliding_window = 0;
  write_random_llama(b.path(), s);
  auto windowed = open(a.path()), full = open(b.path());
  EXPECT_EQ(windowed->spec().sliding_window, 4);
  auto logits = [](ModelRunner& r, int n) {
    ForwardBatch fb;
    for (int i = 0; i < n; ++i) {
      fb.token_ids.push_back(10 + 3 * i);
      fb.positions.push_back(i);
      fb.slot_mapping.push_back(i);
    }
    fb.block_tables = {0, 1, 2};
    fb.seqs = {SeqSlice{0, n, n, 0, 3, n, -1}};
    return r.to_host(r.execute(fb));
  };
  auto w = logits(*windowed, 10), f = logits(*full, 10);
  const size_t V = 256;
  for (size_t i = 0; i < 4 * V; ++i) ASSERT_NEAR(w[i], f[i], 1e-5);  // rows 0..3: same
  double diff = 0;
  for (size_t i = 9 * V; i < 10 * V; ++i) diff += std::fabs(w[i] - f[i]);
  EXPECT_GT(diff, 1e-3);  // row 9 sees 4 of 10 positions
}

// A hook that adds +1 to every output of q_proj in layer 0 for tokens with adapter slot 3.
class PlusOneHook : public LinearAdapterHook {
 public:
  void apply(const std::string& module, const LinearContext& ctx, const Tensor& x,
             Tensor& out) override {
    modules.push_back(module);
    if (module != "model.layers.0.self_attn.q_proj") return;
    const int32_t* slots = ctx.row_adapter_slots.as<int32_t>();
    for (int64_t t = 0; t < out.shape[0]; ++t)
      if (slots[t] == 3)
        for (int64_t j = 0; j < out.shape[1]; ++j) out.as<float>()[t * out.shape[1] + j] += 1.0f;
  }
  std::vector<std::string> modules;
};

// A provider that doubles the dense product (a stand-in for a quantizer).
class Doubled : public LinearProvider {
 public:
  explicit Doubled(const LinearSource& s) : dense_(s) {}
  int64_t in_features() const override { return dense_.in_features(); }
  int64_t out_features() const override { return dense_.out_features(); }
  void forward(const LinearContext& ctx, const Tensor& x, Tensor& out) override {
    dense_.forward(ctx, x, out);
    for (int64_t i = 0; i < out.numel(); ++i) out.as<float>()[i] *= 2.0f;
    ++calls;
  }
  DenseLinear dense_;
  int calls = 0;
};

TEST(ModelRunner, LinearHooksNeedNoModelCode) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  auto runner = open(dir.path());
  auto step = [&](int32_t slot0, int32_t slot1) {
    ForwardBatch fb;
    fb.token_ids = {4, 5, 6, 7};
    fb.positions = {0, 1, 0, 1};
    fb.slot_mapping = {0, 1, 4, 5};
    fb.block_tables = {0, 1};
    fb.seqs = {SeqSlice{0, 2, 2, 0, 1, 1, slot0}, SeqSlice{2, 2, 2, 1, 1, 1, slot1}};
    return runner->to_host(runner->execute(fb));
  };
  auto base = step(-1, -1);
  PlusOneHook hook;
  runner->linears().set_adapter_hook(&hook);
  auto none = step(-1, -1);
  EXPECT_TRUE(hook.modules.empty());  // no adapter in the batch: the hook is skipped
  auto with = step(-1, 3);
  EXPECT_FALSE(hook.modules.empty());
  EXPECT_NE(std::find(hook.modules.begin(), hook.modules.end(), "lm_head"), hook.modules.end());
  const size_t V = 256;
  for (size_t i = 0; i < V; ++i) EXPECT_EQ(with[i], base[i]);  // sequence 0 untouched
  double diff = 0;
  for (size_t i = V; i < 2 * V; ++i) diff += std::fabs(with[i] - base[i]);
  EXPECT_GT(diff, 1e-3);
  runner->linears().set_adapter_hook(nullptr);

  // set() replaces a module's provider at any time.
  const std::string down = "model.layers.1.mlp.down_proj";
  auto doubled = std::make_unique<Doubled>(
      LinearSource{down, 0, runner->weights(), runner->backend()});
  Doubled* d = doubled.get();
  runner->linears().set(down, std::move(doubled));
  auto changed = step(-1, -1);
  EXPECT_EQ(d->calls, 1);
  diff = 0;
  for (size_t i = 0; i < 2 * V; ++i) diff += std::fabs(changed[i] - base[i]);
  EXPECT_GT(diff, 1e-3);
}

// A hook whose delta depends on x, the module and the row's slot (as LoRA's does),
// recording the order of its calls.
class XDeltaHook : public LinearAdapterHook {
 public:
  void before(const std::string& module, const LinearContext&, const Tensor&, const Tensor&) override {
    calls.push_back("before " + module);
  }
  void apply(const std::string& module, const LinearContext& ctx, const Tensor& x, Tensor& out) override {
    calls.push_back("apply " + module);
    const float c = 0.01f * static_cast<float>(module.size() % 7 + 1);
    const int32_t* slots = ctx.row_adapter_slots.as<int32_t>();
    const int64_t K = x.shape[1], N = out.shape[1];
    for (int64_t t = 0; t < out.shape[0]; ++t)
      if (slots[t] >= 0)
        for (int64_t j = 0; j < N; ++j)
          out.as<float>()[t * N + j] += c * static_cast<float>(slots[t] + 1) * x.as<float>()[t * K + (j * 5) % K];
  }
  size_t at(const std::string& call) const {
    return static_cast<size_t>(std::find(calls.begin(), calls.end(), call) - calls.begin());
  }
  std::vector<std::string> calls;
};

// On steps with adapters a fused group keeps its one product: every module's
// before(), the product, then apply() per module on its part of the output (views of
// one row, or the split columns): the same outputs as the modules run apart.
TEST(ModelRunner, FusedGroupsOnAdapterStepsEqualModulesApart) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.num_blocks = 16;
  o.block_size = 4;
  o.fuse_linears = true;
  ModelRunner fused(test::plugins(), o);
  o.fuse_linears = false;
  ModelRunner plain(test::plugins(), o);
  auto prefill = [](ModelRunner& r) {  // 4 rows: the products are split
    ForwardBatch fb;
    fb.token_ids = {4, 5, 6, 7};
    fb.positions = {0, 1, 0, 1};
    fb.slot_mapping = {0, 1, 4, 5};
    fb.block_tables = {0, 1};
    fb.seqs = {SeqSlice{0, 2, 2, 0, 1, 1, 2}, SeqSlice{2, 2, 2, 1, 1, 1, -1}};
    return r.to_host(r.execute(fb));
  };
  auto decode = [](ModelRunner& r) {  // 1 row: the outputs are views of the product's row
    ForwardBatch fb;
    fb.token_ids = {9};
    fb.positions = {2};
    fb.slot_mapping = {2};
    fb.block_tables = {0};
    fb.seqs = {SeqSlice{0, 1, 3, 0, 1, 1, 1}};
    return r.to_host(r.execute(fb));
  };
  const auto base = prefill(plain);
  XDeltaHook fused_hook, plain_hook;
  fused.linears().set_adapter_hook(&fused_hook);
  plain.linears().set_adapter_hook(&plain_hook);
  for (auto step : {+prefill, +decode}) {
    fused_hook.calls.clear();
    plain_hook.calls.clear();
    const auto a = step(fused), b = step(plain);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(b[i]))) << i;
    const std::string l = "model.layers.1.";
    const std::string q = l + "self_attn.q_proj", k = l + "self_attn.k_proj", v = l + "self_attn.v_proj",
                      g = l + "mlp.gate_proj", u = l + "mlp.up_proj";
    const XDeltaHook& f = fused_hook;
    ASSERT_LT(f.at("apply " + v), f.calls.size());
    EXPECT_LT(f.at("before " + v), f.at("apply " + q));  // every before() ahead of the product
    EXPECT_LT(f.at("before " + q), f.at("before " + k));
    EXPECT_LT(f.at("apply " + q), f.at("apply " + k));
    EXPECT_LT(f.at("apply " + k), f.at("apply " + v));
    EXPECT_LT(f.at("before " + u), f.at("apply " + g));
    EXPECT_EQ(f.calls.size(), plain_hook.calls.size());
    const XDeltaHook& p = plain_hook;
    EXPECT_LT(p.at("apply " + q), p.at("before " + k));  // apart: one module after the other
  }
  // The adapters changed the first sequence's logits only.
  const auto with = prefill(plain);
  const size_t V = with.size() / 2;
  double diff = 0;
  for (size_t i = 0; i < V; ++i) diff += std::fabs(with[i] - base[i]);
  EXPECT_GT(diff, 1e-3);
  for (size_t i = V; i < 2 * V; ++i) EXPECT_EQ(with[i], base[i]);
  fused.linears().set_adapter_hook(nullptr);
  plain.linears().set_adapter_hook(nullptr);
}

TEST(ModelRunner, FactoriesBuildProvidersOnFirstUse) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.num_blocks = 8;
  o.warm_up = false;
  std::vector<std::string> asked;
  o.linear_factories.push_back([&](const LinearSource& s) -> std::unique_ptr<LinearProvider> {
    asked.push_back(s.module);
    return s.module == "lm_head" ? std::make_unique<Doubled>(s) : nullptr;
  });
  ModelRunner runner(test::plugins(), o);
  EXPECT_EQ(runner.weights().device_bytes(), 0u);  // nothing loaded before the first step
  auto r = greedy_generate(runner, std::vector<int32_t>{1, 2, 3}, 2);
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(asked.size(), 2u * 7 + 1);  // 7 linears per layer, then the lm_head
  EXPECT_EQ(asked.back(), "lm_head");
}

// A module a factory (a quantizer) claims keeps its provider: its group is not fused,
// each factory is asked once per module, and a set() provider replaces a fused
// module's share of the product.
TEST(ModelRunner, FusionLeavesClaimedAndReplacedModulesAlone) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.num_blocks = 16;
  o.fuse_linears = true;
  std::vector<std::string> asked;
  const std::string k0 = "model.layers.0.self_attn.k_proj";
  o.linear_factories.push_back([&](const LinearSource& s) -> std::unique_ptr<LinearProvider> {
    asked.push_back(s.module);
    return s.module == k0 ? std::make_unique<Doubled>(s) : nullptr;
  });
  ModelRunner runner(test::plugins(), o);
  EXPECT_EQ(std::count(asked.begin(), asked.end(), k0), 1);
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "model.layers.1.mlp.up_proj"), 1);
  EXPECT_FALSE(runner.linears().fused("model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(runner.linears().fused(k0));
  EXPECT_TRUE(runner.linears().fused("model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(runner.linears().fused("model.layers.1.self_attn.v_proj"));
  auto step = [&] {
    ForwardBatch fb;
    fb.token_ids = {4, 5};
    fb.positions = {0, 1};
    fb.slot_mapping = {0, 1};
    fb.block_tables = {0};
    fb.seqs = {SeqSlice{0, 2, 2, 0, 1, 1, -1}};
    return runner.to_host(runner.execute(fb));
  };
  auto base = step();
  const std::string v1 = "model.layers.1.self_attn.v_proj";
  auto doubled = std::make_unique<Doubled>(LinearSource{v1, 0, runner.weights(), runner.backend()});
  Doubled* d = doubled.get();
  runner.linears().set(v1, std::move(doubled));
  EXPECT_FALSE(runner.linears().fused(v1));
  auto changed = step();
  EXPECT_EQ(d->calls, 1);
  double diff = 0;
  for (size_t i = 0; i < base.size(); ++i) diff += std::fabs(changed[i] - base[i]);
  EXPECT_GT(diff, 1e-3);
}

void edit_config(const std::filesystem::path& dir, const std::string& patch) {
  std::ifstream in(dir / "config.json");
  auto c = nlohmann::json::parse(in);
  c.merge_patch(nlohmann::json::parse(patch));
  std::ofstream(dir / "config.json") << c.dump();
}

TEST(ModelRunner, RefusesBadCheckpointsByName) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  edit_config(dir.path(), R"({"rope_scaling":{"rope_type":"longrope","factor":2}})");
  test::expect_error([&] { open(dir.path()); }, {"rope type \"longrope\""});
  edit_config(dir.path(), R"({"rope_scaling":null,"rope_parameters":{"rope_type":"llama3","factor":8}})");
  test::expect_error([&] { open(dir.path()); }, {"llama3", "low_freq_factor"});
  edit_config(dir.path(), R"({"rope_parameters":null,"num_hidden_layers":3})");
  test::expect_error([&] { open(dir.path()); }, {"missing tensor \"model.layers.2.input_layernorm.weight\""});
  edit_config(dir.path(), R"({"num_hidden_layers":2,"intermediate_size":100})");
  test::expect_error([&] { open(dir.path()); }, {"model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[100, 64]"});
  edit_config(dir.path(), R"({"intermediate_size":128,"model_type":"gpt_neox"})");
  test::expect_error([&] { open(dir.path()); }, {"no model plugin handles model_type \"gpt_neox\""});
  edit_config(dir.path(), R"({"model_type":"qwen2"})");  // needs q/k/v biases
  test::expect_error([&] { open(dir.path()); }, {"missing tensor \"model.layers.0.self_attn.q_proj.bias\""});
  edit_config(dir.path(), R"({"model_type":"llama","hidden_act":"swiglu_oai"})");
  test::expect_error([&] { open(dir.path()); }, {"hidden_act \"swiglu_oai\""});
}

TEST(ModelRunner, ReadsEosAndSizesTheCache) {
  TempDir dir;
  write_random_llama(dir.path(), {});
  test::write_file(dir / "generation_config.json", R"({"eos_token_id":[2,7]})");
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.kv_cache_bytes = 1 << 20;
  ModelRunner r(test::plugins(), o);
  EXPECT_EQ(r.eos_token_ids(), (std::vector<int32_t>{2, 7}));
  EXPECT_EQ(r.block_size(), 16);
  // 2 layers x K,V x 16 tokens x 2 kv heads x 16 dims x 4 bytes = 8 KiB per block.
  EXPECT_EQ(r.num_blocks(), (1 << 20) / 8192);
  EXPECT_EQ(r.spec().num_layers, 2);
  EXPECT_EQ(r.spec().vocab_size, 256);
  EXPECT_EQ(r.plugin_name(), "llama");
  ForwardBatch bad;
  bad.token_ids = {1};
  bad.positions = {0};
  bad.slot_mapping = {16};
  bad.block_tables = {0};
  bad.seqs = {SeqSlice{0, 1, 1, 0, 1, 1, -1}};
  test::expect_error([&] { r.execute(bad); }, {"sequence 0", "slot_mapping 16"});
}

}  // namespace
}  // namespace banyan::core
