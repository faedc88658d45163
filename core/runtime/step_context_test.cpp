// The BanyanOpsV1 table as a plugin sees it (through the SDK's Ops wrapper):
// ops not covered by the llama models (layer_norm, transposed linear with bias,
// activation, add), logits row selection, dynamic NTK per sequence, and the
// validation errors that name the op and the tensor.
#include "core/runtime/checkpoint.h"
#include "core/runtime/kv_cache.h"
#include "core/runtime/linear.h"
#include "core/runtime/rope.h"
#include "core/runtime/safetensors_writer.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/step_context.h"
#include "core/runtime/step_layout.h"
#include "core/runtime/test_util.h"
#include "core/runtime/weight_store.h"

#include <banyan/ops.h>

#include <cmath>
#include <cstring>

namespace banyan::core {
namespace {

using test::random_floats;

std::span<const std::byte> bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size() * 4};
}

// Two sequences: 3 new tokens (prefill) and 2 new tokens after 18 cached.
ForwardBatch make_batch() {
  ForwardBatch b;
  b.token_ids = {1, 2, 3, 4, 5};
  b.positions = {0, 1, 2, 18, 19};
  b.slot_mapping = {0, 1, 2, 18, 19};  // sequence 1: positions 16..31 live in block 1
  b.block_tables = {0, 2, 1};
  b.seqs = {SeqSlice{0, 3, 3, 0, 1, 2, -1}, SeqSlice{3, 2, 20, 1, 2, 1, -1}};
  return b;
}

class StepOps : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir / "model.safetensors",
                      {{"emb.weight", DType::f32, {V, H}, bytes(emb)},
                       {"ln.weight", DType::f32, {H}, bytes(lnw)},
                       {"ln.bias", DType::f32, {H}, bytes(lnb)},
                       {"fc.weight", DType::f32, {H, F}, bytes(fcw)},  // Conv1D: [in, out]
                       {"fc.bias", DType::f32, {F}, bytes(fcb)},
                       {"head.weight", DType::f32, {V, F}, bytes(head)},
                       {"g.weight", DType::f32, {F, H}, bytes(gw)},
                       {"u.weight", DType::f32, {F, H}, bytes(uw)}});
    ckpt.emplace(dir.path());
    weights.emplace(*ckpt, *be);
    linears.emplace(*weights, *be);
    kv.emplace(*be, KvCacheConfig{1, 1, 4, 16, 3, DType::f32});
    arena.emplace(*be);
    rope.emplace(*be);
    validate_batch(batch, {3, 16, static_cast<int32_t>(V)});
    layout = upload_layout(batch, *be, *arena, staging);
    step.emplace(StepResources{*be, *arena, *weights, *linears, *kv, *rope}, batch, layout);
  }
  Ops ops() { return Ops(&StepContext::ops(), &*step); }

  static constexpr int64_t V = 11, H = 8, F = 6;
  test::TempDir dir;
  std::vector<float> emb = random_floats(V * H, 1), lnw = random_floats(H, 2),
                     lnb = random_floats(H, 3), fcw = random_floats(H * F, 4),
                     fcb = random_floats(F, 5), head = random_floats(V * F, 6),
                     gw = random_floats(F * H, 7), uw = random_floats(F * H, 8);
  std::unique_ptr<Backend> be = make_backend("cpu");
  std::optional<Checkpoint> ckpt;
  std::optional<WeightStore> weights;
  std::optional<LinearRegistry> linears;
  std::optional<KvCache> kv;
  std::optional<StepArena> arena;
  std::optional<RopeCache> rope;
  ForwardBatch batch = make_batch();
  StepLayout layout;
  std::vector<int32_t> staging;
  std::optional<StepContext> step;
};

TEST_F(StepOps, LayerNormTransposedLinearActivationAddAndLogitRows) {
  Ops o = ops();
  auto [ids, pos] = o.step_input();
  ASSERT_EQ(ids.shape[0], 5);
  Tensor x = o.embedding("emb.weight", ids, DType::f32, H);
  Tensor res = o.alloc(DType::f32, {5, H});
  std::memset(res.data, 0, res.nbytes());
  Tensor n = o.layer_norm(x, &res, "ln.weight", "ln.bias", 1e-5f);  // res = 0 + x
  Tensor f = o.linear("fc", n, F, BANYAN_LINEAR_TRANSPOSED);
  Tensor g = o.activation(f, BANYAN_ACT_GELU_TANH);
  Tensor s = o.add(g, f);
  Tensor logits = o.logits(s, "head");
  ASSERT_EQ(logits.shape[0], 3);  // 2 rows of sequence 0, then 1 of sequence 1
  ASSERT_EQ(logits.shape[1], V);

  auto reference_row = [&](int token) {  // the same network, in double
    std::vector<double> xn(H), fo(F), out(V);
    double mean = 0, var = 0;
    for (int i = 0; i < H; ++i) mean += emb[token * H + i] / H;
    for (int i = 0; i < H; ++i) var += std::pow(emb[token * H + i] - mean, 2) / H;
    for (int i = 0; i < H; ++i) xn[i] = (emb[token * H + i] - mean) / std::sqrt(var + 1e-5) * lnw[i] + lnb[i];
    for (int j = 0; j < F; ++j) {
      double a = fcb[j];
      for (int i = 0; i < H; ++i) a += xn[i] * fcw[i * F + j];
      const double gl = 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
      fo[j] = gl + a;
    }
    for (int v = 0; v < V; ++v) {
      out[v] = 0;
      for (int j = 0; j < F; ++j) out[v] += fo[j] * head[v * F + j];
    }
    return out;
  };
  const int tokens_of_rows[] = {2, 3, 5};  // ids of token rows 1, 2 and 4
  for (int r = 0; r < 3; ++r) {
    auto want = reference_row(tokens_of_rows[r]);
    for (int v = 0; v < V; ++v) EXPECT_NEAR(logits.as<float>()[r * V + v], want[v], 1e-4) << r;
  }
  for (int i = 0; i < 5 * H; ++i) EXPECT_EQ(res.as<float>()[i], x.as<float>()[i]);
}

// linear_n and linear_gated (ABI 1.3) give what linear and act_mul give, fused (one
// product over the weights loaded side by side) or not, and on a host whose table
// predates them the SDK falls back to those ops.
TEST_F(StepOps, GroupedLinearsEqualSingleOnesAndOlderHostsFallBack) {
  linears->set_fusion(true);
  Ops o = ops();
  auto [ids, pos] = o.step_input();
  Tensor x = o.embedding("emb.weight", ids, DType::f32, H);
  const std::string names[] = {"g", "u"};
  const int64_t dims[] = {F, F};
  std::vector<Tensor> gu = o.linear_n(names, x, dims);
  Tensor gated = o.linear_gated("g", "u", x, F, BANYAN_ACT_SILU);
  EXPECT_TRUE(linears->fused("g"));
  EXPECT_TRUE(linears->fused("u"));
  BanyanOpsV1 old = StepContext::ops();
  old.struct_size = offsetof(BanyanOpsV1, linear_n);  // an ABI 1.2 host
  Ops o12(&old, &*step);
  std::vector<Tensor> gu12 = o12.linear_n(names, x, dims);
  Tensor gated12 = o12.linear_gated("g", "u", x, F, BANYAN_ACT_SILU);
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t j = 0; j < F; ++j) {
      double g = 0, u = 0;
      for (int64_t i = 0; i < H; ++i) {
        g += x.as<float>()[t * H + i] * gw[j * H + i];
        u += x.as<float>()[t * H + i] * uw[j * H + i];
      }
      const double want = g / (1 + std::exp(-g)) * u;
      const int64_t at = t * F + j;
      EXPECT_NEAR(gu[0].as<float>()[at], g, 1e-5);
      EXPECT_NEAR(gu[1].as<float>()[at], u, 1e-5);
      EXPECT_NEAR(gu12[0].as<float>()[at], g, 1e-5);
      EXPECT_NEAR(gu12[1].as<float>()[at], u, 1e-5);
      EXPECT_NEAR(gated.as<float>()[at], want, 1e-5);
      EXPECT_NEAR(gated12.as<float>()[at], want, 1e-5);
    }
  // Modules that do not exist, or outputs of the wrong width, are named.
  const std::string bad[] = {"g", "nope"};
  EXPECT_THROW(o.linear_n(bad, x, dims), Error);
  const int64_t wrong[] = {F, F + 1};
  EXPECT_THROW(o.linear_n(names, x, wrong), Error);
}

TEST_F(StepOps, DynamicNtkUsesEachSequencesLength) {
  Ops o = ops();
  BanyanRopeSpec spec{};
  spec.type = BANYAN_ROPE_DYNAMIC;
  spec.head_dim = spec.rotary_dim = 4;
  spec.neox = 1;
  spec.theta = 10000;
  spec.factor = 2;
  spec.max_position = 8;  // sequence 0 (3 tokens) is within it, sequence 1 (20) beyond
  Tensor q = o.alloc(DType::f32, {5, 4}), k = o.alloc(DType::f32, {5, 4});
  for (int i = 0; i < 20; ++i) q.as<float>()[i] = k.as<float>()[i] = 1.0f;
  o.rotary(q, k, spec);
  for (int t = 0; t < 5; ++t) {
    const int64_t len = t < 3 ? 3 : 20;
    auto f = rope_frequencies(spec, len);
    const float angle = static_cast<float>(batch.positions[t]) * f.inv_freq[1];
    EXPECT_NEAR(q.as<float>()[t * 4 + 1], std::cos(angle) - std::sin(angle), 1e-5) << t;
  }
}

TEST_F(StepOps, InvalidCallsNameTheOpAndTensor) {
  Ops o = ops();
  auto [ids, pos] = o.step_input();
  Tensor x = o.embedding("emb.weight", ids, DType::f32, H);
  // Read as [out, in] (flag missing), the Conv1D weight's bias no longer fits.
  test::expect_error([&] { o.linear("fc", x, F); }, {"linear fc", "bias is [6], expected [8]"});
  Tensor narrow = o.alloc(DType::f32, {5, F});
  test::expect_error([&] { o.linear("head", narrow, V + 1); }, {"linear head", "output is [5, 12]"});
  test::expect_error([&] { o.linear("head", x, V); }, {"linear head", "input is [5, 8]", "[T, 6]"});
  test::expect_error([&] { o.rms_norm(x, nullptr, "nope.weight", 1e-5f); },
                     {"no tensor \"nope.weight\""});
  try {
    o.weight("missing");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::not_found);
  }
  Tensor wrong = o.alloc(DType::f32, {5, H + 1});
  test::expect_error([&] { o.add(x, wrong); }, {"add", "b is F32[5, 9]", "a is F32[5, 8]"});
  BanyanAttentionSpec a{0, 2, 2, 4, 0.5f, 0};  // the cache has 1 KV head
  Tensor q = o.alloc(DType::f32, {5, 8});
  test::expect_error([&] { o.attention(q, q, q, a); }, {"attention (layer 0)", "do not match the KV cache"});
  a.layer = 3;
  test::expect_error([&] { o.attention(q, q, q, a); }, {"outside the KV cache's 1 layers"});
  BanyanRopeSpec r{};
  r.type = 9;
  test::expect_error([&] { o.rotary(q, q, r); }, {"unknown rope type 9"});
  test::expect_error([&] { o.act_mul(x, x, static_cast<Activation>(42)); }, {"unknown activation 42"});
}

}  // namespace
}  // namespace banyan::core
