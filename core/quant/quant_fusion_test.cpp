// Quantized projection groups (linear_n, linear_gated) fused into one QuantizedLinear
// by the quantization's group factory: on the CPU backend, with fusion on, q/k/v and
// gate/up give the same bits as one product per module with fusion off, for one row
// and several (up to the CPU's small-M threshold, where each output is one row's dot
// product; beyond it the tiled sgemm rounds by tile position, so within 1e-5), also
// with bias and with an adapter hook; layouts that do not stack (fp8 per tensor, nf4
// with double quantization, nf4 blocks straddling two modules) keep one product per
// module; greedy decoding of a quantized model gives the same tokens with fusion on
// and off.
#include "core/quant/quant_test_util.h"
#include "core/quant/quantized_matrix.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/test_util.h"
#include "core/runtime/weight_store.h"
#include "kernels/cpu/kernels.h"

#ifdef BANYAN_WITH_CUDA
#include "kernels/cpu/convert.h"
#include "kernels/cuda/cuda_backend.h"
#endif

#include <banyan/quantizer.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace banyan::core {
namespace {

struct Variant {
  const char* name;
  const char* method;
  const char* options;
  bool fuses;
};

const Variant kVariants[] = {
    {"int8", "int8", "{}", true},
    {"int4_g128", "int4", R"({"group_size": 128})", true},
    {"int4_g32", "int4", R"({"group_size": 32})", true},
    {"nf4", "nf4", "{}", true},
    {"nf4_b512", "nf4", R"({"block_size": 512})", true},  // blocks of two rows, whole in each part
    {"nf4_b80", "nf4", R"({"block_size": 80})", false},   // N * K % 80 != 0: blocks straddle parts
    {"nf4_double", "nf4", R"({"double_quant": true})", false},
    {"fp8_channel", "fp8", R"({"per_channel": true})", true},
    {"fp8_tensor", "fp8", "{}", false},
};

constexpr int64_t kHidden = 256, kInter = 384;

/// Adds a module-specific value to each output: shows the hook ran once per module
/// on that module's columns, after the base product.
class MarkHook final : public LinearAdapterHook {
 public:
  void before(const std::string& module, const LinearContext&, const Tensor&, const Tensor&) override {
    seen.push_back("before " + module);
  }
  void apply(const std::string& module, const LinearContext&, const Tensor&, Tensor& out) override {
    seen.push_back("apply " + module);
    const float add = static_cast<float>(module.size() % 7) + 0.25f;
    for (int64_t i = 0; i < out.numel(); ++i) out.as<float>()[i] += add;
  }
  std::vector<std::string> seen;
};

Quantization quantization(const fs::path& dir, const Variant& v) {
  QuantizationOptions o;
  o.model_dir = dir;
  o.method = v.method;
  o.options_json = v.options;
  return make_quantization(test::plugins(), o);
}

/// One registry over a random checkpoint, with its own quantization of the variant.
struct Registry {
  Registry(const fs::path& dir, const Variant& v, bool fuse, const std::string& device = "cpu")
      : be(make_backend(device)), q(quantization(dir, v)), ckpt(dir), weights(ckpt, *be) {
    linears.emplace(weights, *be);
    linears->set_fusion(fuse);
    for (const auto& f : q.factories) linears->add_factory(f);
    for (const auto& f : q.group_factories) linears->add_group_factory(f);
  }
  LinearContext ctx(bool adapters = false) {
    return LinearContext{*be, arena, layout, batch, Tensor{}, adapters};
  }
  std::unique_ptr<Backend> be;
  Quantization q;
  Checkpoint ckpt;
  WeightStore weights;
  std::optional<LinearRegistry> linears;
  StepArena arena{*be};
  StepLayout layout;
  ForwardBatch batch;
};

Tensor input(StepArena& arena, int64_t rows, uint32_t seed) {
  Tensor x = arena.tensor(DType::f32, {rows, kHidden});
  const auto v = test::random_floats(static_cast<size_t>(rows * kHidden), seed);
  std::memcpy(x.data, v.data(), v.size() * sizeof(float));
  return x;
}

void expect_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.numel(), b.numel()) << what;
  int64_t differ = 0;
  for (int64_t i = 0; i < a.numel(); ++i) differ += a.as<float>()[i] != b.as<float>()[i];
  EXPECT_EQ(differ, 0) << what << ": " << differ << " of " << a.numel() << " values differ";
}

// Beyond the small-M threshold: equal within 1e-5 of the largest magnitude.
void expect_close(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.numel(), b.numel()) << what;
  float scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::fabs(b.as<float>()[i]));
  ASSERT_GT(scale, 0.0f) << what;
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_NEAR(a.as<float>()[i], b.as<float>()[i], 1e-5f * scale) << what << " at " << i;
}

void write_model(const fs::path& dir, const std::string& type = "llama") {
  RandomLlamaSpec s;
  s.model_type = type;  // qwen2: q/k/v with biases
  s.hidden = kHidden;
  s.intermediate = kInter;
  s.heads = 4;
  s.kv_heads = 2;  // q [256, 256], k and v [128, 256]
  s.layers = 2;
  write_random_llama(dir, s);
}


class QuantFusion : public ::testing::TestWithParam<Variant> {};

void compare_groups(const fs::path& dir, const Variant& v, bool with_hook) {
  Registry fused(dir, v, true), plain(dir, v, false);
  MarkHook hook_f, hook_p;
  if (with_hook) {
    fused.linears->set_adapter_hook(&hook_f);
    plain.linears->set_adapter_hook(&hook_p);
  }
  const std::string p = "model.layers.1.";
  const std::string qkv[] = {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"};
  const int64_t widths[] = {kHidden, kHidden / 2, kHidden / 2};
  const int64_t small_m = kernels::cpu::small_m_threshold();
  for (int64_t rows : {int64_t{1}, int64_t{2}, int64_t{7}, small_m, small_m + 28}) {
    SCOPED_TRACE(std::to_string(rows) + " rows");
    const auto expect = rows <= small_m ? expect_bits : expect_close;
    Tensor x = input(fused.arena, rows, static_cast<uint32_t>(rows));
    Tensor xp = input(plain.arena, rows, static_cast<uint32_t>(rows));
    Tensor of[3], op[3];
    for (int i = 0; i < 3; ++i) of[i] = op[i] = Tensor(nullptr, DType::f32, {rows, widths[i]});
    fused.linears->forward_n(qkv, BANYAN_LINEAR_DEFAULT, fused.ctx(with_hook), x, of);
    plain.linears->forward_n(qkv, BANYAN_LINEAR_DEFAULT, plain.ctx(with_hook), xp, op);
    for (int i = 0; i < 3; ++i) expect(of[i], op[i], qkv[i]);
    // gate/up: act(gate) * up against act_mul of the unfused parts.
    const std::string gate = p + "mlp.gate_proj", up = p + "mlp.up_proj";
    Tensor gf = fused.arena.tensor(DType::f32, {rows, kInter});
    fused.linears->forward_gated(gate, up, BANYAN_LINEAR_DEFAULT, fused.ctx(with_hook), x, BANYAN_ACT_SILU, gf);
    Tensor g = plain.arena.tensor(DType::f32, {rows, kInter}), u = plain.arena.tensor(DType::f32, {rows, kInter});
    plain.linears->forward(gate, BANYAN_LINEAR_DEFAULT, plain.ctx(with_hook), xp, g);
    plain.linears->forward(up, BANYAN_LINEAR_DEFAULT, plain.ctx(with_hook), xp, u);
    Tensor gp = plain.arena.tensor(DType::f32, {rows, kInter});
    plain.be->act_mul(g, u, BANYAN_ACT_SILU, gp);
    expect(gf, gp, "gate/up");
    // The products are not trivially equal: the input reached them.
    double mag = 0;
    for (int64_t i = 0; i < gf.numel(); ++i) mag += std::fabs(gf.as<float>()[i]);
    EXPECT_GT(mag, 0.0);
  }
  for (const auto& m : {qkv[0], qkv[1], qkv[2], p + "mlp.gate_proj", p + "mlp.up_proj"}) {
    EXPECT_EQ(fused.linears->fused(m), v.fuses) << m;
    EXPECT_FALSE(plain.linears->fused(m)) << m;
  }
  EXPECT_FALSE(fused.linears->fused(p + "mlp.down_proj"));
  if (with_hook) {
    // The same calls; a fused group runs every module's before() ahead of its one
    // product, then apply() per module in order.
    auto sorted = [](std::vector<std::string> calls) {
      std::sort(calls.begin(), calls.end());
      return calls;
    };
    EXPECT_EQ(sorted(hook_f.seen), sorted(hook_p.seen));
    ASSERT_GE(hook_f.seen.size(), 6u);
    const std::vector<std::string> first(hook_f.seen.begin(), hook_f.seen.begin() + 6);
    const std::vector<std::string> want_fused = {"before " + qkv[0], "before " + qkv[1], "before " + qkv[2],
                                                 "apply " + qkv[0],  "apply " + qkv[1],  "apply " + qkv[2]};
    const std::vector<std::string> want_apart = {"before " + qkv[0], "apply " + qkv[0], "before " + qkv[1],
                                                 "apply " + qkv[1],  "before " + qkv[2], "apply " + qkv[2]};
    EXPECT_EQ(first, v.fuses ? want_fused : want_apart);
  }
}

TEST_P(QuantFusion, GroupsEqualPerModuleProductsBitForBit) {
  test::TempDir dir;
  write_model(dir.path());
  compare_groups(dir.path(), GetParam(), false);
}

TEST_P(QuantFusion, WithAnAdapterHookTheHookRunsPerModule) {
  test::TempDir dir;
  write_model(dir.path());
  compare_groups(dir.path(), GetParam(), true);
}

TEST_P(QuantFusion, BiasesAreStackedWithTheWeights) {
  test::TempDir dir;
  write_model(dir.path(), "qwen2");
  compare_groups(dir.path(), GetParam(), false);
}

// Greedy decoding through ModelRunner (one-row decode steps: views of the fused row;
// prefill and batches: split columns) gives the same tokens, and log-probabilities
// within 1e-5 (steps of more rows than the small-M threshold run the tiled sgemm).
TEST_P(QuantFusion, GreedyTokensMatchWithFusionOff) {
  test::TempDir dir;
  write_model(dir.path());
  const Variant& v = GetParam();
  Quantization q = quantization(dir.path(), v);
  ModelRunnerOptions o;
  o.model_dir = dir.path();
  o.num_blocks = 64;
  o.block_size = 4;
  o.linear_factories = q.factories;
  o.linear_group_factories = q.group_factories;
  o.fuse_linears = true;
  ModelRunner fused(test::plugins(), o);
  const int64_t after_fused = q.stats->modules;
  o.fuse_linears = false;
  ModelRunner plain(test::plugins(), o);
  EXPECT_EQ(after_fused, 14) << "every linear of both blocks quantized once";
  EXPECT_EQ(q.stats->modules, 28);
  EXPECT_EQ(fused.linears().fused("model.layers.0.self_attn.k_proj"), v.fuses);
  EXPECT_FALSE(plain.linears().fused("model.layers.0.self_attn.k_proj"));
  const std::vector<std::vector<int32_t>> prompts = {{5, 17, 99, 3, 250, 42, 7}, {1, 2}, {200, 150, 100, 9}};
  GreedyOptions g;
  g.max_new_tokens = 8;
  g.top_logprobs = 3;
  g.stop_at_eos = false;
  for (int chunk : {0, 3}) {
    g.prefill_chunk = chunk;
    auto a = greedy_generate_batch(fused, prompts, g), b = greedy_generate_batch(plain, prompts, g);
    for (size_t i = 0; i < prompts.size(); ++i) {
      SCOPED_TRACE("prompt " + std::to_string(i) + ", chunk " + std::to_string(chunk));
      ASSERT_EQ(a[i].tokens.size(), 8u);
      EXPECT_EQ(a[i].tokens, b[i].tokens);
      for (size_t s = 0; s < a[i].top_logprobs.size(); ++s)
        for (size_t k = 0; k < a[i].top_logprobs[s].size(); ++k) {
          EXPECT_EQ(a[i].top_logprobs[s][k].first, b[i].top_logprobs[s][k].first);
          EXPECT_NEAR(a[i].top_logprobs[s][k].second, b[i].top_logprobs[s][k].second, 1e-5);
        }
    }
  }
  // One prompt at a time, every step within the small-M threshold: the same bits.
  g.prefill_chunk = 0;
  for (const auto& prompt : prompts) {
    auto a = greedy_generate_batch(fused, {prompt}, g), b = greedy_generate_batch(plain, {prompt}, g);
    EXPECT_EQ(a[0].tokens, b[0].tokens);
    EXPECT_EQ(a[0].top_logprobs, b[0].top_logprobs);
  }
}

INSTANTIATE_TEST_SUITE_P(Quantizers, QuantFusion, ::testing::ValuesIn(kVariants),
                         [](const auto& info) { return std::string(info.param.name); });

// The QLoRA fixture's base (quant_engine_test.cpp runs QLoRA with fusion on): under
// nf4, its q/k/v and gate/up groups fuse.
TEST(QuantFusionFixture, TheQloraBaseFusesUnderNf4) {
  const fs::path dir = test::model_fixture("llama");
  Quantization q = quantization(dir, kVariants[3]);
  ModelRunnerOptions o;
  o.model_dir = dir;
  o.num_blocks = 16;
  o.linear_factories = q.factories;
  o.linear_group_factories = q.group_factories;
  o.fuse_linears = true;
  ModelRunner runner(test::plugins(), o);
  for (const char* m : {"self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"})
    EXPECT_TRUE(runner.linears().fused(std::string("model.layers.0.") + m)) << m;
  EXPECT_FALSE(runner.linears().fused("model.layers.0.mlp.down_proj"));
}

#ifdef BANYAN_WITH_CUDA
// On the GPU the fused group's kernels see other shapes than the parts' (the GEMV's
// split over warps, the GEMM's tiles), so the sums may round differently: bf16
// outputs within 2^-7 of each other (plus 1e-3 of the largest magnitude).
std::vector<float> download_bf16(Backend& be, const Tensor& t) {
  std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
  be.download(h.data(), t.data, h.size() * 2);
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = kernels::cpu::bf16_to_f32(h[i]);
  return out;
}

void expect_near_bf16(Backend& be, const Tensor& a, const Tensor& b, const std::string& what) {
  const auto va = download_bf16(be, a), vb = download_bf16(be, b);
  ASSERT_EQ(va.size(), vb.size()) << what;
  float scale = 0;
  for (float v : vb) scale = std::max(scale, std::fabs(v));
  ASSERT_GT(scale, 0.0f) << what;
  for (size_t i = 0; i < va.size(); ++i)
    ASSERT_NEAR(va[i], vb[i], std::max(std::fabs(va[i]), std::fabs(vb[i])) / 128 + 1e-3f * scale)
        << what << " at " << i;
}

TEST_P(QuantFusion, CudaGroupsMatchPerModuleProducts) {
  std::string why;
  if (!kernels::cuda::cuda_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  const Variant& v = GetParam();
  test::TempDir dir;
  write_model(dir.path());
  Registry fused(dir.path(), v, true, "cuda"), plain(dir.path(), v, false, "cuda");
  const std::string p = "model.layers.0.";
  const std::string qkv[] = {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"};
  const int64_t widths[] = {kHidden, kHidden / 2, kHidden / 2};
  for (int64_t rows : {1, 3, 64}) {  // the GEMV (1-4 rows), dequantize + GEMM beyond
    SCOPED_TRACE(std::to_string(rows) + " rows");
    const auto host = test::random_floats(static_cast<size_t>(rows * kHidden), static_cast<uint32_t>(rows));
    std::vector<uint16_t> xb(host.size());
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = kernels::cpu::f32_to_bf16(host[i]);
    Tensor x = fused.arena.tensor(DType::bf16, {rows, kHidden}), xp = plain.arena.tensor(DType::bf16, {rows, kHidden});
    fused.be->upload(x.data, xb.data(), xb.size() * 2);
    plain.be->upload(xp.data, xb.data(), xb.size() * 2);
    Tensor of[3], op[3];
    for (int i = 0; i < 3; ++i) of[i] = op[i] = Tensor(nullptr, DType::bf16, {rows, widths[i]});
    fused.linears->forward_n(qkv, BANYAN_LINEAR_DEFAULT, fused.ctx(), x, of);
    plain.linears->forward_n(qkv, BANYAN_LINEAR_DEFAULT, plain.ctx(), xp, op);
    const std::string gate = p + "mlp.gate_proj", up = p + "mlp.up_proj";
    Tensor gf = fused.arena.tensor(DType::bf16, {rows, kInter});
    fused.linears->forward_gated(gate, up, BANYAN_LINEAR_DEFAULT, fused.ctx(), x, BANYAN_ACT_SILU, gf);
    Tensor g = plain.arena.tensor(DType::bf16, {rows, kInter}), u = plain.arena.tensor(DType::bf16, {rows, kInter});
    plain.linears->forward(gate, BANYAN_LINEAR_DEFAULT, plain.ctx(), xp, g);
    plain.linears->forward(up, BANYAN_LINEAR_DEFAULT, plain.ctx(), xp, u);
    Tensor gp = plain.arena.tensor(DType::bf16, {rows, kInter});
    plain.be->act_mul(g, u, BANYAN_ACT_SILU, gp);
    fused.be->synchronize();
    plain.be->synchronize();
    for (int i = 0; i < 3; ++i) expect_near_bf16(*fused.be, of[i], op[i], qkv[i]);
    expect_near_bf16(*fused.be, gf, gp, "gate/up");
  }
  EXPECT_EQ(fused.linears->fused(qkv[1]), v.fuses);
  EXPECT_EQ(fused.linears->fused(p + "mlp.up_proj"), v.fuses);
}

// The quantization (its factories) may outlive the runner whose backend its linears
// used: the device scratch of the dequantize + GEMM path goes with the linears, not
// with the quantization (banyan_bench_quant keeps one quantization per variant around
// its runner, and crashed at its end before).
TEST_P(QuantFusion, CudaQuantizationMayOutliveItsRunner) {
  std::string why;
  if (!kernels::cuda::cuda_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  test::TempDir dir;
  write_model(dir.path());
  Quantization q = quantization(dir.path(), GetParam());
  for (int round = 0; round < 2; ++round) {  // a second runner from the same quantization
    ModelRunnerOptions o;
    o.model_dir = dir.path();
    o.device = "cuda";
    o.num_blocks = 64;
    o.block_size = 4;
    o.linear_factories = q.factories;
    o.linear_group_factories = q.group_factories;
    ModelRunner runner(test::plugins(), o);
    GreedyOptions g;
    g.max_new_tokens = 2;
    g.stop_at_eos = false;
    // A 7-token prefill: more rows than the GEMV takes, so the scratch is used.
    const auto out = greedy_generate_batch(runner, {{5, 17, 99, 3, 250, 42, 7}}, g);
    EXPECT_EQ(out[0].tokens.size(), 2u);
  }
  EXPECT_EQ(q.stats->modules, 28) << "14 linears quantized per runner";
}
#endif

// stackable_rows() judges from plans alone; the reasons name what straddles.
TEST(StackRows, RefusesWhatDoesNotStack) {
  auto plan = [](int32_t layout, int64_t rows, int64_t cols, int32_t g = 0, int32_t g2 = 0, int64_t scales = 0) {
    BanyanQuantizedWeight w = empty_quantized_weight();
    w.layout = layout;
    w.rows = rows;
    w.cols = cols;
    w.group_size = g;
    w.group_size2 = g2;
    w.scales.ndim = 1;
    w.scales.shape[0] = scales;
    return w;
  };
  std::string why;
  const BanyanQuantizedWeight int8[] = {plan(BANYAN_QUANT_INT8_ROW, 4, 8), plan(BANYAN_QUANT_INT8_ROW, 2, 8)};
  EXPECT_TRUE(stackable_rows(int8, &why)) << why;
  const BanyanQuantizedWeight cols[] = {plan(BANYAN_QUANT_INT8_ROW, 4, 8), plan(BANYAN_QUANT_INT8_ROW, 4, 16)};
  EXPECT_FALSE(stackable_rows(cols, &why));
  const BanyanQuantizedWeight groups[] = {plan(BANYAN_QUANT_INT4_GROUP, 4, 64, 32), plan(BANYAN_QUANT_INT4_GROUP, 4, 64, 64)};
  EXPECT_FALSE(stackable_rows(groups, &why));
  const BanyanQuantizedWeight straddle[] = {plan(BANYAN_QUANT_LUT4_BLOCK, 3, 24, 64), plan(BANYAN_QUANT_LUT4_BLOCK, 8, 24, 64)};
  EXPECT_FALSE(stackable_rows(straddle, &why));  // 72 elements: the second block spans both
  EXPECT_NE(why.find("straddle"), std::string::npos) << why;
  const BanyanQuantizedWeight whole[] = {plan(BANYAN_QUANT_LUT4_BLOCK, 8, 24, 64), plan(BANYAN_QUANT_LUT4_BLOCK, 3, 24, 64)};
  EXPECT_TRUE(stackable_rows(whole, &why)) << why;  // 192 elements: three whole blocks
  const BanyanQuantizedWeight nested[] = {plan(BANYAN_QUANT_LUT4_BLOCK, 8, 64, 64, 256), plan(BANYAN_QUANT_LUT4_BLOCK, 8, 64, 64, 256)};
  EXPECT_FALSE(stackable_rows(nested, &why));
  EXPECT_NE(why.find("double quantization"), std::string::npos) << why;
  const BanyanQuantizedWeight tensor[] = {plan(BANYAN_QUANT_FP8, 4, 8, 0, 0, 1), plan(BANYAN_QUANT_FP8, 4, 8, 0, 0, 1)};
  EXPECT_FALSE(stackable_rows(tensor, &why));
  const BanyanQuantizedWeight channel[] = {plan(BANYAN_QUANT_FP8, 4, 8, 0, 0, 4), plan(BANYAN_QUANT_FP8, 2, 8, 0, 0, 2)};
  EXPECT_TRUE(stackable_rows(channel, &why)) << why;
}

}  // namespace
}  // namespace banyan::core
