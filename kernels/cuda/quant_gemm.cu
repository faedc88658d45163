// Quantized GEMV and dequantization (quant_gemm.h). The GEMV follows gemv.cu: one to
// eight warps per output feature, each lane streaming 16-byte vectors of the packed
// row (32 int4 / lut4 values or 16 int8 / fp8 values) with up to four in flight,
// unpacked in registers and multiplied with up to four activation rows read through
// L1. Unpacking:
//  - int4: (q - z) as float exactly through the 2^23 trick (the float with bits
//    0x4B000000 | q is 2^23 + q), times the group's scale;
//  - lut4: code[q] (16 floats in shared memory) times the block's absmax (double
//    quantization: code2[i] * scales2 + offset);
//  - int8: q as float; the row scale after the reduction;
//  - fp8: e4m3fn moved into an IEEE half (2^-8 of its value), widened; 256 * scale after.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/quant_gemm.h"

#include <cuda_fp16.h>

namespace banyan::kernels::cuda {
namespace {

// BanyanQuantLayout (abi.h is C; the values are fixed by the ABI).
constexpr int kInt8 = 0, kInt4 = 1, kLut4 = 2, kFp8 = 3;
constexpr int kWarps = 8, kUnroll = 4;

__device__ __forceinline__ uint4 load_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float nibble_minus(uint32_t word, int shift, float magic_minus_z) {
  return __uint_as_float(((word >> shift) & 0xfu) | 0x4b000000u) - magic_minus_z;
}

__device__ __forceinline__ float e4m3_half(uint32_t b) {  // 2^-8 * value, exact
  return __half2float(__ushort_as_half(static_cast<unsigned short>(((b & 0x80u) << 8) | ((b & 0x7fu) << 7))));
}

// Adds one 16-byte weight vector (element k0 onwards of row n) times MT rows of x.
template <int L, int MT>
__device__ __forceinline__ void vector_fma(const QuantWeightDev& w, int64_t n, int64_t k0, uint4 v,
                                           const uint16_t* __restrict__ x, const float* code,
                                           float (&acc)[MT]) {
  const int64_t K = w.cols;
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
  if constexpr (L == kInt8 || L == kFp8) {
    float wf[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint32_t b = (words[j >> 2] >> (8 * (j & 3))) & 0xffu;
      wf[j] = L == kInt8 ? static_cast<float>(static_cast<int8_t>(b)) : e4m3_half(b);
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const Bf16x8 x0 = load8(x + m * K + k0), x1 = load8(x + m * K + k0 + 8);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[m] = fmaf(wf[j], x0.get(j), acc[m]);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[m] = fmaf(wf[8 + j], x1.get(j), acc[m]);
    }
  } else {
    float wf[32];
    if constexpr (L == kInt4) {
      const int64_t ng = K / w.group_size, g = n * ng + k0 / w.group_size;
      const float s = static_cast<const float*>(w.scales)[g];
      const float mz = 8388608.0f + static_cast<float>(w.zeros[g]);  // 2^23 + z, exact
#pragma unroll
      for (int j = 0; j < 16; ++j) {  // byte j: element 2j low nibble, 2j + 1 high
        const uint32_t word = words[j >> 2];
        const int sh = 8 * (j & 3);
        wf[2 * j] = nibble_minus(word, sh, mz) * s;
        wf[2 * j + 1] = nibble_minus(word, sh + 4, mz) * s;
      }
    } else {  // kLut4: byte j: element 2j high nibble, 2j + 1 low
      const int64_t b = (n * K + k0) / w.group_size;
      float amax;
      if (w.group_size2 > 0)
        amax = w.code2[static_cast<const uint8_t*>(w.scales)[b]] * w.scales2[b / w.group_size2] + w.offset;
      else
        amax = static_cast<const float*>(w.scales)[b];
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const uint32_t byte = (words[j >> 2] >> (8 * (j & 3))) & 0xffu;
        wf[2 * j] = code[byte >> 4] * amax;
        wf[2 * j + 1] = code[byte & 0xfu] * amax;
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const Bf16x8 xv = load8(x + m * K + k0 + 8 * c);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m] = fmaf(wf[8 * c + j], xv.get(j), acc[m]);
      }
    }
  }
}

template <int L, int MT>
__global__ void __launch_bounds__(kWarps * 32)
    qgemv_kernel(QuantWeightDev w, const uint16_t* __restrict__ x, void* out, bool out_f32,
                 const float* __restrict__ bias, bool accumulate, int ksplit) {
  __shared__ float partial[kWarps][MT];
  __shared__ float code[16];
  if (L == kLut4 && threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
  if (L == kLut4) __syncthreads();
  constexpr int EPV = (L == kInt4 || L == kLut4) ? 32 : 16;  // values per 16-byte vector
  const int64_t N = w.rows, K = w.cols;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % ksplit;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  if (row < N) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.qweight) + row * (EPV == 32 ? K / 2 : K);
    const int64_t vecs = K / EPV, stride = 32 * ksplit;
    int64_t v = part * 32 + lane;
    for (; v + stride * (kUnroll - 1) < vecs; v += stride * kUnroll) {
      uint4 wv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) wv[u] = load_stream16(wr + (v + stride * u) * 16);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) vector_fma<L, MT>(w, row, (v + stride * u) * EPV, wv[u], x, code, acc);
    }
    for (; v < vecs; v += stride) vector_fma<L, MT>(w, row, v * EPV, load_stream16(wr + v * 16), x, code, acc);
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
  if (ksplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < MT; ++m) partial[warp][m] = acc[m];
    __syncthreads();
    if (lane == 0 && part == 0)
      for (int p = 1; p < ksplit; ++p)
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[m] += partial[warp + p][m];
  }
  if (lane == 0 && part == 0 && row < N) {
    float scale = 1.0f;
    if (L == kInt8) scale = static_cast<const float*>(w.scales)[row];
    if (L == kFp8) scale = static_cast<const float*>(w.scales)[w.per_row_scale ? row : 0] * 256.0f;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const int64_t i = m * N + row;
      const float r = acc[m] * scale + (bias ? bias[row] : 0.0f);
      if (out_f32) {
        float* o = static_cast<float*>(out);
        o[i] = accumulate ? o[i] + r : r;
      } else {
        uint16_t* o = static_cast<uint16_t*>(out);
        o[i] = f2bf(accumulate ? bf2f(o[i]) + r : r);
      }
    }
  }
}

template <int L, int MT>
void launch(const QuantWeightDev& w, const uint16_t* x, void* out, bool out_f32, const float* bias,
            bool accumulate, int num_sms, cudaStream_t stream) {
  constexpr int EPV = (L == kInt4 || L == kLut4) ? 32 : 16;
  const int64_t N = w.rows, K = w.cols;
  int ksplit = 1;
  while (ksplit < kWarps && N * ksplit / kWarps < 4LL * num_sms && K / EPV >= 64LL * ksplit) ksplit *= 2;
  qgemv_kernel<L, MT><<<blocks_for(N, kWarps / ksplit, int64_t{1} << 31), kWarps * 32, 0, stream>>>(
      w, x, out, out_f32, bias, accumulate, ksplit);
  BANYAN_CUDA_CHECK_LAUNCH("quant_gemv");
}

template <int L>
void launch_rows(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
                 const float* bias, bool accumulate, int num_sms, cudaStream_t stream) {
  switch (M) {
    case 1: launch<L, 1>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
    case 2: launch<L, 2>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
    case 3: launch<L, 3>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
    default: launch<L, 4>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
  }
}

__device__ float dequant(const QuantWeightDev& w, int64_t n, int64_t k) {
  const int64_t K = w.cols;
  switch (w.layout) {
    case kInt8:
      return static_cast<float>(static_cast<const int8_t*>(w.qweight)[n * K + k]) *
             static_cast<const float*>(w.scales)[n];
    case kInt4: {
      const uint8_t b = static_cast<const uint8_t*>(w.qweight)[n * (K / 2) + k / 2];
      const int64_t g = n * (K / w.group_size) + k / w.group_size;
      const float q = static_cast<float>((k & 1) ? (b >> 4) : (b & 0xfu));
      return (q - static_cast<float>(w.zeros[g])) * static_cast<const float*>(w.scales)[g];
    }
    case kLut4: {
      const int64_t i = n * K + k, b = i / w.group_size;
      const uint8_t byte = static_cast<const uint8_t*>(w.qweight)[i / 2];
      float amax;
      if (w.group_size2 > 0)
        amax = w.code2[static_cast<const uint8_t*>(w.scales)[b]] * w.scales2[b / w.group_size2] + w.offset;
      else
        amax = static_cast<const float*>(w.scales)[b];
      return w.code[(i & 1) ? (byte & 0xfu) : (byte >> 4)] * amax;
    }
    default: {
      const uint32_t b = static_cast<const uint8_t*>(w.qweight)[n * K + k];
      return e4m3_half(b) * 256.0f * static_cast<const float*>(w.scales)[w.per_row_scale ? n : 0];
    }
  }
}

__global__ void dequant_kernel(QuantWeightDev w, uint16_t* __restrict__ dst) {
  const int64_t total = w.rows * w.cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = f2bf(dequant(w, i / w.cols, i % w.cols));
}

}  // namespace

bool quant_gemv_supported(const QuantWeightDev& w, int64_t M, const void* x) {
  if (M < 1 || M > kQuantGemvMaxRows || (reinterpret_cast<uintptr_t>(x) & 15u) != 0) return false;
  switch (w.layout) {
    case kInt8:
    case kFp8: return w.cols % 16 == 0;
    case kInt4: return w.cols % 32 == 0 && w.group_size % 32 == 0;
    case kLut4: return w.cols % 32 == 0 && w.group_size % 32 == 0;
    default: return false;
  }
}

void quant_gemv(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
                const float* bias, bool accumulate, int num_sms, cudaStream_t stream) {
  if (w.rows <= 0 || M <= 0) return;
  switch (w.layout) {
    case kInt8: launch_rows<kInt8>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
    case kInt4: launch_rows<kInt4>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
    case kLut4: launch_rows<kLut4>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
    default: launch_rows<kFp8>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
  }
}

void quant_dequantize_bf16(const QuantWeightDev& w, uint16_t* dst, cudaStream_t stream) {
  const int64_t total = w.rows * w.cols;
  if (total <= 0) return;
  dequant_kernel<<<blocks_for(total, 256, 65535LL * 16), 256, 0, stream>>>(w, dst);
  BANYAN_CUDA_CHECK_LAUNCH("quant_dequantize_bf16");
}

}  // namespace banyan::kernels::cuda
