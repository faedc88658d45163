// The shrink and expand of the multi-LoRA kernels (lora.h). Both are memory-bound
// gathers: each block reads its tile's adapter (found through the device table) once
// and applies it to the tile's rows held in registers, so a decode batch of distinct
// adapters streams each adapter's r·(in + out) weights once, and rows sharing an
// adapter share the reads.
//  - shrink: a block of 8 warps serves (tile, a few ranks); the `ksplit` warps of
//    one rank split the input features (long rows in flight at once) and meet in
//    shared memory. t[row, k] is written in f32, scaled.
//  - expand: a block of 4 warps serves (tile, 256 output columns), each lane 8
//    columns, the warps splitting the rank; partial sums meet in shared memory and
//    the store adds into out (then the DoRA rescale), rounding once.
// V (8 or 1): elements per load; 8 needs every row and matrix 16-byte aligned.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lora.h"

namespace banyan::kernels::cuda {
namespace {

constexpr int kShrinkWarps = 8, kExpandWarps = 4, kExpandCols = 256;

__device__ __forceinline__ Bf16x8 load_stream(const uint16_t* p) {
  Bf16x8 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3])
               : "l"(p));
  return v;
}

__device__ __forceinline__ LoraEntry load_entry(const LoraEntry* table, int slot) {
  LoraEntry e;
  const uint4* src = reinterpret_cast<const uint4*>(table + slot);
  uint4* dst = reinterpret_cast<uint4*>(&e);
  dst[0] = __ldg(src);
  dst[1] = __ldg(src + 1);
  dst[2] = __ldg(src + 2);
  return e;
}

// ------------------------------------------------------------------ shrink ---

// acc[m] = sum over this warp's part of x_m · a (MT rows; rows beyond the tile
// repeat its last row and are never stored).
template <int MT, int V>
__device__ __forceinline__ void shrink_dots(const uint16_t* __restrict__ x, int64_t in,
                                            const uint16_t* __restrict__ a, const int* rows,
                                            int count, int part, int ksplit, float (&acc)[MT]) {
  const int lane = threadIdx.x & 31;
  const uint16_t* xr[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    xr[m] = x + static_cast<int64_t>(rows[m < count ? m : count - 1]) * in;
    acc[m] = 0.0f;
  }
  if constexpr (V == 8) {
    const int64_t vecs = in / 8, stride = 32LL * ksplit;
    int64_t v = static_cast<int64_t>(part) * 32 + lane;
    constexpr int kU = 4;
    for (; v + stride * (kU - 1) < vecs; v += stride * kU) {
      Bf16x8 w[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) w[u] = load_stream(a + (v + stride * u) * 8);
#pragma unroll
      for (int u = 0; u < kU; ++u)
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const Bf16x8 xv = load8(xr[m] + (v + stride * u) * 8);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[m] = fmaf(w[u].get(j), xv.get(j), acc[m]);
        }
    }
    for (; v < vecs; v += stride) {
      const Bf16x8 w = load_stream(a + v * 8);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const Bf16x8 xv = load8(xr[m] + v * 8);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m] = fmaf(w.get(j), xv.get(j), acc[m]);
      }
    }
  } else {
    for (int64_t i = static_cast<int64_t>(part) * 32 + lane; i < in; i += 32LL * ksplit) {
      const float w = bf2f(a[i]);
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[m] = fmaf(w, bf2f(xr[m][i]), acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
}

template <int MT, int V>
__device__ __forceinline__ void shrink_tile(const uint16_t* x, int64_t in, const LoraEntry& e,
                                            const int* rows, int count, int k, bool active,
                                            int part, int ksplit, int ldt, float* t,
                                            float (*partial)[kLoraTileRows]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[MT];
  if (active) {
    shrink_dots<MT, V>(x, in, e.a + static_cast<int64_t>(k) * in, rows, count, part, ksplit, acc);
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < MT; ++m) partial[warp][m] = acc[m];
  }
  __syncthreads();
  // The first warp of each rank sums its parts and stores the tile's rows.
  if (active && part == 0 && lane < count) {
    float s = 0.0f;
    for (int p = 0; p < ksplit; ++p) s += partial[warp + p][lane];
    t[static_cast<int64_t>(rows[lane]) * ldt + k] = s * e.scaling;
  }
}

template <int V>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    shrink_kernel(const uint16_t* __restrict__ x, int64_t in, const LoraEntry* __restrict__ table,
                  LoraGroups g, int ksplit, int ldt, float* __restrict__ t) {
  __shared__ float partial[kShrinkWarps][kLoraTileRows];
  __shared__ int rows[kLoraTileRows];
  if (static_cast<int>(blockIdx.x) >= *g.num_tiles) return;
  const LoraTile tile = g.tiles[blockIdx.x];
  const LoraEntry e = load_entry(table, tile.slot);
  const int ranks_per_block = kShrinkWarps / ksplit;
  const int k0 = static_cast<int>(blockIdx.y) * ranks_per_block;
  if (k0 >= e.rank) return;  // the whole block: e and k0 are uniform
  if (threadIdx.x < kLoraTileRows)
    rows[threadIdx.x] = g.order[tile.begin + min(static_cast<int>(threadIdx.x), tile.count - 1)];
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  const int k = k0 + warp / ksplit, part = warp % ksplit;
  const bool active = k < e.rank;
  switch (tile.count) {
    case 1: shrink_tile<1, V>(x, in, e, rows, 1, k, active, part, ksplit, ldt, t, partial); break;
    case 2: shrink_tile<2, V>(x, in, e, rows, 2, k, active, part, ksplit, ldt, t, partial); break;
    case 3:
    case 4: shrink_tile<4, V>(x, in, e, rows, tile.count, k, active, part, ksplit, ldt, t, partial); break;
    default: shrink_tile<8, V>(x, in, e, rows, tile.count, k, active, part, ksplit, ldt, t, partial); break;
  }
}

// ------------------------------------------------------------------ expand ---

// Column c (0..7) of this lane within the block's kExpandCols columns.
template <int V>
__device__ __forceinline__ int64_t expand_col(int64_t base, int lane, int c) {
  return V == 8 ? base + lane * 8 + c : base + lane + 32 * c;
}

template <int MT, int V, bool F32>
__device__ __forceinline__ void expand_tile(const LoraEntry& e, const int* rows, int count,
                                            const float (*ts)[kLoraMaxRank], int64_t n_out,
                                            int64_t base, void* out, float* partial) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[MT][8];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < 8; ++c) acc[m][c] = 0.0f;
  auto fma_k = [&](int k, const float (&b)[8]) {
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const float tv = ts[m][k];
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[m][c] = fmaf(tv, b[c], acc[m][c]);
    }
  };
  const bool full = expand_col<V>(base, lane, 7) < n_out;
  if (V == 8 && full) {
    const uint16_t* bt = e.bt + base + lane * 8;
    int k = warp;
    constexpr int kU = 4;
    for (; k + kExpandWarps * (kU - 1) < e.rank; k += kExpandWarps * kU) {
      Bf16x8 w[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) w[u] = load_stream(bt + static_cast<int64_t>(k + kExpandWarps * u) * n_out);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        float b[8];
#pragma unroll
        for (int c = 0; c < 8; ++c) b[c] = w[u].get(c);
        fma_k(k + kExpandWarps * u, b);
      }
    }
    for (; k < e.rank; k += kExpandWarps) {
      const Bf16x8 w = load_stream(bt + static_cast<int64_t>(k) * n_out);
      float b[8];
#pragma unroll
      for (int c = 0; c < 8; ++c) b[c] = w.get(c);
      fma_k(k, b);
    }
  } else {
    for (int k = warp; k < e.rank; k += kExpandWarps) {
      const uint16_t* bt = e.bt + static_cast<int64_t>(k) * n_out;
      float b[8];
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t j = expand_col<V>(base, lane, c);
        b[c] = j < n_out ? bf2f(bt[j]) : 0.0f;
      }
      fma_k(k, b);
    }
  }
  // One row at a time: this warp's partial sums into shared memory, then each
  // column's sum over the warps is added into out (and DoRA-rescaled), rounding once.
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= count) break;  // uniform: count is the tile's
#pragma unroll
    for (int c = 0; c < 8; ++c)
      partial[warp * kExpandCols + (V == 8 ? lane * 8 + c : lane + 32 * c)] = acc[m][c];
    __syncthreads();
    for (int col = threadIdx.x; col < kExpandCols; col += kExpandWarps * 32) {
      const int64_t j = base + col;
      if (j >= n_out) continue;
      float d = 0.0f;
#pragma unroll
      for (int w = 0; w < kExpandWarps; ++w) d += partial[w * kExpandCols + col];
      const int64_t at = static_cast<int64_t>(rows[m]) * n_out + j;
      float v = F32 ? static_cast<float*>(out)[at] : bf2f(static_cast<uint16_t*>(out)[at]);
      v += d;
      if (e.dora_scale) v = e.dora_scale[j] * v + (e.dora_bias ? e.dora_bias[j] : 0.0f);
      if (F32)
        static_cast<float*>(out)[at] = v;
      else
        static_cast<uint16_t*>(out)[at] = f2bf(v);
    }
    __syncthreads();  // partial is rewritten for the next row
  }
}

template <int V, bool F32>
__global__ void __launch_bounds__(kExpandWarps * 32)
    expand_kernel(const float* __restrict__ t, int ldt, const LoraEntry* __restrict__ table,
                  LoraGroups g, void* out, int64_t n_out) {
  __shared__ float ts[kLoraTileRows][kLoraMaxRank];
  __shared__ float partial[kExpandWarps * kExpandCols];
  __shared__ int rows[kLoraTileRows];
  if (static_cast<int>(blockIdx.x) >= *g.num_tiles) return;
  const LoraTile tile = g.tiles[blockIdx.x];
  const LoraEntry e = load_entry(table, tile.slot);
  if (e.rank == 0) return;
  if (threadIdx.x < kLoraTileRows)
    rows[threadIdx.x] = g.order[tile.begin + min(static_cast<int>(threadIdx.x), tile.count - 1)];
  __syncthreads();
  for (int i = threadIdx.x; i < kLoraTileRows * e.rank; i += kExpandWarps * 32) {
    const int m = i / e.rank, k = i % e.rank;
    ts[m][k] = t[static_cast<int64_t>(rows[m]) * ldt + k];
  }
  __syncthreads();
  const int64_t base = static_cast<int64_t>(blockIdx.y) * kExpandCols;
  switch (tile.count) {
    case 1: expand_tile<1, V, F32>(e, rows, 1, ts, n_out, base, out, partial); break;
    case 2: expand_tile<2, V, F32>(e, rows, 2, ts, n_out, base, out, partial); break;
    case 3:
    case 4: expand_tile<4, V, F32>(e, rows, tile.count, ts, n_out, base, out, partial); break;
    default: expand_tile<8, V, F32>(e, rows, tile.count, ts, n_out, base, out, partial); break;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

unsigned grid_tiles(int64_t max_tiles) { return static_cast<unsigned>(max_tiles > 0 ? max_tiles : 1); }

}  // namespace

void lora_shrink(const uint16_t* x, int64_t rows, int64_t in, const LoraEntry* table,
                 int32_t max_rank, const LoraGroups& g, int64_t max_tiles, float* t,
                 cudaStream_t stream) {
  if (rows <= 0 || max_rank <= 0) return;
  // Warps per rank: enough that each reads ~2k features (16-byte loads, 8 per lane).
  int ksplit = 1;
  while (ksplit < kShrinkWarps && in > 2048LL * ksplit) ksplit *= 2;
  const int per_block = kShrinkWarps / ksplit;
  const dim3 grid(grid_tiles(max_tiles), static_cast<unsigned>((max_rank + per_block - 1) / per_block));
  const bool vec = in % 8 == 0 && aligned16(x);  // A rows: 64-byte aligned images, in % 8 == 0
  if (vec)
    shrink_kernel<8><<<grid, kShrinkWarps * 32, 0, stream>>>(x, in, table, g, ksplit, max_rank, t);
  else
    shrink_kernel<1><<<grid, kShrinkWarps * 32, 0, stream>>>(x, in, table, g, ksplit, max_rank, t);
  BANYAN_CUDA_CHECK_LAUNCH("lora shrink_kernel");
}

void lora_expand(const float* t, int64_t rows, int32_t max_rank, const LoraEntry* table,
                 const LoraGroups& g, int64_t max_tiles, void* out, bool out_f32, int64_t n_out,
                 cudaStream_t stream) {
  if (rows <= 0 || max_rank <= 0) return;
  const dim3 grid(grid_tiles(max_tiles), static_cast<unsigned>((n_out + kExpandCols - 1) / kExpandCols));
  const bool vec = n_out % 8 == 0;  // B^T rows: 64-byte aligned images, n_out % 8 == 0
  const int threads = kExpandWarps * 32;
  if (out_f32) {
    if (vec)
      expand_kernel<8, true><<<grid, threads, 0, stream>>>(t, max_rank, table, g, out, n_out);
    else
      expand_kernel<1, true><<<grid, threads, 0, stream>>>(t, max_rank, table, g, out, n_out);
  } else {
    if (vec)
      expand_kernel<8, false><<<grid, threads, 0, stream>>>(t, max_rank, table, g, out, n_out);
    else
      expand_kernel<1, false><<<grid, threads, 0, stream>>>(t, max_rank, table, g, out, n_out);
  }
  BANYAN_CUDA_CHECK_LAUNCH("lora expand_kernel");
}

}  // namespace banyan::kernels::cuda
