// The matmul of the CUDA backend against the CPU backend: decode and prefill shapes,
// odd sizes, transposed weights, bias, accumulation, f32 output. The weight-streaming
// GEMM (gemm_stream.h) against a host reference in every config, with edge sizes,
// guard bytes past the output, run-to-run determinism and rows independent of M;
// the Gemm planner (cuBLASLt or streaming, tuned or not) against the same reference.
#include "kernels/cuda/cuda_test_util.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_stream.h"

namespace banyan::kernels::cuda::test {
namespace {

struct Shape {
  int64_t M, N, K;
  bool transposed, bias, accumulate, out_f32;
};

std::string describe(const Shape& s) {
  return std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
         (s.transposed ? " transposed" : "") + (s.bias ? " +bias" : "") +
         (s.accumulate ? " accumulate" : "") + (s.out_f32 ? " f32-out" : "");
}

TEST(CudaMatmul, MatchesCpuBackend) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  uint32_t seed = 99;
  const Shape shapes[] = {
      {1, 4096, 4096, false, false, false, false},   // decode, one token (GEMV)
      {2, 1024, 4096, false, false, true, false},    // GEMV, accumulate
      {3, 300, 72, false, true, false, false},       // GEMV, bias, odd N
      {4, 1000, 14336, false, false, false, true},   // GEMV, f32 out, long K
      {4, 64, 4104, false, false, false, false},     // GEMV tail loop (K not a multiple of 256)
      {16, 1024, 4096, false, false, false, false},  // a k/v projection, batch 16
      {64, 512, 1408, false, true, false, false},
      {200, 320, 256, false, false, true, false},    // accumulate into out
      {7, 96, 64, true, false, false, false},        // GPT-2 Conv1D layout
      {33, 136, 72, true, true, true, false},
      {5, 1000, 256, false, false, false, true},     // logits: f32 out
      {3, 24, 40, false, false, false, false},       // small K: narrow alignment
      {24, 1000, 4104, false, false, true, false},   // streaming GEMM: odd N and K
      {64, 1024, 4096, false, false, false, true},   // k/v at batch 64, f32 out
      {9, 130, 72, false, true, false, false},       // bias, N not a multiple of the tile
      {40, 96, 36, false, false, false, false},      // K % 8 != 0: cuBLASLt
  };
  for (const Shape& s : shapes) {
    auto x = random_bf16(s.M * s.K, ++seed), w = random_bf16(s.N * s.K, ++seed, -0.1f, 0.1f);
    auto bias = random_bf16(s.N, ++seed), init = random_bf16(s.M * s.N, ++seed);
    const int64_t w0 = s.transposed ? s.K : s.N, w1 = s.transposed ? s.N : s.K;
    Dev cx = make(*be.cpu, DType::f32, {s.M, s.K}), cw = make(*be.cpu, DType::f32, {w0, w1});
    Dev cb = make(*be.cpu, DType::f32, {s.N}), co = make(*be.cpu, DType::f32, {s.M, s.N});
    Dev gx = make(*be.gpu, DType::bf16, {s.M, s.K}), gw = make(*be.gpu, DType::bf16, {w0, w1});
    Dev gb = make(*be.gpu, DType::f32, {s.N});
    Dev go = make(*be.gpu, s.out_f32 ? DType::f32 : DType::bf16, {s.M, s.N});
    put(*be.cpu, cx.t, x), put(*be.cpu, cw.t, w), put(*be.cpu, cb.t, bias), put(*be.cpu, co.t, init);
    put(*be.gpu, gx.t, x), put(*be.gpu, gw.t, w), put(*be.gpu, gb.t, bias);
    if (s.accumulate) put(*be.gpu, go.t, init);
    else poison(*be.gpu, go.t);
    be.cpu->matmul(cx.t, cw.t, s.transposed, s.bias ? &cb.t : nullptr, co.t, s.accumulate);
    be.gpu->matmul(gx.t, gw.t, s.transposed, s.bias ? &gb.t : nullptr, go.t, s.accumulate);
    // f32 output: identical operands, only the summation order differs.
    EXPECT_TRUE(close(get(*be.cpu, co.t), get(*be.gpu, go.t), s.out_f32 ? 1e-4 : kBf16Rel,
                      "matmul " + describe(s)));
  }
}

// --- the weight-streaming GEMM ------------------------------------------------------

/// Device copy of bf16 values (given as f32, already bf16-exact).
DeviceMemory upload_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = cpu::f32_to_bf16(v[i]);
  DeviceMemory d(std::max<size_t>(h.size() * 2, 16));
  BANYAN_CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  return d;
}

std::vector<unsigned char> download(const DeviceMemory& d, size_t bytes) {
  std::vector<unsigned char> h(bytes);
  BANYAN_CUDA_CHECK(cudaDeviceSynchronize());
  BANYAN_CUDA_CHECK(cudaMemcpy(h.data(), d.get(), bytes, cudaMemcpyDeviceToHost));
  return h;
}

std::vector<float> as_floats(const std::vector<unsigned char>& h, bool f32, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (f32) {
      std::memcpy(&v[i], h.data() + 4 * i, 4);
    } else {
      uint16_t b;
      std::memcpy(&b, h.data() + 2 * i, 2);
      v[i] = cpu::bf16_to_f32(b);
    }
  }
  return v;
}

/// init [M, N] + x [M, K] · W^T in double (init null: no accumulation).
std::vector<double> host_matmul(const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>* init, int64_t M, int64_t N, int64_t K) {
  std::vector<double> out(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = init ? (*init)[m * N + n] : 0.0;
      const float* xr = &x[m * K];
      const float* wr = &w[n * K];
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(xr[k]) * wr[k];
      out[m * N + n] = s;
    }
  return out;
}

struct GemmCase {
  int64_t M, N, K;
  std::vector<float> x, w, init;
  DeviceMemory dx, dw;
  std::vector<float> ref, ref_acc;  // x W^T, and init + x W^T
  GemmCase(int64_t m, int64_t n, int64_t k, uint32_t seed) : M(m), N(n), K(k) {
    x = random_bf16(M * K, seed), w = random_bf16(N * K, seed + 1, -0.1f, 0.1f);
    init = random_bf16(M * N, seed + 2);
    dx = upload_bf16(x), dw = upload_bf16(w);
    auto r = host_matmul(x, w, nullptr, M, N, K), ra = host_matmul(x, w, &init, M, N, K);
    ref.assign(r.begin(), r.end()), ref_acc.assign(ra.begin(), ra.end());
  }
  std::string name() const {
    return std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
  }
};

constexpr size_t kGuard = 256;  // bytes past the output that must stay untouched

/// An output buffer of [M, N] plus guard bytes: poisoned (0xFF), or init then poison.
DeviceMemory make_out(const GemmCase& c, bool f32, bool accumulate) {
  const size_t bytes = static_cast<size_t>(c.M * c.N) * (f32 ? 4 : 2);
  std::vector<unsigned char> h(bytes + kGuard, 0xff);
  if (accumulate)
    for (size_t i = 0; i < c.init.size(); ++i) {
      if (f32) {
        std::memcpy(h.data() + 4 * i, &c.init[i], 4);
      } else {
        const uint16_t b = cpu::f32_to_bf16(c.init[i]);
        std::memcpy(h.data() + 2 * i, &b, 2);
      }
    }
  DeviceMemory d(h.size());
  BANYAN_CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size(), cudaMemcpyHostToDevice));
  return d;
}

::testing::AssertionResult guard_intact(const std::vector<unsigned char>& h, size_t bytes,
                                        const std::string& what) {
  for (size_t i = bytes; i < h.size(); ++i)
    if (h[i] != 0xff) return ::testing::AssertionFailure() << what << ": wrote past the output";
  return ::testing::AssertionSuccess();
}

int cc_major() {
  int dev = 0, major = 0;
  BANYAN_CUDA_CHECK(cudaGetDevice(&dev));
  BANYAN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

#define REQUIRE_CLUSTERS()                                                              \
  BANYAN_REQUIRE_GPU();                                                                 \
  if (cc_major() < 9) GTEST_SKIP() << "the streaming GEMM needs compute capability 9.0"

std::vector<StreamGemmConfig> every_config() {
  std::vector<StreamGemmConfig> v;
  for (int bn : {64, 128})
    for (int s : {1, 2, 4, 8})
      for (bool deep : {false, true}) v.push_back({bn, s, deep});
  return v;
}

TEST(CudaStreamGemm, MatchesHostReferenceInEveryConfig) {
  REQUIRE_CLUSTERS();
  const int64_t shapes[][3] = {
      {5, 1000, 4104},  // N and K not multiples of the tiles
      {8, 64, 64},     {9, 129, 200},   {16, 1024, 4096}, {17, 300, 72},
      {24, 7, 520},                     // fewer rows of W than one warp's tile
      {33, 136, 8},                     // one k-tile: most splits have nothing to do
      {48, 700, 1416}, {63, 257, 960},  {64, 1024, 4096},
      {1, 128, 64},    {4, 100, 136},
  };
  uint32_t seed = 7;
  for (const auto& sh : shapes) {
    GemmCase c(sh[0], sh[1], sh[2], seed += 3);
    for (const StreamGemmConfig& cfg : every_config())
      for (int variant = 0; variant < 2; ++variant) {
        const bool f32 = variant == 1, acc = variant == 1;  // bf16 (+)=, f32 +=
        const std::string what = "stream_gemm " + c.name() + " " + describe(cfg) +
                                  (f32 ? " f32 accumulate" : " bf16");
        DeviceMemory out = make_out(c, f32, acc);
        stream_gemm(c.dx.as<uint16_t>(), c.M, c.dw.as<uint16_t>(), out.get(), f32, c.N, c.K, acc,
                    cfg, nullptr);
        const size_t bytes = static_cast<size_t>(c.M * c.N) * (f32 ? 4 : 2);
        const auto h = download(out, out.size());
        EXPECT_TRUE(guard_intact(h, bytes, what));
        // f32: only the summation order differs; bf16: one rounding of the result.
        EXPECT_TRUE(close(acc ? c.ref_acc : c.ref, as_floats(h, f32, c.M * c.N),
                          f32 ? 1e-4 : 5e-3, what));
      }
  }
}

TEST(CudaStreamGemm, DeterministicAndRowsIndependentOfM) {
  REQUIRE_CLUSTERS();
  GemmCase c(64, 1000, 4104, 41);
  for (const StreamGemmConfig& cfg :
       {StreamGemmConfig{64, 8, false}, StreamGemmConfig{128, 4, true},
        StreamGemmConfig{128, 1, false}, StreamGemmConfig{64, 2, true}}) {
    const size_t row_bytes = static_cast<size_t>(c.N) * 4;
    auto run = [&](int64_t M) {
      DeviceMemory out = make_out(c, true, false);
      stream_gemm(c.dx.as<uint16_t>(), M, c.dw.as<uint16_t>(), out.get(), true, c.N, c.K, false,
                  cfg, nullptr);
      return download(out, M * row_bytes);
    };
    const auto full = run(64);
    EXPECT_EQ(full, run(64)) << describe(cfg) << ": two runs differ";
    for (int64_t M : {5, 8, 13, 17, 32, 40, 63}) {
      const auto part = run(M);
      EXPECT_EQ(0, std::memcmp(part.data(), full.data(), part.size()))
          << describe(cfg) << ": the first " << M << " rows differ from the same rows at M=64";
    }
  }
}

TEST(CudaStreamGemm, CandidatesAndDefaultsAreValid) {
  for (const auto& [N, K] : {std::pair<int64_t, int64_t>{1024, 4096}, {4096, 4096},
                            {14336, 4096}, {4096, 14336}, {128256, 4096}, {7, 8}}) {
    const auto cands = stream_gemm_candidates(N, K, 132);
    ASSERT_FALSE(cands.empty());
    const StreamGemmConfig d = stream_gemm_default(N, K, 132);
    EXPECT_TRUE(d.bn == 64 || d.bn == 128);
    EXPECT_TRUE(d.splits == 1 || d.splits == 2 || d.splits == 4 || d.splits == 8);
    for (const auto& c : cands) EXPECT_LE((N + c.bn - 1) / c.bn * c.splits, c.splits == 1 ? N : 264);
  }
  for (const auto& c : stream_gemm_candidates(1024, 4096, 132)) {
    EXPECT_FALSE(c.deep);
    EXPECT_GE(4 * (1024 + c.bn - 1) / c.bn * c.splits, 132) << describe(c) << ": grid too small";
  }
  EXPECT_EQ(stream_gemm_candidates(7, 8, 132), (std::vector<StreamGemmConfig>{{64, 1, false}}));
  // The k/v projection (N = 1024) splits K to fill the SMs; lm_head does not.
  EXPECT_GT(stream_gemm_default(1024, 4096, 132).splits, 1);
  EXPECT_EQ(stream_gemm_default(128256, 4096, 132).splits, 1);
  EXPECT_FALSE(stream_gemm_supported(65, 4096, nullptr, nullptr, 9));
  EXPECT_FALSE(stream_gemm_supported(16, 4100, nullptr, nullptr, 9));
  EXPECT_FALSE(stream_gemm_supported(16, 4096, nullptr, nullptr, 8));
  EXPECT_TRUE(stream_gemm_supported(16, 4096, nullptr, nullptr, 9));
}

/// Sets an environment variable for the scope, restoring the previous state.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

// Modes: 0 untuned (cuBLASLt), 1 tuned (either), 2 BANYAN_GEMM_STREAM=1 (streaming
// kernel wherever it applies).
TEST(CudaGemm, PlansMatchReferenceTunedOrNot) {
  REQUIRE_CLUSTERS();
  GemmCase kv(64, 1024, 4096, 51), odd(20, 1000, 4104, 61), big(96, 640, 512, 71);
  for (int mode = 0; mode < 3; ++mode) {
    const bool tune = mode == 1;
    ScopedEnv env("BANYAN_GEMM_STREAM", mode == 2 ? "1" : nullptr);
    Gemm gemm(size_t{32} << 20, tune);
    for (GemmCase* c : {&kv, &odd, &big}) {
      for (bool acc : {false, true}) {
        DeviceMemory out = make_out(*c, false, acc);
        gemm.run(c->dx.get(), c->dw.get(), false, out.get(), false, c->M, c->N, c->K, acc, nullptr);
        const std::string what = "Gemm " + c->name() + " mode " + std::to_string(mode) + " " +
                                 gemm.plan_name(c->M, c->N, c->K) + (acc ? " accumulate" : "");
        const auto h = download(out, out.size());
        EXPECT_TRUE(guard_intact(h, static_cast<size_t>(c->M * c->N) * 2, what));
        EXPECT_TRUE(close(acc ? c->ref_acc : c->ref, as_floats(h, false, c->M * c->N), 5e-3, what));
      }
      const std::string name = gemm.plan_name(c->M, c->N, c->K);
      if (c->M > kStreamGemmMaxRows || mode == 0) EXPECT_EQ(name, "cublaslt");
      else if (mode == 2) EXPECT_EQ(name.rfind("stream", 0), 0u) << name;
      else EXPECT_FALSE(name.empty());
    }
  }
}

// matmul_gated (the gated MLP's first half in one pass) against the matmul of the
// fused [gate; up] weight followed by act_mul, on the same GPU: equal up to the
// summation order (one bf16 rounding); refused (false) for the GEMM's row counts.
TEST(CudaMatmul, GatedEqualsMatmulThenActMul) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  uint32_t seed = 7;
  struct G { int64_t M, N, K; };
  for (const G s : {G{1, 14336, 4096}, G{1, 64, 32}, G{3, 1000, 72}, G{4, 512, 4104}, G{2, 40, 1408}}) {
    for (int act : {BANYAN_ACT_SILU, BANYAN_ACT_GELU_TANH}) {
      const std::string what = "gated " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" +
                               std::to_string(s.K) + " act " + std::to_string(act);
      auto x = random_bf16(s.M * s.K, ++seed), w = random_bf16(2 * s.N * s.K, ++seed, -0.1f, 0.1f);
      Dev gx = make(*be.gpu, DType::bf16, {s.M, s.K}), gw = make(*be.gpu, DType::bf16, {2 * s.N, s.K});
      Dev both = make(*be.gpu, DType::bf16, {s.M, 2 * s.N});
      Dev gate = make(*be.gpu, DType::bf16, {s.M, s.N}), up = make(*be.gpu, DType::bf16, {s.M, s.N});
      Dev ref = make(*be.gpu, DType::bf16, {s.M, s.N}), out = make(*be.gpu, DType::bf16, {s.M, s.N});
      put(*be.gpu, gx.t, x), put(*be.gpu, gw.t, w);
      be.gpu->matmul(gx.t, gw.t, false, nullptr, both.t);
      std::vector<Tensor> parts = {gate.t, up.t};
      be.gpu->split_columns(both.t, parts);
      be.gpu->act_mul(gate.t, up.t, act, ref.t);
      poison(*be.gpu, out.t);
      ASSERT_TRUE(be.gpu->matmul_gated(gx.t, gw.t, act, out.t)) << what;
      EXPECT_TRUE(close(get(*be.gpu, ref.t), get(*be.gpu, out.t), 2 * kBf16Rel, what));
    }
  }
  Dev x = make(*be.gpu, DType::bf16, {16, 64}), w = make(*be.gpu, DType::bf16, {256, 64});
  Dev o = make(*be.gpu, DType::bf16, {16, 128});
  EXPECT_FALSE(be.gpu->matmul_gated(x.t, w.t, BANYAN_ACT_SILU, o.t));  // 16 rows: GEMM's, not the GEMV's
}

TEST(CudaMatmul, RefusesWhatItCannotMultiply) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  Dev x = make(*be.gpu, DType::f32, {2, 8}), w = make(*be.gpu, DType::bf16, {4, 8});
  Dev o = make(*be.gpu, DType::bf16, {2, 4});
  try {
    be.gpu->matmul(x.t, w.t, false, nullptr, o.t);
    ADD_FAILURE() << "f32 activations were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul: x is F32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
