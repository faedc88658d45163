// Every element-wise, normalization and rotary op of the CUDA backend against the
// CPU backend on fresh random inputs (bf16-exact, so both see the same values).
#include "kernels/cuda/cuda_test_util.h"

#include <banyan/abi.h>

#include <numeric>

namespace banyan::kernels::cuda::test {
namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    BANYAN_REQUIRE_GPU();
    be = std::make_unique<Backends>();
  }
  std::unique_ptr<Backends> be;
  uint32_t seed = 1234;
};

TEST_F(CudaOps, RmsNormWithAndWithoutResidual) {
  for (int64_t n : {4096, 128, 100, 5120, 8200}) {  // 100: unvectorized; 8200: not in registers
    for (bool with_residual : {false, true}) {
      for (float offset : {0.0f, 1.0f}) {
        const int64_t rows = 7;
        auto x = random_bf16(rows * n, ++seed, -2, 2), r = random_bf16(rows * n, ++seed, -2, 2);
        auto w = random_bf16(n, ++seed, 0.5f, 1.5f);
        Dev cx = make(*be->cpu, DType::f32, {rows, n}), cr = make(*be->cpu, DType::f32, {rows, n});
        Dev co = make(*be->cpu, DType::f32, {rows, n}), cw = make(*be->cpu, DType::f32, {n});
        Dev gx = make(*be->gpu, DType::bf16, {rows, n}), gr = make(*be->gpu, DType::bf16, {rows, n});
        Dev go = make(*be->gpu, DType::bf16, {rows, n}), gw = make(*be->gpu, DType::f32, {n});
        put(*be->cpu, cx.t, x), put(*be->cpu, cr.t, r), put(*be->cpu, cw.t, w);
        put(*be->gpu, gx.t, x), put(*be->gpu, gr.t, r), put(*be->gpu, gw.t, w);
        poison(*be->gpu, go.t);
        be->cpu->rms_norm(cx.t, with_residual ? &cr.t : nullptr, cw.t, 1e-5f, offset, co.t);
        be->gpu->rms_norm(gx.t, with_residual ? &gr.t : nullptr, gw.t, 1e-5f, offset, go.t);
        const std::string what = "rms_norm n=" + std::to_string(n) +
                                 (with_residual ? " +residual" : "") +
                                 " offset=" + std::to_string(offset);
        EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), kBf16Rel, what));
        if (with_residual) {
          EXPECT_TRUE(close(get(*be->cpu, cr.t), get(*be->gpu, gr.t), 4e-3, what + " residual"));
        }
      }
    }
  }
}

TEST_F(CudaOps, LayerNormWithBiasAndResidual) {
  for (int64_t n : {768, 50}) {
    const int64_t rows = 5;
    auto x = random_bf16(rows * n, ++seed, -2, 2), r = random_bf16(rows * n, ++seed, -2, 2);
    auto w = random_bf16(n, ++seed, 0.5f, 1.5f), b = random_bf16(n, ++seed);
    Dev cx = make(*be->cpu, DType::f32, {rows, n}), cr = make(*be->cpu, DType::f32, {rows, n});
    Dev co = make(*be->cpu, DType::f32, {rows, n}), cw = make(*be->cpu, DType::f32, {n});
    Dev cb = make(*be->cpu, DType::f32, {n});
    Dev gx = make(*be->gpu, DType::bf16, {rows, n}), gr = make(*be->gpu, DType::bf16, {rows, n});
    Dev go = make(*be->gpu, DType::bf16, {rows, n}), gw = make(*be->gpu, DType::f32, {n});
    Dev gb = make(*be->gpu, DType::f32, {n});
    put(*be->cpu, cx.t, x), put(*be->cpu, cr.t, r), put(*be->cpu, cw.t, w), put(*be->cpu, cb.t, b);
    put(*be->gpu, gx.t, x), put(*be->gpu, gr.t, r), put(*be->gpu, gw.t, w), put(*be->gpu, gb.t, b);
    poison(*be->gpu, go.t);
    be->cpu->layer_norm(cx.t, &cr.t, cw.t, &cb.t, 1e-5f, co.t);
    be->gpu->layer_norm(gx.t, &gr.t, gw.t, &gb.t, 1e-5f, go.t);
    EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), kBf16Rel, "layer_norm"));
    EXPECT_TRUE(close(get(*be->cpu, cr.t), get(*be->gpu, gr.t), 4e-3, "layer_norm residual"));
  }
}

TEST_F(CudaOps, EmbeddingAndGatherRowsAreExact) {
  const int64_t V = 300, H = 136, T = 9;
  auto table = random_bf16(V * H, ++seed);
  std::vector<int32_t> ids = {5, 299, 0, 17, 17, 42, 1, 250, 3};
  Dev ct = make(*be->cpu, DType::f32, {V, H}), gt = make(*be->gpu, DType::bf16, {V, H});
  Dev cid = make(*be->cpu, DType::i32, {T}), gid = make(*be->gpu, DType::i32, {T});
  Dev co = make(*be->cpu, DType::f32, {T, H}), go = make(*be->gpu, DType::bf16, {T, H});
  put(*be->cpu, ct.t, table), put(*be->gpu, gt.t, table);
  put_i32(*be->cpu, cid.t, ids), put_i32(*be->gpu, gid.t, ids);
  poison(*be->gpu, go.t);
  be->cpu->embedding(ct.t, cid.t, co.t);
  be->gpu->embedding(gt.t, gid.t, go.t);
  EXPECT_EQ(get(*be->cpu, co.t), get(*be->gpu, go.t));

  std::vector<int32_t> rows = {8, 0, 3};
  Dev crow = make(*be->cpu, DType::i32, {3}), grow = make(*be->gpu, DType::i32, {3});
  Dev cg = make(*be->cpu, DType::f32, {3, H}), gg = make(*be->gpu, DType::bf16, {3, H});
  put_i32(*be->cpu, crow.t, rows), put_i32(*be->gpu, grow.t, rows);
  poison(*be->gpu, gg.t);
  be->cpu->gather_rows(co.t, crow.t, cg.t);
  be->gpu->gather_rows(go.t, grow.t, gg.t);
  EXPECT_EQ(get(*be->cpu, cg.t), get(*be->gpu, gg.t));
}

// The split of a fused product's rows (LinearRegistry::forward_n): vectorized when
// every part is a multiple of 8 bf16 columns, element-wise otherwise; exact.
TEST_F(CudaOps, SplitColumnsIsExact) {
  for (const std::vector<int64_t>& parts : std::vector<std::vector<int64_t>>{
           {4096, 1024, 1024}, {64, 32, 32}, {40, 13, 7}, {14336, 14336}}) {
    for (int64_t T : {1, 3, 64}) {
      const int64_t N = std::accumulate(parts.begin(), parts.end(), int64_t{0});
      auto x = random_bf16(T * N, ++seed);
      Dev cx = make(*be->cpu, DType::f32, {T, N}), gx = make(*be->gpu, DType::bf16, {T, N});
      put(*be->cpu, cx.t, x), put(*be->gpu, gx.t, x);
      std::vector<Dev> co, go;
      std::vector<Tensor> couts, gouts;
      for (int64_t n : parts) {
        co.push_back(make(*be->cpu, DType::f32, {T, n}));
        go.push_back(make(*be->gpu, DType::bf16, {T, n}));
        poison(*be->gpu, go.back().t);
      }
      for (size_t p = 0; p < parts.size(); ++p) couts.push_back(co[p].t), gouts.push_back(go[p].t);
      be->cpu->split_columns(cx.t, couts);
      be->gpu->split_columns(gx.t, gouts);
      int64_t begin = 0;
      for (size_t p = 0; p < parts.size(); ++p) {
        const auto c = get(*be->cpu, co[p].t), g = get(*be->gpu, go[p].t);
        for (int64_t r = 0; r < T; ++r)  // against x itself, then CPU == GPU
          for (int64_t j = 0; j < parts[p]; ++j)
            ASSERT_EQ(c[r * parts[p] + j], x[r * N + begin + j]) << "part " << p << " row " << r;
        EXPECT_EQ(c, g) << "part " << p << " T=" << T << " N=" << N;
        begin += parts[p];
      }
    }
  }
}

// act_mul_halves (a fused gate/up product's halves read in place) against the CPU
// backend; the 16-byte path (N % 8 == 0) and the scalar one.
TEST_F(CudaOps, ActMulHalves) {
  for (const auto& [T, N] : {std::pair<int64_t, int64_t>{64, 1024}, {3, 1001}, {1, 8}}) {
    auto gu = random_bf16(T * 2 * N, ++seed, -4, 4);
    Dev c = make(*be->cpu, DType::f32, {T, 2 * N}), co = make(*be->cpu, DType::f32, {T, N});
    Dev g = make(*be->gpu, DType::bf16, {T, 2 * N}), go = make(*be->gpu, DType::bf16, {T, N});
    put(*be->cpu, c.t, gu), put(*be->gpu, g.t, gu);
    for (int act : {BANYAN_ACT_SILU, BANYAN_ACT_GELU_TANH}) {
      const std::string tag = " act=" + std::to_string(act) + " " + std::to_string(T) + "x" + std::to_string(N);
      poison(*be->gpu, go.t);
      be->cpu->act_mul_halves(c.t, act, co.t);
      be->gpu->act_mul_halves(g.t, act, go.t);
      EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), kBf16Rel, "act_mul_halves" + tag));
    }
  }
}

TEST_F(CudaOps, ActivationsAddAndActMul) {
  for (int64_t n : {4096 * 3, 1001}) {
    auto a = random_bf16(n, ++seed, -4, 4), b = random_bf16(n, ++seed, -4, 4);
    Dev ca = make(*be->cpu, DType::f32, {n}), cb = make(*be->cpu, DType::f32, {n});
    Dev co = make(*be->cpu, DType::f32, {n});
    Dev ga = make(*be->gpu, DType::bf16, {n}), gb = make(*be->gpu, DType::bf16, {n});
    Dev go = make(*be->gpu, DType::bf16, {n});
    put(*be->cpu, ca.t, a), put(*be->cpu, cb.t, b), put(*be->gpu, ga.t, a), put(*be->gpu, gb.t, b);
    for (int act : {BANYAN_ACT_SILU, BANYAN_ACT_GELU, BANYAN_ACT_GELU_TANH, BANYAN_ACT_RELU}) {
      const std::string tag = " act=" + std::to_string(act) + " n=" + std::to_string(n);
      poison(*be->gpu, go.t);
      be->cpu->act_mul(ca.t, cb.t, act, co.t);
      be->gpu->act_mul(ga.t, gb.t, act, go.t);
      EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), kBf16Rel, "act_mul" + tag));
      poison(*be->gpu, go.t);
      be->cpu->activation(ca.t, act, co.t);
      be->gpu->activation(ga.t, act, go.t);
      EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), kBf16Rel, "activation" + tag));
    }
    poison(*be->gpu, go.t);
    be->cpu->add(ca.t, cb.t, co.t);
    be->gpu->add(ga.t, gb.t, go.t);
    EXPECT_TRUE(close(get(*be->cpu, co.t), get(*be->gpu, go.t), 4e-3, "add"));
  }
}

TEST_F(CudaOps, RotaryNeoxInterleavedPartialAndPerSequenceRows) {
  struct Case {
    int32_t head_dim, rotary_dim;
    bool neox, per_row;
  };
  for (const Case c : {Case{128, 128, true, false}, Case{64, 64, false, false},
                       Case{80, 40, true, false}, Case{32, 32, true, true}}) {
    const int64_t T = 11, Hq = 4, Hk = 2, half = c.rotary_dim / 2, R = c.per_row ? 3 : 1;
    auto q = random_bf16(T * Hq * c.head_dim, ++seed), k = random_bf16(T * Hk * c.head_dim, ++seed);
    std::vector<float> freq(R * half);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = 0; i < half; ++i)
        freq[r * half + i] = std::pow(10000.0f * (r + 1), -2.0f * i / c.rotary_dim);
    std::vector<int32_t> pos(T), rows(T);
    for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t * 97 % 2000), rows[t] = t % R;
    core::RotaryParams p[2];
    std::vector<Dev> keep;
    core::Backend* bes[2] = {be->cpu.get(), be->gpu.get()};
    Dev qs[2], ks[2];
    for (int i = 0; i < 2; ++i) {
      const DType act = i ? DType::bf16 : DType::f32;
      qs[i] = make(*bes[i], act, {T, Hq * c.head_dim});
      ks[i] = make(*bes[i], act, {T, Hk * c.head_dim});
      put(*bes[i], qs[i].t, q), put(*bes[i], ks[i].t, k);
      keep.push_back(make(*bes[i], DType::i32, {T}));
      put_i32(*bes[i], keep.back().t, pos);
      p[i].positions = keep.back().t;
      keep.push_back(make(*bes[i], DType::f32, {R, half}));
      put(*bes[i], keep.back().t, freq);
      p[i].inv_freq = keep.back().t;
      if (c.per_row) {
        keep.push_back(make(*bes[i], DType::i32, {T}));
        put_i32(*bes[i], keep.back().t, rows);
        p[i].freq_row = keep.back().t;
      }
      p[i].attention_scaling = 1.0f;
      p[i].head_dim = c.head_dim;
      p[i].rotary_dim = c.rotary_dim;
      p[i].neox = c.neox;
      bes[i]->rotary(qs[i].t, ks[i].t, p[i]);
    }
    const std::string tag = " d=" + std::to_string(c.head_dim) + " rot=" + std::to_string(c.rotary_dim);
    EXPECT_TRUE(close(get(*bes[0], qs[0].t), get(*bes[1], qs[1].t), kBf16Rel, "rotary q" + tag));
    EXPECT_TRUE(close(get(*bes[0], ks[0].t), get(*bes[1], ks[1].t), kBf16Rel, "rotary k" + tag));
  }
}

TEST_F(CudaOps, LoadWeightConvertsCheckpointDtypes) {
  const int64_t n = 1000;
  auto v = random_bf16(n, ++seed, -3, 3);
  std::vector<uint16_t> as_bf16(n), as_f16(n);
  for (int64_t i = 0; i < n; ++i) as_bf16[i] = cpu::f32_to_bf16(v[i]);
  for (int64_t i = 0; i < n; ++i) {  // f16 holds these bf16 values exactly (range +-3, 8 bits)
    _Float16 h = static_cast<_Float16>(v[i]);
    std::memcpy(&as_f16[i], &h, 2);
  }
  EXPECT_EQ(be->gpu->weight_dtype(DType::f32, 2), DType::bf16);
  EXPECT_EQ(be->gpu->weight_dtype(DType::bf16, 1), DType::f32);
  EXPECT_EQ(be->gpu->weight_dtype(DType::i8, 2), DType::i8);
  struct Src {
    const void* p;
    DType t;
  };
  for (Src s : {Src{v.data(), DType::f32}, Src{as_bf16.data(), DType::bf16},
                Src{as_f16.data(), DType::f16}}) {
    for (DType dst : {DType::bf16, DType::f32}) {
      Dev d = make(*be->gpu, dst, {n});
      poison(*be->gpu, d.t);
      be->gpu->load_weight(s.p, s.t, d.t);
      EXPECT_EQ(get(*be->gpu, d.t), v) << dtype_name(s.t) << " -> " << dtype_name(dst);
    }
  }
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
