// Programmatic dependent launch along the decode chain: a few Llama-shaped decode
// layers (embedding, norms, GEMV projections, rotary, KV write, split-KV attention
// and its combine, SiLU-and-mul, the row gather and lm_head), run with chained
// launches eagerly and as a replayed graph, must give bitwise what plain launches
// give, and the logits of the CPU backend within bf16 tolerance. A chained kernel
// that read its predecessor's output before waiting would see stale or poisoned
// values here (every intermediate is poisoned before each run).
#include "kernels/cuda/cuda_test_util.h"
#include "kernels/cuda/kernels.h"

#include <banyan/abi.h>

#include <cmath>

namespace banyan::kernels::cuda::test {
namespace {

struct Shape {
  static constexpr int64_t H = 512, Hq = 8, Hk = 2, D = 64, F = 2048, L = 3, V = 4096;
  static constexpr int64_t bs = 16, per_seq = 16;  // contexts up to 256 keys: split-KV
};

// One decode step of `T` sequences over `Shape`, its tensors on one backend.
struct Decoder : Shape {
  int64_t T;
  core::Backend& b;
  Dev embed, w_norm, lm_head, inv_freq, layout;
  std::vector<Dev> wq, wk, wv, wo, wg, wu, wd, kc, vc;
  Dev res, x, q, k, v, at, o, gate, up, act, down, rows, logits;
  core::StepLayout l;

  // Activations and caches in `adt` (the CPU backend computes in f32, rounding as
  // bf16 does); matrices as the backend stores bf16 checkpoints.
  Decoder(core::Backend& be, int64_t tokens, DType adt) : T(tokens), b(be) {
    const DType w = b.weight_dtype(DType::bf16, 2);
    embed = make(b, w, {V, H});
    w_norm = make(b, DType::f32, {H});
    lm_head = make(b, w, {V, H});
    inv_freq = make(b, DType::f32, {1, D / 2});
    for (int64_t i = 0; i < L; ++i) {
      wq.push_back(make(b, w, {Hq * D, H}));
      wk.push_back(make(b, w, {Hk * D, H}));
      wv.push_back(make(b, w, {Hk * D, H}));
      wo.push_back(make(b, w, {H, Hq * D}));
      wg.push_back(make(b, w, {F, H}));
      wu.push_back(make(b, w, {F, H}));
      wd.push_back(make(b, w, {H, F}));
      kc.push_back(make(b, adt, {T * per_seq, bs, Hk, D}));
      vc.push_back(make(b, adt, {T * per_seq, bs, Hk, D}));
    }
    res = make(b, adt, {T, H});
    x = make(b, adt, {T, H});
    q = make(b, adt, {T, Hq * D});
    k = make(b, adt, {T, Hk * D});
    v = make(b, adt, {T, Hk * D});
    at = make(b, adt, {T, Hq * D});
    o = make(b, adt, {T, H});
    gate = make(b, adt, {T, F});
    up = make(b, adt, {T, F});
    act = make(b, adt, {T, F});
    down = make(b, adt, {T, H});
    rows = make(b, adt, {T, H});
    logits = make(b, DType::f32, {T, V});
    layout = make(b, DType::i32, {512});
    int32_t* base = layout.t.as<int32_t>();
    const Device dev = b.device();
    l.token_ids = Tensor(base, DType::i32, {T}, dev);
    l.positions = Tensor(base + T, DType::i32, {T}, dev);
    l.slot_mapping = Tensor(base + 2 * T, DType::i32, {T}, dev);
    l.token_seq = Tensor(base + 3 * T, DType::i32, {T}, dev);
    l.logits_rows = Tensor(base + 4 * T, DType::i32, {T}, dev);
    l.seq_info = Tensor(base + 5 * T, DType::i32, {T, 4}, dev);
    l.block_tables = Tensor(base + 9 * T, DType::i32, {T * per_seq}, dev);
    l.num_tokens = l.num_seqs = static_cast<int32_t>(T);
    l.max_query_len = 1;
    l.max_context_len = static_cast<int32_t>(per_seq * bs);
  }

  // The same values on every backend: weights, cache history, the layout.
  void fill(const std::vector<int32_t>& ctx) {
    uint32_t seed = 1000;
    auto rnd = [&](const Dev& d, float lo, float hi) {
      put(b, d.t, random_bf16(static_cast<size_t>(d.t.numel()), seed++, lo, hi));
    };
    rnd(embed, -1.0f, 1.0f);
    rnd(w_norm, 0.5f, 1.5f);
    rnd(lm_head, -0.05f, 0.05f);
    std::vector<float> f(D / 2);
    for (int64_t i = 0; i < D / 2; ++i) f[i] = std::pow(10000.0f, -2.0f * i / D);
    put(b, inv_freq.t, f);
    for (int64_t i = 0; i < L; ++i) {
      rnd(wq[i], -0.05f, 0.05f), rnd(wk[i], -0.05f, 0.05f), rnd(wv[i], -0.05f, 0.05f);
      rnd(wo[i], -0.05f, 0.05f), rnd(wg[i], -0.05f, 0.05f), rnd(wu[i], -0.05f, 0.05f);
      rnd(wd[i], -0.03f, 0.03f), rnd(kc[i], -1.0f, 1.0f), rnd(vc[i], -1.0f, 1.0f);
    }
    std::vector<int32_t> h(512, 0);
    for (int64_t s = 0; s < T; ++s) {
      const int32_t p = ctx[s] - 1;
      const int32_t first = static_cast<int32_t>(s * per_seq);
      h[s] = static_cast<int32_t>((7 * s + 11) % V);                   // token id
      h[T + s] = p;                                                   // position
      h[2 * T + s] = (first + p / static_cast<int32_t>(bs)) * static_cast<int32_t>(bs) +
                     p % static_cast<int32_t>(bs);                    // slot
      h[3 * T + s] = static_cast<int32_t>(s);                         // token_seq
      h[4 * T + s] = static_cast<int32_t>(s);                         // logits row
      const int32_t info[4] = {static_cast<int32_t>(s), 1, ctx[s], first};
      std::copy(info, info + 4, h.begin() + 5 * T + 4 * s);
      for (int64_t j = 0; j < per_seq; ++j) h[9 * T + s * per_seq + j] = first + static_cast<int32_t>(j);
    }
    put_i32(b, layout.t, h);
  }

  void poison_intermediates() {
    for (Dev* d : {&res, &x, &q, &k, &v, &at, &o, &gate, &up, &act, &down, &rows, &logits})
      poison(b, d->t);
  }

  void enqueue() {
    core::RotaryParams rp;
    rp.positions = l.positions;
    rp.inv_freq = inv_freq.t;
    rp.head_dim = static_cast<int32_t>(D);
    rp.rotary_dim = static_cast<int32_t>(D);
    core::AttentionParams ap;
    ap.layout = &l;
    ap.block_size = static_cast<int32_t>(bs);
    ap.num_heads = static_cast<int32_t>(Hq);
    ap.num_kv_heads = static_cast<int32_t>(Hk);
    ap.head_dim = static_cast<int32_t>(D);
    ap.scale = 1.0f / std::sqrt(static_cast<float>(D));
    b.embedding(embed.t, l.token_ids, res.t);
    b.rms_norm(res.t, nullptr, w_norm.t, 1e-5f, 0.0f, x.t);
    for (int64_t i = 0; i < L; ++i) {
      b.matmul(x.t, wq[i].t, false, nullptr, q.t);
      b.matmul(x.t, wk[i].t, false, nullptr, k.t);
      b.matmul(x.t, wv[i].t, false, nullptr, v.t);
      b.rotary(q.t, k.t, rp);
      ap.k_cache = kc[i].t;
      ap.v_cache = vc[i].t;
      b.attention(q.t, k.t, v.t, ap, at.t);
      b.matmul(at.t, wo[i].t, false, nullptr, o.t);
      b.rms_norm(o.t, &res.t, w_norm.t, 1e-5f, 0.0f, x.t);
      b.matmul(x.t, wg[i].t, false, nullptr, gate.t);
      b.matmul(x.t, wu[i].t, false, nullptr, up.t);
      b.act_mul(gate.t, up.t, BANYAN_ACT_SILU, act.t);
      b.matmul(act.t, wd[i].t, false, nullptr, down.t);
      b.rms_norm(down.t, &res.t, w_norm.t, 1e-5f, 0.0f, x.t);
    }
    b.gather_rows(x.t, l.logits_rows, rows.t);
    b.matmul(rows.t, lm_head.t, false, nullptr, logits.t);
  }

  std::vector<float> run() {
    poison_intermediates();
    enqueue();
    return get(b, logits.t);
  }
};

// Restores the process-wide switches however the test ends.
struct PdlSwitch {
  bool saved = pdl_enabled();
  int prefetch = gemv_prefetch(), bulk = gemv_bulk_prefetch();
  ~PdlSwitch() {
    set_pdl(saved);
    gemv_set_prefetch(prefetch);
    gemv_set_bulk_prefetch(bulk);
  }
};

void check_chain(int64_t tokens, const std::vector<int32_t>& ctx) {
  PdlSwitch restore;
  Backends be;
  Decoder gpu(*be.gpu, tokens, DType::bf16), cpu(*be.cpu, tokens, DType::f32);
  gpu.fill(ctx);
  cpu.fill(ctx);
  const std::vector<float> ref = cpu.run();

  set_pdl(false);
  const std::vector<float> plain = gpu.run();
  const std::vector<float> plain_res = get(*be.gpu, gpu.res.t);
  EXPECT_TRUE(close(ref, plain, 0.1, "plain launches vs the CPU backend"));

  set_pdl(true);
  for (int rep = 0; rep < 3; ++rep) {
    const std::vector<float> chained = gpu.run();
    EXPECT_EQ(chained, plain) << "chained launches, eager, run " << rep;
    EXPECT_EQ(get(*be.gpu, gpu.res.t), plain_res) << "residual, chained eager, run " << rep;
  }

  // The decode graph as the runtime captures it, with chained launches inside.
  be.gpu->begin_capture();
  gpu.enqueue();
  Graph g = be.gpu->end_capture();
  for (int rep = 0; rep < 8; ++rep) {
    gpu.poison_intermediates();
    be.gpu->launch(g);
    EXPECT_EQ(get(*be.gpu, gpu.logits.t), plain) << "chained launches, graph replay " << rep;
    EXPECT_EQ(get(*be.gpu, gpu.res.t), plain_res) << "residual, graph replay " << rep;
  }

  // The GEMV's optional prefetches before its wait (per lane, one bulk per block)
  // must not change a value either.
  gemv_set_prefetch(8);
  EXPECT_EQ(gpu.run(), plain) << "chained, per-lane L2 prefetch";
  gemv_set_prefetch(0);
  gemv_set_bulk_prefetch(1 << 20);  // more than any block's slice here: clipped
  EXPECT_EQ(gpu.run(), plain) << "chained, bulk L2 prefetch";
}

TEST(CudaBackend, GraphChainedDecodeLayersMatchPlainLaunchesOneRow) {
  BANYAN_REQUIRE_GPU();
  check_chain(1, {200});
}

TEST(CudaBackend, GraphChainedDecodeLayersMatchPlainLaunchesThreeRows) {
  BANYAN_REQUIRE_GPU();
  check_chain(3, {37, 256, 129});
}

TEST(CudaBackend, PdlSwitchFollowsSetPdl) {
  PdlSwitch restore;
  set_pdl(false);
  EXPECT_FALSE(pdl_enabled());
  set_pdl(true);
  EXPECT_TRUE(pdl_enabled());
  gemv_set_bulk_prefetch(100);
  EXPECT_EQ(gemv_bulk_prefetch(), 96);  // rounded down to 16 bytes
  gemv_set_bulk_prefetch(-5);
  EXPECT_EQ(gemv_bulk_prefetch(), 0);
  gemv_set_prefetch(99);
  EXPECT_EQ(gemv_prefetch(), 32);
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
