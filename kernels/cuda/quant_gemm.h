// Products of quantized weights on the GPU (the layouts of abi.h, BanyanQuantLayout):
// a fused GEMV for decode (a few rows of x: weights unpacked in registers, read once
// with 16-byte streaming loads) and a dequantization into bf16 for the GEMM of larger
// batches. Activations bf16, accumulation f32. Used by core/quant's QuantizedLinear.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

namespace banyan::kernels::cuda {

/// A quantized weight's tensors in device memory (see BanyanQuantizedWeight).
struct QuantWeightDev {
  int32_t layout = 0;  ///< BanyanQuantLayout
  int64_t rows = 0, cols = 0;
  int32_t group_size = 0, group_size2 = 0;
  float offset = 0;
  bool per_row_scale = true;
  /// int4 only: qweight holds quant_int4_repack_mma()'s layout (tensor-core GEMV).
  bool int4_mma = false;
  /// The batch-1 GEMV variant (benchmarks and tests; -1: the layout's default): 0
  /// batches of loads, 1 and 2 software-pipelined stages, 3 (int4 on tensor cores
  /// only) batches of 8 chunks, 4 a ring of cp.async stages in shared memory per
  /// lane over one resident wave, 5 variant 0 over 4's grid, 6 variant 4 over 0's
  /// grid, 7 variant 0 for three blocks per SM, 8 (int4 on tensor cores only) 4 with
  /// only the weights in the ring (quant_gemm.cu). lut4 with double quantization takes variant 0 for 4 and 6
  /// (QuantizedLinear gives the CUDA side f32 absmax instead).
  int32_t variant = -1;
  const void* qweight = nullptr;
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const float* code = nullptr;
  const float* scales2 = nullptr;
  const float* code2 = nullptr;
};

/// Whether an int4 weight [rows, cols] with groups of group_size takes the
/// tensor-core GEMV: rows a multiple of 16, cols and the group a multiple of 64.
bool quant_int4_mma_eligible(int64_t rows, int64_t cols, int64_t group_size);
/// Host: the int4 codes of src ([N, K], two per byte, even k low: the plugin's layout)
/// in the tensor-core layout, N*K/2 bytes. Tile (16 rows, 64 columns) after tile, row
/// tiles outer; in a tile, lane l (g = l / 4, t = l % 4) holds 16 bytes, word j (k-step
/// 16j) holding W[g][2t], W[g+8][2t], W[g][2t+8], W[g+8][2t+8] in nibbles 0..3 and
/// the same at column + 1 in nibbles 4..7 (rows and columns within the tile and step):
/// its mma.m16n8k16 A fragment.
void quant_int4_repack_mma(const uint8_t* src, int64_t N, int64_t K, uint8_t* dst);

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

/// FP8 W8A8 products through cuBLASLt (compute capability 8.9 and later): x [M, K]
/// (bf16) is quantized on the device to e4m3 with one scale for the tensor, s_x =
/// max|x| / 448 (1 when x is 0), x_q = e4m3(x / s_x) rounded to nearest even and
/// saturated; cuBLASLt multiplies x_q with the e4m3 weight (A and B scale pointers:
/// s_w when per tensor, and s_x, both read on the device) accumulating in f32; a last
/// kernel applies the per-channel scale where there is one, adds the bias and writes
/// bf16 or f32 (from cuBLASLt's f32 output, or bf16 where it has no f32-output kernel). Owns a cuBLASLt handle, its workspace and the scratch of x_q.
class Fp8Gemm {
 public:
  Fp8Gemm();
  ~Fp8Gemm();
  Fp8Gemm(const Fp8Gemm&) = delete;
  Fp8Gemm& operator=(const Fp8Gemm&) = delete;

  /// Whether `device` runs FP8 tensor-core GEMMs; `why` says why not.
  static bool supported(int device, std::string* why);
  /// out [M, N] = x [M, K] · W^T (+ bias), W an fp8 weight (layout 3). N and K
  /// multiples of 16, x 16-byte aligned. Throws Error when cuBLASLt has no algorithm.
  void run(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
           const float* bias, cudaStream_t stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::kernels::cuda
