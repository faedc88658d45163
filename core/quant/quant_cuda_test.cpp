// The CUDA kernels of the quantized layouts (kernels/cuda/quant_gemm.cu) through
// QuantizedLinear on the CUDA backend, against x · W'^T computed in double from the
// plugins' dequantized weights: the fused GEMV (1 to 4 rows), the dequantize + GEMM
// path (more rows), bf16 and f32 outputs, with a bias. Skipped without a GPU (and in
// builds without the CUDA backend).
#include "core/quant/quant_test_util.h"
#include "core/quant/quantized_linear.h"
#include "core/quant/quantizer.h"
#include "core/runtime/step_arena.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#ifdef BANYAN_WITH_CUDA
#include "kernels/cpu/convert.h"
#include "kernels/cuda/cuda_backend.h"
#endif

namespace banyan::core {
namespace {

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
  const int64_t N = 300, K = 512;
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
  QuantizedLinear lin(*backend, "model.layers.0.mlp.up_proj", m, &bias_t);
  StepArena arena(*backend);
  StepLayout layout;
  ForwardBatch batch;
  const LinearContext ctx{*backend, arena, layout, batch, Tensor(), false};
  for (int64_t M : {1, 2, 3, 4, 5, 17}) {
    for (bool f32_out : {false, true}) {
      SCOPED_TRACE("M " + std::to_string(M) + (f32_out ? " f32" : " bf16"));
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
}

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
