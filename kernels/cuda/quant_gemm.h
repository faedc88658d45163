// Products of quantized weights on the GPU (the layouts of abi.h, BanyanQuantLayout):
// a fused GEMV for decode (a few rows of x: weights unpacked in registers, read once
// with 16-byte streaming loads) and a dequantization into bf16 for the GEMM of larger
// batches. Activations bf16, accumulation f32. Used by core/quant's QuantizedLinear.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace banyan::kernels::cuda {

/// A quantized weight's tensors in device memory (see BanyanQuantizedWeight).
struct QuantWeightDev {
  int32_t layout = 0;  ///< BanyanQuantLayout
  int64_t rows = 0, cols = 0;
  int32_t group_size = 0, group_size2 = 0;
  float offset = 0;
  bool per_row_scale = true;
  const void* qweight = nullptr;
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const float* code = nullptr;
  const float* scales2 = nullptr;
  const float* code2 = nullptr;
};

/// Rows of x up to which quant_gemv() is used.
constexpr int64_t kQuantGemvMaxRows = 4;
/// Whether quant_gemv() takes this weight and M: M <= kQuantGemvMaxRows, K a multiple
/// of 32 (int4 / lut4: groups or blocks a multiple of 32 too), 16-byte aligned x.
bool quant_gemv_supported(const QuantWeightDev& w, int64_t M, const void* x);
/// out [M, N] (+)= x [M, K] · W^T (+ bias [N], f32); out bf16 or f32.
void quant_gemv(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
                const float* bias, bool accumulate, int num_sms, cudaStream_t stream);
/// dst [N, K] (bf16) = W dequantized.
void quant_dequantize_bf16(const QuantWeightDev& w, uint16_t* dst, cudaStream_t stream);

}  // namespace banyan::kernels::cuda
