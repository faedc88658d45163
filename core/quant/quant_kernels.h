// The products of quantized weights, per layout of abi.h (BanyanQuantLayout):
//   out [M, N] (+)= x [M, K] · W^T (+ bias [N]), W [N, K] dequantized on the fly.
// The CPU kernels (quant_cpu_kernels.cpp) take f32 activations; the CUDA ones
// (kernels/cuda/quant_gemm.cu) bf16. Inputs are trusted: QuantizedLinear validated
// the weight (validate()) and the registry the shapes.
#pragma once

#include <cstdint>

namespace banyan::core {

/// A quantized weight's tensors in device memory (see BanyanQuantizedWeight).
struct QuantView {
  int32_t layout = 0;         ///< BanyanQuantLayout
  int64_t rows = 0, cols = 0; ///< N, K
  int32_t group_size = 0, group_size2 = 0;
  float offset = 0;
  bool per_row_scale = true;  ///< FP8: scales [rows] (else one scale)
  const void* qweight = nullptr;
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const float* code = nullptr;
  const float* scales2 = nullptr;
  const float* code2 = nullptr;
};

/// out [M, N] (+)= x [M, K] · W^T (+ bias). CPU: f32, OpenMP threads.
void quant_matmul_cpu(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
                      bool accumulate);

/// The fused decode kernels (AVX-512) for M up to the small-M threshold; false when
/// the build or the shape does not suit them (quant_matmul_cpu then unpacks rows).
bool quant_decode_cpu(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
                      bool accumulate);

/// Row n of W dequantized into dst [K] (f32). The reference the kernels agree with.
void dequantize_row_cpu(const QuantView& w, int64_t n, float* dst);

}  // namespace banyan::core
