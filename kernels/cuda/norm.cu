// RMSNorm and LayerNorm over the last dimension with the residual add fused in:
// one block per row, 16-byte accesses when the row width allows, statistics in f32;
// RMSNorm rows up to 8192 wide keep their values in registers (one read).
// Rounding follows the bf16 reference: the residual sum is rounded to bf16 before
// it is normalized, and Llama's RMSNorm rounds the normalized value before the
// weight multiplies it.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

#include <cstdlib>

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Adds x into the residual (when given) for elements [i, i + 8) and returns the
// row values to normalize. V: vectorized (row width and pointers 16-byte aligned).
template <bool V>
struct RowIo {
  static __device__ __forceinline__ Bf16x8 fuse(const uint16_t* x, uint16_t* r, int64_t i,
                                                int64_t n) {
    Bf16x8 v;
    if constexpr (V) {
      v = load8_rw(x + i);
      if (r) {
        Bf16x8 rv = load8_rw(r + i);
#pragma unroll
        for (int j = 0; j < 8; ++j) rv.set(j, rv.get(j) + v.get(j));
        store8(r + i, rv);
        v = rv;
      }
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float f = 0.0f;
        if (i + j < n) {
          f = bf2f(x[i + j]);
          if (r) {
            f = round_bf(bf2f(r[i + j]) + f);
            r[i + j] = f2bf(f);
          }
        }
        v.set(j, f);
      }
    }
    return v;
  }
  static __device__ __forceinline__ Bf16x8 load(const uint16_t* p, int64_t i, int64_t n) {
    Bf16x8 v;
    if constexpr (V) {
      v = load8_rw(p + i);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) v.set(j, i + j < n ? bf2f(p[i + j]) : 0.0f);
    }
    return v;
  }
  static __device__ __forceinline__ void store(uint16_t* p, int64_t i, int64_t n,
                                               const Bf16x8& v) {
    if constexpr (V) {
      store8(p + i, v);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (i + j < n) p[i + j] = static_cast<uint16_t>(v.w[j >> 1] >> ((j & 1) * 16));
    }
  }
};

template <bool V>
__global__ void rms_norm_kernel(const uint16_t* __restrict__ x, uint16_t* residual,
                                const float* __restrict__ w, float w_offset, float eps, int64_t n,
                                uint16_t* out) {
  __shared__ float scratch[32];
  pdl_launch_dependents();
  pdl_wait();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  const uint16_t* xr = x + base;
  uint16_t* rr = residual ? residual + base : nullptr;
  uint16_t* o = out + base;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x * 8; i < n; i += kThreads * 8) {
    const Bf16x8 v = RowIo<V>::fuse(xr, rr, i, n);
#pragma unroll
    for (int j = 0; j < 8; ++j) ss += v.get(j) * v.get(j);
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / static_cast<float>(n) + eps);
  const uint16_t* src = rr ? rr : xr;
  for (int64_t i = threadIdx.x * 8; i < n; i += kThreads * 8) {
    Bf16x8 v = RowIo<V>::load(src, i, n);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float wj = i + j < n ? w[i + j] : 0.0f;
      const float y = v.get(j) * inv;
      v.set(j, w_offset == 0.0f ? wj * round_bf(y) : (wj + w_offset) * y);
    }
    RowIo<V>::store(o, i, n, v);
  }
}

// Rows of up to kThreads * 8 * R elements (vectorized): each thread keeps its R
// vectors, and its weights, in registers across the reduction, so the row is read
// once and every load is issued before the first wait (decode rows: one block per
// token, latency-bound).
template <int R>
__global__ void __launch_bounds__(kThreads)
    rms_norm_reg_kernel(const uint16_t* __restrict__ x, uint16_t* residual,
                        const float* __restrict__ w, float w_offset, float eps, int64_t n,
                        uint16_t* out, bool trigger_early) {
  __shared__ float scratch[32];
  if (trigger_early) pdl_launch_dependents();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  float4 wv[R][2];
#pragma unroll
  for (int r = 0; r < R; ++r) {  // the weights do not depend on the previous kernel
    const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
    if (i < n) {
      wv[r][0] = __ldg(reinterpret_cast<const float4*>(w + i));
      wv[r][1] = __ldg(reinterpret_cast<const float4*>(w + i + 4));
    }
  }
  pdl_wait();
  if (!trigger_early) pdl_launch_dependents();
  Bf16x8 v[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
    if (i < n) v[r] = load8_rw(x + base + i);
  }
  if (residual) {
    Bf16x8 rv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
      if (i < n) rv[r] = load8_rw(residual + base + i);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
      if (i < n) {
#pragma unroll
        for (int j = 0; j < 8; ++j) rv[r].set(j, rv[r].get(j) + v[r].get(j));
        store8(residual + base + i, rv[r]);
        v[r] = rv[r];
      }
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
    if (i < n)
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += v[r].get(j) * v[r].get(j);
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / static_cast<float>(n) + eps);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t i = (threadIdx.x + static_cast<int64_t>(r) * kThreads) * 8;
    if (i >= n) continue;
    const float wj[8] = {wv[r][0].x, wv[r][0].y, wv[r][0].z, wv[r][0].w,
                         wv[r][1].x, wv[r][1].y, wv[r][1].z, wv[r][1].w};
    Bf16x8 o;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float y = v[r].get(j) * inv;
      o.set(j, w_offset == 0.0f ? wj[j] * round_bf(y) : (wj[j] + w_offset) * y);
    }
    store8(out + base + i, o);
  }
}

template <bool V>
__global__ void layer_norm_kernel(const uint16_t* __restrict__ x, uint16_t* residual,
                                  const float* __restrict__ w, const float* __restrict__ bias,
                                  float eps, int64_t n, uint16_t* out) {
  __shared__ float scratch[32];
  pdl_launch_dependents();
  pdl_wait();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  const uint16_t* xr = x + base;
  uint16_t* rr = residual ? residual + base : nullptr;
  uint16_t* o = out + base;
  float s = 0.0f;
  for (int64_t i = threadIdx.x * 8; i < n; i += kThreads * 8) {
    const Bf16x8 v = RowIo<V>::fuse(xr, rr, i, n);
#pragma unroll
    for (int j = 0; j < 8; ++j) s += v.get(j);
  }
  const float mean = block_sum(s, scratch) / static_cast<float>(n);
  const uint16_t* src = rr ? rr : xr;
  float var = 0.0f;
  for (int64_t i = threadIdx.x * 8; i < n; i += kThreads * 8) {
    const Bf16x8 v = RowIo<V>::load(src, i, n);
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (i + j < n) var += (v.get(j) - mean) * (v.get(j) - mean);
  }
  const float inv = rsqrtf(block_sum(var, scratch) / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x * 8; i < n; i += kThreads * 8) {
    Bf16x8 v = RowIo<V>::load(src, i, n);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float wj = i + j < n ? w[i + j] : 0.0f;
      const float bj = bias && i + j < n ? bias[i + j] : 0.0f;
      v.set(j, (v.get(j) - mean) * inv * wj + bj);
    }
    RowIo<V>::store(o, i, n, v);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void rms_norm(const bf16_bits* x, bf16_bits* residual, const float* w, float w_offset, float eps,
              int64_t rows, int64_t n, bf16_bits* out, cudaStream_t stream) {
  if (rows <= 0) return;
  const bool vec = n % 8 == 0 && aligned16(x) && aligned16(out) && (!residual || aligned16(residual));
  static const int reg_mode = [] {  // BANYAN_RMS_NORM_REG: 0 off, 2 trigger after the wait
    const char* e = std::getenv("BANYAN_RMS_NORM_REG");
    return e ? std::atoi(e) : 1;
  }();
  if (reg_mode != 0 && vec && aligned16(w) && n <= 4 * kThreads * 8) {
    const int64_t per = (n + kThreads * 8 - 1) / (kThreads * 8);  // vectors per thread
    auto kernel = per <= 1 ? rms_norm_reg_kernel<1> : per <= 2 ? rms_norm_reg_kernel<2> : rms_norm_reg_kernel<4>;
    launch_chained("rms_norm", kernel, static_cast<unsigned>(rows), kThreads, 0, stream, x, residual,
                   w, w_offset, eps, n, out, reg_mode != 2);
    return;
  }
  launch_chained("rms_norm", vec ? rms_norm_kernel<true> : rms_norm_kernel<false>,
                 static_cast<unsigned>(rows), kThreads, 0, stream, x, residual, w, w_offset, eps, n,
                 out);
}

void layer_norm(const bf16_bits* x, bf16_bits* residual, const float* w, const float* bias,
                float eps, int64_t rows, int64_t n, bf16_bits* out, cudaStream_t stream) {
  if (rows <= 0) return;
  const bool vec = n % 8 == 0 && aligned16(x) && aligned16(out) && (!residual || aligned16(residual));
  launch_chained("layer_norm", vec ? layer_norm_kernel<true> : layer_norm_kernel<false>,
                 static_cast<unsigned>(rows), kThreads, 0, stream, x, residual, w, bias, eps, n,
                 out);
}

}  // namespace banyan::kernels::cuda
