// The CUDA kernels of the quantized layouts (kernels/cuda/quant_gemm.cu) through
// QuantizedLinear on the CUDA backend, against x · W'^T computed in double from the
// plugins' dequantized weights: the fused GEMV (1 to 4 rows), the dequantize + GEMM
// path (more rows), bf16 and f32 outputs, with a bias. Skipped without a GPU (and in
// builds without the CUDA backend). The FP8 W8A8 path (the fp8 plugin's w8a8 option)
// against a host emulation of it (x quantized to e4m3 per tensor, the nearest of the
// e4m3 values found by enumeration) and, with fp8 rounding bounds, against the
// weight-only product; where W8A8 is refused (CPU backend, a weight that is not fp8).
#include "core/quant/quant_test_util.h"
#include "core/quant/quantized_linear.h"
#include "core/quant/quantizer.h"
#include "core/runtime/step_arena.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu/cpu_backend.h"

#ifdef BANYAN_WITH_CUDA
#include "kernels/cpu/convert.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/quant_gemm.h"
#endif

namespace banyan::core {
namespace {

QuantizedMatrix small_matrix(Quantizer& q, int64_t N, int64_t K) {
  std::vector<float> w(static_cast<size_t>(N * K));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.37f) * 0.05f;
  return q.quantize("model.layers.0.mlp.up_proj", Tensor(w.data(), DType::f32, {N, K}));
}

TEST(QuantW8A8, RefusedOnTheCpuBackendAndForWeightsThatAreNotFp8) {
  auto cpu = kernels::cpu::make_cpu_backend(CpuBackendOptions{});
  Quantizer fp8(test::plugins(), "fp8", "{\"w8a8\": true}");
  QuantizedMatrix m = small_matrix(fp8, 16, 32);
  QuantizedLinearOptions o;
  o.fp8_activations = true;
  try {
    QuantizedLinear lin(*cpu, "model.layers.0.mlp.up_proj", m, nullptr, nullptr, o);
    ADD_FAILURE() << "w8a8 accepted on the CPU backend";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::unsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  Quantizer int8(test::plugins(), "int8", "{}");
  QuantizedMatrix m8 = small_matrix(int8, 16, 32);
  try {
    QuantizedLinear lin(*cpu, "model.layers.0.mlp.up_proj", m8, nullptr, nullptr, o);
    ADD_FAILURE() << "w8a8 accepted for an int8 weight";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::invalid_argument) << e.what();
  }
  // Weight-only (the default) stays available on the CPU.
  EXPECT_NO_THROW(QuantizedLinear(*cpu, "model.layers.0.mlp.up_proj", m, nullptr));
  EXPECT_THROW(Quantizer(test::plugins(), "fp8", "{\"w8a8\": 1}"), Error);
}

#ifdef BANYAN_WITH_CUDA

struct Case {
  std::string name, method, options;
};

class QuantCuda : public ::testing::TestWithParam<Case> {};

TEST_P(QuantCuda, GemvAndGemmMatchTheDequantizedWeight) {
  std::string why;
  if (!kernels::cuda::cuda_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  const Case& c = GetParam();
  auto backend = kernels::cuda::make_cuda_backend(0);
  // 300 x 512: one pass of each lane, no split; 272 x 4096: the unrolled loops, rows
  // split over warps, int4 g128 in the tensor-core layout (rows a multiple of 16);
  // 262 x 1024: a last group of rows past N.
  for (const auto& [N, K] : {std::pair<int64_t, int64_t>{300, 512}, {272, 4096}, {262, 1024}}) {
  SCOPED_TRACE("N " + std::to_string(N) + " K " + std::to_string(K));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(N * K)), bias(static_cast<size_t>(N));
  for (auto& e : w) e = nd(rng);
  for (auto& e : bias) e = nd(rng);
  Quantizer q(test::plugins(), c.method, c.options);
  QuantizedMatrix m = q.quantize("model.layers.0.mlp.up_proj", Tensor(w.data(), DType::f32, {N, K}));
  const auto deq = q.dequantize(m);
  DeviceBuffer bias_dev(*backend, bias.size() * 4);
  backend->upload(bias_dev.data(), bias.data(), bias.size() * 4);
  const Tensor bias_t = bias_dev.view(DType::f32, {N});
  StepArena arena(*backend);
  StepLayout layout;
  ForwardBatch batch;
  const LinearContext ctx{*backend, arena, layout, batch, Tensor(), false};
  // The default kernels for every row count; the batch-1 variants for one row.
  // Variant 4 also sized for one SM: each lane then walks more stages than its ring
  // holds (the ring wraps), which the device's SM count leaves untested at these shapes.
  for (const auto& [variant, sms] : {std::pair<int, int>{-1, 0}, {0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}, {4, 1}, {5, 0}, {6, 0}, {7, 0}, {8, 0}, {8, 1}}) {
  SCOPED_TRACE("variant " + std::to_string(variant) + " sms " + std::to_string(sms));
  QuantizedLinearOptions lo;
  lo.gemv_variant = variant;
  lo.gemv_num_sms = sms;
  QuantizedLinear lin(*backend, "model.layers.0.mlp.up_proj", m, &bias_t, nullptr, lo);
  const int64_t chunk_rows = quant_gemv_chunk_rows();
  // Default kernels: 5 and 17 rows also as chunks of the GEMV (set_quant_gemv_chunk_rows).
  for (int64_t Mc : variant < 0 ? std::vector<int64_t>{1, 2, 3, 4, 5, 17, 1005, 1017} : std::vector<int64_t>{1}) {
    const int64_t M = Mc % 1000;
    set_quant_gemv_chunk_rows(Mc >= 1000 ? 32 : 0);
    for (bool f32_out : {false, true}) {
      SCOPED_TRACE("M " + std::to_string(M) + (f32_out ? " f32" : " bf16") + (Mc >= 1000 ? ", GEMV chunks" : ""));
      std::vector<uint16_t> xb(static_cast<size_t>(M * K));
      for (auto& e : xb) e = kernels::cpu::f32_to_bf16(nd(rng) * 20.0f);
      DeviceBuffer xd(*backend, xb.size() * 2), od(*backend, static_cast<size_t>(M * N) * 4);
      backend->upload(xd.data(), xb.data(), xb.size() * 2);
      const Tensor x = xd.view(DType::bf16, {M, K});
      Tensor out = od.view(f32_out ? DType::f32 : DType::bf16, {M, N});
      lin.forward(ctx, x, out);
      std::vector<float> got(static_cast<size_t>(M * N));
      if (f32_out) {
        backend->download(got.data(), od.data(), got.size() * 4);
      } else {
        std::vector<uint16_t> h(got.size());
        backend->download(h.data(), od.data(), h.size() * 2);
        for (size_t i = 0; i < h.size(); ++i) got[i] = kernels::cpu::bf16_to_f32(h[i]);
      }
      for (int64_t i = 0; i < M; ++i)
        for (int64_t n = 0; n < N; ++n) {
          double ref = bias[n], mag = std::fabs(ref);
          for (int64_t k = 0; k < K; ++k) {
            const double p = double(kernels::cpu::bf16_to_f32(xb[i * K + k])) * deq[n * K + k];
            ref += p;
            mag += std::fabs(p);
          }
          // bf16 out: 2^-8 relative; the dequantize + GEMM path rounds W' to bf16.
          const double tol = (f32_out && M <= 4 ? 1e-5 : 8e-3) * (std::fabs(ref) + mag) + 1e-6;
          ASSERT_NEAR(got[i * N + n], ref, tol) << "row " << i << ", feature " << n;
        }
    }
  }
  set_quant_gemv_chunk_rows(chunk_rows);
  }
  }
}

// e4m3fn(v) rounded to the nearest finite value (ties to an even code), saturated
// at 448: the nearest of the 127 non-negative codes, found by enumeration.
float e4m3_rne_sat(float v) {
  const float a = std::fabs(v);
  float best = 0.0f;
  int best_code = 0;
  for (int c = 0; c < 127; ++c) {
    const int e = c >> 3, mt = c & 7;
    const float val = e == 0 ? std::ldexp(mt / 8.0f, -6) : std::ldexp(1.0f + mt / 8.0f, e - 7);
    const float d = std::fabs(val - a), bd = std::fabs(best - a);
    if (d < bd || (d == bd && (c & 1) == 0 && (best_code & 1) == 1)) {
      best = val;
      best_code = c;
    }
  }
  return v < 0 ? -best : best;
}

// The tensor-core int4 layout, element by element, as quant_gemm.h documents it
// (host code: runs without a GPU).
TEST(QuantCudaLayout, Int4RepackPutsEachCodeInItsFragmentSlot) {
  const int64_t N = 48, K = 192;
  std::vector<uint8_t> src(static_cast<size_t>(N * K / 2)), dst(src.size(), 0xee);
  std::mt19937 rng(9);
  for (auto& b : src) b = static_cast<uint8_t>(rng() & 0xffu);
  ASSERT_TRUE(kernels::cuda::quant_int4_mma_eligible(N, K, 64));
  EXPECT_FALSE(kernels::cuda::quant_int4_mma_eligible(40, K, 64));
  EXPECT_FALSE(kernels::cuda::quant_int4_mma_eligible(N, K, 32));
  EXPECT_FALSE(kernels::cuda::quant_int4_mma_eligible(N, 160, 64));
  kernels::cuda::quant_int4_repack_mma(src.data(), N, K, dst.data());
  const int64_t chunks = K / 64;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t b = src[n * (K / 2) + k / 2];
      const unsigned q = (k & 1) ? (b >> 4) : (b & 0xfu);
      const int64_t r = n % 16, c = k % 16, j = (k % 64) / 16;
      const int64_t lane = (r % 8) * 4 + (c % 8) / 2;
      const int64_t word = (((n / 16) * chunks + k / 64) * 32 + lane) * 16 + 4 * j;
      const int shift = 4 * static_cast<int>((r >= 8) + 2 * (c >= 8) + 4 * (c & 1));
      const uint32_t wd = uint32_t(dst[word]) | uint32_t(dst[word + 1]) << 8 | uint32_t(dst[word + 2]) << 16 |
                          uint32_t(dst[word + 3]) << 24;
      ASSERT_EQ((wd >> shift) & 0xfu, q) << "n " << n << " k " << k;
    }
}

class QuantW8A8Cuda : public ::testing::TestWithParam<bool> {};

TEST_P(QuantW8A8Cuda, MatchesTheHostEmulationAndTheWeightOnlyProductWithinFp8Bounds) {
  std::string why;
  if (!kernels::cuda::cuda_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  if (!kernels::cuda::Fp8Gemm::supported(0, &why)) GTEST_SKIP() << why;
  const bool per_channel = GetParam();
  auto backend = kernels::cuda::make_cuda_backend(0);
  const int64_t N = 320, K = 512;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(N * K)), bias(static_cast<size_t>(N));
  for (auto& e : w) e = nd(rng);
  for (auto& e : bias) e = nd(rng);
  const std::string opts = std::string("{\"w8a8\": true, \"per_channel\": ") + (per_channel ? "true}" : "false}");
  Quantizer q(test::plugins(), "fp8", opts);
  QuantizedMatrix m = q.quantize("model.layers.0.mlp.up_proj", Tensor(w.data(), DType::f32, {N, K}));
  const auto deq = q.dequantize(m);
  DeviceBuffer bias_dev(*backend, bias.size() * 4);
  backend->upload(bias_dev.data(), bias.data(), bias.size() * 4);
  const Tensor bias_t = bias_dev.view(DType::f32, {N});
  QuantizedLinearOptions o;
  o.fp8_activations = true;
  QuantizedLinear lin(*backend, "model.layers.0.mlp.up_proj", m, &bias_t, nullptr, o);
  StepArena arena(*backend);
  StepLayout layout;
  ForwardBatch batch;
  const LinearContext ctx{*backend, arena, layout, batch, Tensor(), false};
  for (int64_t M : {1, 5, 64}) {
    for (bool f32_out : {false, true}) {
      SCOPED_TRACE("M " + std::to_string(M) + (f32_out ? " f32" : " bf16"));
      std::vector<uint16_t> xb(static_cast<size_t>(M * K));
      for (auto& e : xb) e = kernels::cpu::f32_to_bf16(nd(rng) * 20.0f);
      xb[3] = kernels::cpu::f32_to_bf16(-9.5f);  // the tensor's absmax, so s_x is known
      float amax = 0.0f;
      for (auto e : xb) amax = std::max(amax, std::fabs(kernels::cpu::bf16_to_f32(e)));
      const float sx = amax / 448.0f;
      DeviceBuffer xd(*backend, xb.size() * 2), od(*backend, static_cast<size_t>(M * N) * 4);
      backend->upload(xd.data(), xb.data(), xb.size() * 2);
      const Tensor x = xd.view(DType::bf16, {M, K});
      Tensor out = od.view(f32_out ? DType::f32 : DType::bf16, {M, N});
      lin.forward(ctx, x, out);
      std::vector<float> got(static_cast<size_t>(M * N));
      if (f32_out) {
        backend->download(got.data(), od.data(), got.size() * 4);
      } else {
        std::vector<uint16_t> h(got.size());
        backend->download(h.data(), od.data(), h.size() * 2);
        for (size_t i = 0; i < h.size(); ++i) got[i] = kernels::cpu::bf16_to_f32(h[i]);
      }
      double max_rel_vs_weight_only = 0.0;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t n = 0; n < N; ++n) {
          double emu = bias[n], wo = bias[n], mag = std::fabs(emu), wsum = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const float xv = kernels::cpu::bf16_to_f32(xb[i * K + k]);
            const double wv = deq[n * K + k];
            emu += double(e4m3_rne_sat(xv / sx)) * sx * wv;
            wo += double(xv) * wv;
            mag += std::fabs(double(xv) * wv);
            wsum += std::fabs(wv);
          }
          const double g = got[i * N + n], out_round = f32_out ? 0.0 : std::ldexp(std::fabs(emu), -8);
          // The emulation: f32 accumulation (FP8 tensor cores add partial sums in
          // reduced precision first) and the output's rounding.
          ASSERT_NEAR(g, emu, 2e-3 * mag + out_round + 1e-6) << "row " << i << ", feature " << n;
          // Weight-only: e4m3 keeps 3 mantissa bits (relative error <= 2^-4), and values
          // below 2^-6 * s_x are subnormal (absolute error <= 2^-10 * s_x).
          const double bound = std::ldexp(mag, -4) + std::ldexp(double(sx), -10) * wsum + 2e-3 * mag + out_round;
          ASSERT_NEAR(g, wo, bound) << "row " << i << ", feature " << n;
          max_rel_vs_weight_only = std::max(max_rel_vs_weight_only, std::fabs(g - wo) / mag);
        }
      // Not the weight-only product: the activations were quantized.
      EXPECT_GT(max_rel_vs_weight_only, 1e-4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Scales, QuantW8A8Cuda, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "per_channel" : "per_tensor"; });

INSTANTIATE_TEST_SUITE_P(Layouts, QuantCuda,
                         ::testing::Values(Case{"int8", "int8", "{}"},
                                           Case{"int4", "int4", "{\"group_size\": 128}"},
                                           Case{"int4_g32", "int4", "{\"group_size\": 32}"},
                                           Case{"nf4", "nf4", "{}"},
                                           Case{"nf4_double", "nf4", "{\"double_quant\": true}"},
                                           Case{"fp8", "fp8", "{}"},
                                           Case{"fp8_channel", "fp8", "{\"per_channel\": true}"}),
                         [](const auto& info) { return info.param.name; });

#else

TEST(QuantCuda, NotBuilt) { GTEST_SKIP() << "this build has no CUDA backend"; }

#endif

}  // namespace
}  // namespace banyan::core
