// Decode-sized matrix products (a few rows of x) as a streaming GEMV: one to eight
// warps per output feature (narrow matrices split each row, so that every SM has
// bytes to stream) read its weight row once with 16-byte loads, eight in flight per
// lane, and multiply it with up to four activation rows held in L1. Memory-bound
// by design: the weight bytes are the whole cost, so nothing is staged in shared
// memory and the loads bypass L1. Launched chained (common.cuh): the block starts
// while the previous kernel finishes and waits for it before it reads x.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

#include <algorithm>

namespace banyan::kernels::cuda {
namespace {

constexpr int kWarps = 8, kUnroll = 8, kMaxPrefetch = 32;
// gemv_set_prefetch. 0: on the H100 every count cost time (batch-1 decode with PDL:
// 0 -> 166.3, 8 -> 153.7, 16 -> 146.2 tok/s): a 16-byte prefetch per lane is a
// request of its own, for lines the loads fetch anyway.
int g_prefetch = 0;
// gemv_set_bulk_prefetch (bytes): one cp.async.bulk.prefetch.L2 of the block's weight
// slice before the wait. 0 (off) by default: not measured yet.
int g_bulk_bytes = 0;

__device__ __forceinline__ Bf16x8 load_stream(const uint16_t* p) {
  Bf16x8 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3])
               : "l"(p));
  return v;
}

__device__ __forceinline__ void prefetch_l2(const uint16_t* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

// One bulk prefetch into L2 of `bytes` (a multiple of 16) from p (16-byte aligned).
__device__ __forceinline__ void prefetch_l2_bulk(const uint16_t* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
#endif
}

template <int MT>
__device__ __forceinline__ void fma_rows(const uint16_t* __restrict__ x, int64_t K, int64_t k,
                                         const Bf16x8& w, float (&acc)[MT]) {
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const Bf16x8 xv = load8(x + m * K + k);
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[m] = fmaf(w.get(j), xv.get(j), acc[m]);
  }
}

// One weight row (its part `part` of ksplit) times the MT rows of x, into acc.
template <int MT>
__device__ __forceinline__ void stream_row(const uint16_t* __restrict__ x, const uint16_t* wr,
                                           int64_t K, int64_t v, int64_t stride, float (&acc)[MT]) {
  const int64_t vecs = K / 8;
  for (; v + stride * (kUnroll - 1) < vecs; v += stride * kUnroll) {
    Bf16x8 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u] = load_stream(wr + (v + stride * u) * 8);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) fma_rows<MT>(x, K, (v + stride * u) * 8, wv[u], acc);
  }
#pragma unroll 4
  for (; v < vecs; v += stride) fma_rows<MT>(x, K, v * 8, load_stream(wr + v * 8), acc);
}

// The gated MLP's first half in one pass: w holds the gate rows, then the up rows
// ([2N, K]); each output feature j streams gate row j and up row N + j and writes
// act(gate) * up with the rounding of a product to bf16 followed by act_mul.
template <int MT>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_gated_kernel(const uint16_t* __restrict__ x, const uint16_t* __restrict__ w,
                      uint16_t* __restrict__ out, int64_t N, int64_t K, int act, int ksplit) {
  __shared__ float partial[kWarps][2][MT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % ksplit;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit;
  float g[MT], u[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) g[m] = u[m] = 0.0f;
  pdl_wait();
  pdl_launch_dependents();
  if (row < N) {
    const int64_t v = part * 32 + lane, stride = 32 * ksplit;
    stream_row<MT>(x, w + row * K, K, v, stride, g);
    stream_row<MT>(x, w + (N + row) * K, K, v, stride, u);
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    g[m] = warp_sum(g[m]);
    u[m] = warp_sum(u[m]);
  }
  if (ksplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        partial[warp][0][m] = g[m];
        partial[warp][1][m] = u[m];
      }
    __syncthreads();
    if (lane == 0 && part == 0)
      for (int p = 1; p < ksplit; ++p)
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          g[m] += partial[warp + p][0][m];
          u[m] += partial[warp + p][1][m];
        }
  }
  if (lane == 0 && part == 0 && row < N)
#pragma unroll
    for (int m = 0; m < MT; ++m)
      out[m * N + row] = f2bf(round_bf(apply_act(round_bf(g[m]), act)) * round_bf(u[m]));
}

// MT: activation rows (x holds exactly MT rows). A block of 8 warps serves
// 8 / ksplit output features; the ksplit warps of one feature split its row.
template <int MT>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const uint16_t* __restrict__ x, const uint16_t* __restrict__ w, void* out,
                bool out_f32, int64_t N, int64_t K, bool accumulate, int ksplit, int prefetch,
                int bulk_bytes) {
  __shared__ float partial[kWarps][MT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % ksplit;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit;
  if (bulk_bytes > 0 && threadIdx.x == 0) {  // the block's rows are contiguous in w
    const int64_t per_block = kWarps / ksplit, first = static_cast<int64_t>(blockIdx.x) * per_block;
    const int64_t rows = N - first < per_block ? N - first : per_block;
    int64_t bytes = rows * K * 2;
    if (bytes > bulk_bytes) bytes = bulk_bytes;
    bytes &= ~int64_t{15};
    if (bytes > 0) prefetch_l2_bulk(w + first * K, static_cast<uint32_t>(bytes));
  }
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  if (row < N) {
    const uint16_t* wr = w + row * K;
    const int64_t vecs = K / 8, stride = 32 * ksplit;
    int64_t v = part * 32 + lane;
    // Before the wait, the lane's first `prefetch` weight vectors may be prefetched
    // into L2 (off by default, gemv_set_prefetch), to stream while the previous
    // kernel (which x comes from) still runs. Loading them into registers instead
    // held 8 more 16-byte values per thread across the wait: twice the registers,
    // half the resident blocks, slower (q 13.3 -> 15.1 us).
#pragma unroll
    for (int u = 0; u < kMaxPrefetch; ++u)
      if (u < prefetch && v + stride * u < vecs) prefetch_l2(wr + (v + stride * u) * 8);
    pdl_wait();
    pdl_launch_dependents();
    stream_row<MT>(x, wr, K, v, stride, acc);
  } else {
    pdl_wait();
    pdl_launch_dependents();
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
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const int64_t i = m * N + row;
      if (out_f32) {
        float* o = static_cast<float*>(out);
        o[i] = accumulate ? o[i] + acc[m] : acc[m];
      } else {
        uint16_t* o = static_cast<uint16_t*>(out);
        o[i] = f2bf(accumulate ? bf2f(o[i]) + acc[m] : acc[m]);
      }
    }
  }
}

int g_blocks_per_sm = 4;  // gemv_set_blocks_per_sm

// Split rows across warps until the grid has a few blocks per SM to stream with.
int ksplit_for(int64_t N, int64_t K, int num_sms) {
  int ksplit = 1;
  while (ksplit < kWarps && N * ksplit / kWarps < int64_t{g_blocks_per_sm} * num_sms &&
         K / 8 >= 64LL * ksplit)
    ksplit *= 2;
  return ksplit;
}

template <int MT>
void launch_gated(const bf16_bits* x, const bf16_bits* w, bf16_bits* out, int64_t N, int64_t K,
                  int act, int num_sms, cudaStream_t stream) {
  const int ksplit = ksplit_for(2 * N, K, num_sms);  // the bytes of both halves
  launch_chained("gemv_gated", gemv_gated_kernel<MT>,
                 blocks_for(N, kWarps / ksplit, int64_t{1} << 31), kWarps * 32, 0, stream, x, w,
                 out, N, K, act, ksplit);
}

template <int MT>
void launch(const bf16_bits* x, const bf16_bits* w, void* out, bool out_f32, int64_t N, int64_t K,
            bool accumulate, int num_sms, cudaStream_t stream) {
  const int ksplit = ksplit_for(N, K, num_sms);
  const int64_t rows_per_block = kWarps / ksplit;
  launch_chained("gemv", gemv_kernel<MT>,
                 blocks_for(N, static_cast<int>(rows_per_block), int64_t{1} << 31), kWarps * 32, 0,
                 stream, x, w, out, out_f32, N, K, accumulate, ksplit, g_prefetch,
                 g_bulk_bytes);
}

}  // namespace

int gemv_blocks_per_sm() { return g_blocks_per_sm; }
void gemv_set_blocks_per_sm(int blocks) { g_blocks_per_sm = std::clamp(blocks, 1, 64); }

int gemv_prefetch() { return g_prefetch; }
void gemv_set_prefetch(int vectors_per_lane) {
  g_prefetch = std::clamp(vectors_per_lane, 0, kMaxPrefetch);
}

int gemv_bulk_prefetch() { return g_bulk_bytes; }
void gemv_set_bulk_prefetch(int bytes) { g_bulk_bytes = std::clamp(bytes, 0, 1 << 20) & ~15; }

bool gemv_supported(int64_t M, int64_t K, const void* x, const void* w) {
  const auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && K > 0 && a16(x) && a16(w);
}

void gemv_gated(const bf16_bits* x, int64_t M, const bf16_bits* w, bf16_bits* out, int64_t N,
                int64_t K, int32_t act, int num_sms, cudaStream_t stream) {
  if (N <= 0) return;
  switch (M) {
    case 1: launch_gated<1>(x, w, out, N, K, act, num_sms, stream); break;
    case 2: launch_gated<2>(x, w, out, N, K, act, num_sms, stream); break;
    case 3: launch_gated<3>(x, w, out, N, K, act, num_sms, stream); break;
    default: launch_gated<4>(x, w, out, N, K, act, num_sms, stream); break;
  }
}

void gemv(const bf16_bits* x, int64_t M, const bf16_bits* w, void* out, bool out_f32, int64_t N,
          int64_t K, bool accumulate, int num_sms, cudaStream_t stream) {
  if (N <= 0) return;
  switch (M) {  // rows beyond M would read past x: each count has its kernel
    case 1: launch<1>(x, w, out, out_f32, N, K, accumulate, num_sms, stream); break;
    case 2: launch<2>(x, w, out, out_f32, N, K, accumulate, num_sms, stream); break;
    case 3: launch<3>(x, w, out, out_f32, N, K, accumulate, num_sms, stream); break;
    default: launch<4>(x, w, out, out_f32, N, K, accumulate, num_sms, stream); break;
  }
}

}  // namespace banyan::kernels::cuda
