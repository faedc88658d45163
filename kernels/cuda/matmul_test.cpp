// The cuBLASLt matmul of the CUDA backend against the CPU backend: decode and
// prefill shapes, odd sizes, transposed weights, bias, accumulation, f32 output.
#include "kernels/cuda/cuda_test_util.h"

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
