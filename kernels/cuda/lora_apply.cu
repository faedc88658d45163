// The shrink and expand of the multi-LoRA kernels (lora.h). Both are memory-bound
// gathers: each block reads its tile's adapter (found through the device table) once
// and applies it to the tile's rows held in registers, so a decode batch of distinct
// adapters streams each adapter's r·(in + out) weights once, and rows sharing an
// adapter share the reads.
//  - shrink: a block of 8 warps serves (tile, a few ranks); the `ksplit` warps of
//    one rank split the input features (long rows in flight at once) and meet in
//    shared memory. t holds f32 rows in slot-sorted order (t[tile.begin + m]), scaled.
//  - expand: a block of 4 warps serves (tile, 256 output columns), each lane 8
//    columns, the warps splitting the rank; warps 1-3 hand their sums to warp 0
//    through shared memory, which adds them into out (then the DoRA rescale),
//    rounding once, with 16-byte accesses.
// Latency: a block's index loads form short chains (tile and count together; then
// entry and rows together), and both kernels are launched with programmatic
// dependent launch, so each overlaps the tail of the kernel before it. The shrink
// reads only x (complete before the base product started: the caller says when
// the kernel just before may have written it) and A before its
// griddepcontrol.wait, which comes just before it writes t; the expand waits (for
// the shrink, hence the base product) before reading t and out. Every block of
// both waits once, so each grid completes only after the one before it.
// Variants (MAXM): the kernels hold up to 8 rows of a tile in registers; for steps
// where every row has its own adapter (the caller's hint) a variant holding one row
// at a time runs with about half the registers (twice the blocks per SM) and 8
// loads in flight per lane; it still computes any tile right (in several passes).
// The merge of the overlapped path (lora_merge) is here too: 16-byte accesses, PDL.
// V (8 or 1): elements per load; 8 needs every row and matrix 16-byte aligned.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lora.h"

#include <cstdlib>

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

// Programmatic dependent launch (sm_90): wait for the previous kernel's results /
// let the next kernel launch. No-ops for a kernel launched without the attribute.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
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
// repeat its last row and are never stored). Each lane keeps kU 16-byte loads of A
// (and of each row of x) in flight per round; loads past the end read the last
// vector again (unconditional loads stay in flight together; a load under a branch
// would wait for the one before) and count zero, so a short part is one round.
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
    constexpr int kU = MT <= 2 ? 8 : 4;
    const int64_t vecs = in / 8, stride = 32LL * ksplit;
    for (int64_t v = static_cast<int64_t>(part) * 32 + lane; v < vecs; v += stride * kU) {
      Bf16x8 w[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) w[u] = load_stream(a + min(v + stride * u, vecs - 1) * 8);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int64_t at = min(v + stride * u, vecs - 1);
        if (v + stride * u >= vecs) w[u] = Bf16x8{};  // a select, after the loads
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const Bf16x8 xv = load8(xr[m] + at * 8);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[m] = fmaf(w[u].get(j), xv.get(j), acc[m]);
        }
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
                                            const int* rows, int count, int begin, int k, bool active,
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
  // The kernel before (the base product, or the previous module's expand, which
  // reads t) is complete from here on (x was read after the same wait unless
  // BANYAN_LORA_SHRINK_WAIT=0).
  grid_dependency_wait();
  // The first warp of each rank sums its parts and stores the tile's rows.
  if (active && part == 0 && lane < count) {
    float s = 0.0f;
    for (int p = 0; p < ksplit; ++p) s += partial[warp + p][lane];
    t[static_cast<int64_t>(begin + lane) * ldt + k] = s * e.scaling;
  }
}

// MAXM: the most rows of a tile held in registers at once (8: every tile in one
// pass; 1: the variant for steps of distinct adapters, fewer registers and more
// loads in flight; a longer tile then takes several passes, re-reading A from L2).
template <int V, int MAXM>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    shrink_kernel(const uint16_t* __restrict__ x, int64_t in, const LoraEntry* __restrict__ table,
                  LoraGroups g, int ksplit, int ldt, float* __restrict__ t, bool wait_first) {
  __shared__ float partial[kShrinkWarps][kLoraTileRows];
  __shared__ int rows[kLoraTileRows];
  // Wait for the kernel before first (always by default: g_shrink_wait below).
  if (wait_first) grid_dependency_wait();
  const int num_tiles = *g.num_tiles;
  const LoraTile tile = g.tiles[blockIdx.x];  // within the buffer even past num_tiles
  const bool valid = static_cast<int>(blockIdx.x) < num_tiles;
  LoraEntry e{};
  if (valid) {
    e = load_entry(table, tile.slot);
    if (threadIdx.x < kLoraTileRows)
      rows[threadIdx.x] = g.order[tile.begin + min(static_cast<int>(threadIdx.x), tile.count - 1)];
  }
  grid_launch_dependents();  // the expand may start its prologue
  const int ranks_per_block = kShrinkWarps / ksplit;
  const int k0 = static_cast<int>(blockIdx.y) * ranks_per_block;
  if (!valid || k0 >= e.rank) {  // the whole block: e and k0 are uniform
    // Every block waits once, so that this grid completes only after the kernel
    // before it (the expand relies on that for out).
    grid_dependency_wait();
    return;
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  const int k = k0 + warp / ksplit, part = warp % ksplit;
  const bool active = k < e.rank;
  const int b = tile.begin;
  if constexpr (MAXM < kLoraTileRows) {
    for (int c0 = 0; c0 < tile.count; c0 += MAXM) {  // tile.count is uniform
      const int n = min(MAXM, tile.count - c0);
      shrink_tile<MAXM, V>(x, in, e, rows + c0, n, b + c0, k, active, part, ksplit, ldt, t, partial);
      __syncthreads();  // partial is refilled by the next pass
    }
  } else {
    switch (tile.count) {
      case 1: shrink_tile<1, V>(x, in, e, rows, 1, b, k, active, part, ksplit, ldt, t, partial); break;
      case 2: shrink_tile<2, V>(x, in, e, rows, 2, b, k, active, part, ksplit, ldt, t, partial); break;
      case 3:
      case 4: shrink_tile<4, V>(x, in, e, rows, tile.count, b, k, active, part, ksplit, ldt, t, partial); break;
      default: shrink_tile<8, V>(x, in, e, rows, tile.count, b, k, active, part, ksplit, ldt, t, partial); break;
    }
  }
}

// ------------------------------------------------------------------ expand ---

// Column c (0..7) of this lane within the block's kExpandCols columns.
template <int V>
__device__ __forceinline__ int64_t expand_col(int64_t base, int lane, int c) {
  return V == 8 ? base + lane * 8 + c : base + lane + 32 * c;
}

// What the expand writes: out (bf16 or f32) += delta, with the DoRA rescale; or the
// delta itself into an f32 buffer in row order (lora_expand_delta; no DoRA).
enum ExpandOut { kOutBf16 = 0, kOutF32 = 1, kDeltaF32 = 2 };

// Warp 0's end of a tile: its sums plus those warps 1..3 left in `partial`, then
// the store (one rounding).
template <int MT, int V, int OUT, int PM>
__device__ __forceinline__ void expand_store(const LoraEntry& e, const int* rows, int count, int64_t n_out,
                                             int64_t base, bool vec, void* out, float (&acc)[MT][8],
                                             const float (*partial)[PM][kExpandCols]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= count) break;
#pragma unroll
    for (int w = 0; w < kExpandWarps - 1; ++w) {
      const float4* src = reinterpret_cast<const float4*>(&partial[w][m][lane * 8]);
      const float4 a = src[0], b = src[1];
      acc[m][0] += a.x; acc[m][1] += a.y; acc[m][2] += a.z; acc[m][3] += a.w;
      acc[m][4] += b.x; acc[m][5] += b.y; acc[m][6] += b.z; acc[m][7] += b.w;
    }
  }
  if (OUT == kDeltaF32) {
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m >= count) break;
      float* d = static_cast<float*>(out) + static_cast<int64_t>(rows[m]) * n_out;
      if (vec) {
        float4* dv = reinterpret_cast<float4*>(d + base + lane * 8);
        dv[0] = make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
        dv[1] = make_float4(acc[m][4], acc[m][5], acc[m][6], acc[m][7]);
      } else {
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const int64_t j = expand_col<V>(base, lane, c);
          if (j < n_out) d[j] = acc[m][c];
        }
      }
    }
    return;
  }
  constexpr bool F32 = OUT == kOutF32;
  const float* sc = e.dora_scale;
  const float* bias = e.dora_bias;
  if (!F32 && vec) {
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m >= count) break;
      uint16_t* o = static_cast<uint16_t*>(out) + static_cast<int64_t>(rows[m]) * n_out + base + lane * 8;
      Bf16x8 ov = load8_rw(o);
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        float v = ov.get(c) + acc[m][c];
        if (sc) v = sc[base + lane * 8 + c] * v + (bias ? bias[base + lane * 8 + c] : 0.0f);
        ov.set(c, v);
      }
      store8(o, ov);
    }
    return;
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= count) break;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const int64_t j = expand_col<V>(base, lane, c);
      if (j >= n_out) continue;
      const int64_t at = static_cast<int64_t>(rows[m]) * n_out + j;
      float v = (F32 ? static_cast<float*>(out)[at] : bf2f(static_cast<uint16_t*>(out)[at])) + acc[m][c];
      if (sc) v = sc[j] * v + (bias ? bias[j] : 0.0f);
      if (F32)
        static_cast<float*>(out)[at] = v;
      else
        static_cast<uint16_t*>(out)[at] = f2bf(v);
    }
  }
}

// One tile (or one pass of MT rows of it): rows[0 .. count), their t in ts[0 ..
// count). Every thread of the block calls it (it synchronizes the block once);
// partial may be refilled only after a further barrier.
template <int MT, int V, int OUT, int PM>
__device__ __forceinline__ void expand_tile(const LoraEntry& e, const int* rows, int count,
                                            const float (*ts)[kLoraMaxRank], int64_t n_out,
                                            int64_t base, void* out, float (*partial)[PM][kExpandCols]) {
  static_assert(MT <= PM, "partial holds PM rows");
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
  const bool vec = V == 8 && expand_col<V>(base, lane, 7) < n_out;
  if (vec) {
    // kU loads of B^T rows in flight per lane and round, unconditionally (ranks past
    // the end read the last row again and are skipped).
    constexpr int kU = MT <= 2 ? 8 : 4;
    const uint16_t* bt = e.bt + base + lane * 8;
    for (int k = warp; k < e.rank; k += kExpandWarps * kU) {
      Bf16x8 w[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u)
        w[u] = load_stream(bt + static_cast<int64_t>(min(k + kExpandWarps * u, e.rank - 1)) * n_out);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int kk = k + kExpandWarps * u;
        if (kk >= e.rank) break;  // uniform in the warp
        float b[8];
#pragma unroll
        for (int c = 0; c < 8; ++c) b[c] = w[u].get(c);
        fma_k(kk, b);
      }
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
  // Warps 1..3 hand their sums to warp 0 (one barrier), which finishes the rows.
  if (warp > 0) {
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      float4* dst = reinterpret_cast<float4*>(&partial[warp - 1][m][lane * 8]);
      dst[0] = make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
      dst[1] = make_float4(acc[m][4], acc[m][5], acc[m][6], acc[m][7]);
    }
  }
  __syncthreads();
  if (warp == 0) expand_store<MT, V, OUT, PM>(e, rows, count, n_out, base, vec, out, acc, partial);
}

// MAXM as for the shrink: 8 (a tile in one pass) or 1 (distinct adapters: ~half the
// registers, so twice the blocks per SM, and 8 loads in flight per lane).
template <int V, int OUT, int MAXM>
__global__ void __launch_bounds__(kExpandWarps * 32, MAXM < kLoraTileRows ? 8 : 4)
    expand_kernel(const float* __restrict__ t, int ldt, const LoraEntry* __restrict__ table,
                  LoraGroups g, void* out, int64_t n_out) {
  __shared__ float ts[kLoraTileRows][kLoraMaxRank];
  __shared__ __align__(16) float partial[kExpandWarps - 1][MAXM][kExpandCols];
  __shared__ int rows[kLoraTileRows];
  // The grouping and tables were complete before the shrink passed its wait.
  const int num_tiles = *g.num_tiles;
  const LoraTile tile = g.tiles[blockIdx.x];
  const bool valid = static_cast<int>(blockIdx.x) < num_tiles;
  LoraEntry e{};
  if (valid) {
    e = load_entry(table, tile.slot);
    if (threadIdx.x < kLoraTileRows)
      rows[threadIdx.x] = g.order[tile.begin + min(static_cast<int>(threadIdx.x), tile.count - 1)];
  }
  const int64_t base = static_cast<int64_t>(blockIdx.y) * kExpandCols;
  if (valid) {
    // B^T is the adapter's (never written): warm L2 with this block's rows while the
    // kernel before finishes (lanes 0-3 of each warp: a 128-byte line each, its ranks).
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t col = base + lane * 64;
    if (lane < kExpandCols / 64 && col < n_out)
      for (int k = warp; k < e.rank; k += kExpandWarps)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(e.bt + static_cast<int64_t>(k) * n_out + col));
  }
  grid_dependency_wait();  // t (the shrink) and out (the base product) are complete
  if (!valid || e.rank == 0) return;
  for (int i = threadIdx.x; i < kLoraTileRows * e.rank; i += kExpandWarps * 32) {
    const int m = i / e.rank, k = i % e.rank;
    ts[m][k] = m < tile.count ? t[static_cast<int64_t>(tile.begin + m) * ldt + k] : 0.0f;
  }
  __syncthreads();
  if constexpr (MAXM < kLoraTileRows) {
    for (int c0 = 0; c0 < tile.count; c0 += MAXM) {  // tile.count is uniform
      expand_tile<MAXM, V, OUT, MAXM>(e, rows + c0, min(MAXM, tile.count - c0), ts + c0, n_out, base, out,
                                      partial);
      __syncthreads();  // partial is refilled by the next pass
    }
  } else {
    switch (tile.count) {
      case 1: expand_tile<1, V, OUT, MAXM>(e, rows, 1, ts, n_out, base, out, partial); break;
      case 2: expand_tile<2, V, OUT, MAXM>(e, rows, 2, ts, n_out, base, out, partial); break;
      case 3:
      case 4: expand_tile<4, V, OUT, MAXM>(e, rows, tile.count, ts, n_out, base, out, partial); break;
      default: expand_tile<8, V, OUT, MAXM>(e, rows, tile.count, ts, n_out, base, out, partial); break;
    }
  }
}

// ------------------------------------------------------------------- merge ---

constexpr int kMergeThreads = 256;

// lora_merge, any shape: one block per (row, 2048 columns).
template <bool F32>
__global__ void merge_kernel(void* __restrict__ out, const float* __restrict__ delta,
                             const int32_t* __restrict__ slots, int num_slots, int64_t n,
                             const LoraEntry* __restrict__ table) {
  const int64_t row = blockIdx.y;
  const int s = slots[row];
  if (s < 0 || s >= num_slots) return;
  const LoraEntry& e = table[s];
  if (e.rank == 0) return;
  const float* sc = e.dora_scale;
  const float* bias = e.dora_bias;
  const int64_t end = min(n, static_cast<int64_t>(blockIdx.x + 1) * 2048);
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * 2048 + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t i = row * n + j;
    float v = (F32 ? static_cast<float*>(out)[i] : bf2f(static_cast<uint16_t*>(out)[i])) + delta[i];
    if (sc) v = sc[j] * v + (bias ? bias[j] : 0.0f);
    if (F32)
      static_cast<float*>(out)[i] = v;
    else
      static_cast<uint16_t*>(out)[i] = f2bf(v);
  }
}

// lora_merge when n % 8 == 0 and out and delta are 16-byte aligned: one thread per
// 8 columns of a row, 16-byte accesses. The row's slot and table entry are read
// before the wait for the base product (programmatic dependent launch: they were
// written before it started), out and delta after it, together: one round trip on
// the critical path instead of a chain of 8 two-byte loads.
template <bool F32>
__global__ void __launch_bounds__(kMergeThreads)
    merge_vec_kernel(void* __restrict__ out, const float* __restrict__ delta, const int32_t* __restrict__ slots,
                     int num_slots, int64_t n, const LoraEntry* __restrict__ table) {
  const int64_t row = blockIdx.y;
  const int64_t j = (static_cast<int64_t>(blockIdx.x) * kMergeThreads + threadIdx.x) * 8;
  const int s = __ldg(slots + row);
  int rank = 0;
  const float* sc = nullptr;
  const float* bias = nullptr;
  if (s >= 0 && s < num_slots) {
    const LoraEntry* e = table + s;
    const ulonglong2 dora = __ldg(reinterpret_cast<const ulonglong2*>(e) + 1);  // dora_scale, dora_bias
    rank = __ldg(&e->rank);
    sc = reinterpret_cast<const float*>(dora.x);
    bias = reinterpret_cast<const float*>(dora.y);
  }
  // Every block waits (none returns before), so that the grid completes only after
  // the base product: the kernel after it relies on that.
  grid_dependency_wait();
  if (rank == 0 || j >= n) return;
  const int64_t i = row * n + j;
  const float4 d0 = __ldg(reinterpret_cast<const float4*>(delta + i));
  const float4 d1 = __ldg(reinterpret_cast<const float4*>(delta + i) + 1);
  float v[8];
  Bf16x8 ov;
  if constexpr (F32) {
    const float4 o0 = reinterpret_cast<const float4*>(static_cast<float*>(out) + i)[0];
    const float4 o1 = reinterpret_cast<const float4*>(static_cast<float*>(out) + i)[1];
    v[0] = o0.x; v[1] = o0.y; v[2] = o0.z; v[3] = o0.w;
    v[4] = o1.x; v[5] = o1.y; v[6] = o1.z; v[7] = o1.w;
  } else {
    ov = load8_rw(static_cast<uint16_t*>(out) + i);
#pragma unroll
    for (int c = 0; c < 8; ++c) v[c] = ov.get(c);
  }
  v[0] += d0.x; v[1] += d0.y; v[2] += d0.z; v[3] += d0.w;
  v[4] += d1.x; v[5] += d1.y; v[6] += d1.z; v[7] += d1.w;
  if (sc) {
#pragma unroll
    for (int c = 0; c < 8; ++c) v[c] = __ldg(sc + j + c) * v[c] + (bias ? __ldg(bias + j + c) : 0.0f);
  }
  if constexpr (F32) {
    float4* o = reinterpret_cast<float4*>(static_cast<float*>(out) + i);
    o[0] = make_float4(v[0], v[1], v[2], v[3]);
    o[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) ov.set(c, v[c]);
    store8(static_cast<uint16_t*>(out) + i, ov);
  }
}

int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : fallback;
}
// lora_set_pdl (benchmark ablation); BANYAN_PDL=0 or BANYAN_LORA_PDL=0 turn it off.
bool g_pdl = env_int("BANYAN_LORA_PDL", 1) != 0;
// Every shrink waits for the kernel before it (griddepcontrol.wait) before it reads
// x. Reading x first relied on that kernel having waited for x's producer before it
// let the shrink start; cuBLASLt's GEMMs (and our element-wise kernels) let
// dependents start before that, and on the H100 the shrink then read stale rows:
// peft parity fell to 35 of 80 requests (79 of 80 with the wait, or without PDL).
// BANYAN_LORA_SHRINK_WAIT=0 restores the early read (benchmark A/B only).
bool g_shrink_wait = env_int("BANYAN_LORA_SHRINK_WAIT", 1) != 0;

// The shared chained launch (common.cuh), or a plain one.
template <class... Params, class... Args>
void launch_kernel(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                   Args... args) {
  launch_maybe_chained(pdl && pdl_enabled(), "lora kernel", kernel, grid, block, 0, stream, args...);
}
template <class... Params, class... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args... args) {
  launch_kernel(g_pdl, kernel, grid, block, stream, args...);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

unsigned grid_tiles(int64_t max_tiles) { return static_cast<unsigned>(max_tiles > 0 ? max_tiles : 1); }

bool g_distinct_variant = true;  // lora_set_distinct_variant
int g_merge_mode = 1;            // lora_set_merge_mode (2: with PDL, slower at a8/a64)
int64_t g_shrink_features[2] = {2048, 1024};  // lora_set_shrink_features: lean, one-pass

// The register-lean variant (MAXM 1) when the caller expects tiles of one row.
bool lean(int tile_rows) { return g_distinct_variant && tile_rows <= 1; }

}  // namespace

void lora_set_pdl(bool on) { g_pdl = on; }
void lora_set_distinct_variant(bool on) { g_distinct_variant = on; }
void lora_set_merge_mode(int mode) { g_merge_mode = mode; }
void lora_set_shrink_features(int lean, int one_pass) {
  g_shrink_features[0] = lean > 0 ? lean : 2048;
  g_shrink_features[1] = one_pass > 0 ? one_pass : 1024;
}

void lora_shrink(const uint16_t* x, int64_t rows, int64_t in, const LoraEntry* table,
                 int32_t max_rank, const LoraGroups& g, int64_t max_tiles, float* t,
                 bool wait_first, cudaStream_t stream, int tile_rows) {
  if (rows <= 0 || max_rank <= 0) return;
  wait_first = wait_first || g_shrink_wait;
  // Warps per rank: enough that each reads ~1k features (16-byte loads, 4 per lane:
  // one round of loads; the small tiles of a decode step are latency-bound).
  const bool vec = in % 8 == 0 && aligned16(x);  // A rows: 64-byte aligned images, in % 8 == 0
  const int64_t features = g_shrink_features[vec && lean(tile_rows) ? 0 : 1];
  int ksplit = 1;
  while (ksplit < kShrinkWarps && in > features * ksplit) ksplit *= 2;
  const int per_block = kShrinkWarps / ksplit;
  const dim3 grid(grid_tiles(max_tiles), static_cast<unsigned>((max_rank + per_block - 1) / per_block));
  const int ldt = max_rank;
  const dim3 block(kShrinkWarps * 32);
  if (vec && lean(tile_rows))
    launch_pdl(shrink_kernel<8, 1>, grid, block, stream, x, in, table, g, ksplit, ldt, t, wait_first);
  else if (vec)
    launch_pdl(shrink_kernel<8, kLoraTileRows>, grid, block, stream, x, in, table, g, ksplit, ldt, t, wait_first);
  else
    launch_pdl(shrink_kernel<1, kLoraTileRows>, grid, block, stream, x, in, table, g, ksplit, ldt, t, wait_first);
}

namespace {
template <int OUT>
void launch_expand(const float* t, int32_t max_rank, const LoraEntry* table, const LoraGroups& g,
                   int64_t max_tiles, void* out, int64_t n_out, bool vec, int tile_rows, cudaStream_t stream) {
  const dim3 grid(grid_tiles(max_tiles), static_cast<unsigned>((n_out + kExpandCols - 1) / kExpandCols));
  const dim3 block(kExpandWarps * 32);
  if (vec && lean(tile_rows))
    launch_pdl(expand_kernel<8, OUT, 1>, grid, block, stream, t, max_rank, table, g, out, n_out);
  else if (vec)
    launch_pdl(expand_kernel<8, OUT, kLoraTileRows>, grid, block, stream, t, max_rank, table, g, out, n_out);
  else
    launch_pdl(expand_kernel<1, OUT, kLoraTileRows>, grid, block, stream, t, max_rank, table, g, out, n_out);
}
}  // namespace

void lora_expand(const float* t, int64_t rows, int32_t max_rank, const LoraEntry* table,
                 const LoraGroups& g, int64_t max_tiles, void* out, bool out_f32, int64_t n_out,
                 cudaStream_t stream, int tile_rows) {
  if (rows <= 0 || max_rank <= 0) return;
  // B^T rows: 64-byte aligned images, n_out % 8 == 0; out rows 16-byte aligned.
  const bool vec = n_out % 8 == 0 && aligned16(out);
  if (out_f32)
    launch_expand<kOutF32>(t, max_rank, table, g, max_tiles, out, n_out, vec, tile_rows, stream);
  else
    launch_expand<kOutBf16>(t, max_rank, table, g, max_tiles, out, n_out, vec, tile_rows, stream);
}

void lora_expand_delta(const float* t, int64_t rows, int32_t max_rank, const LoraEntry* table,
                       const LoraGroups& g, int64_t max_tiles, float* delta, int64_t n_out,
                       cudaStream_t stream, int tile_rows) {
  if (rows <= 0 || max_rank <= 0) return;
  const bool vec = n_out % 8 == 0 && aligned16(delta);
  launch_expand<kDeltaF32>(t, max_rank, table, g, max_tiles, delta, n_out, vec, tile_rows, stream);
}

void lora_merge(void* out, bool out_f32, const float* delta, const int32_t* slots, int64_t rows,
                int32_t num_slots, int64_t n_out, const LoraEntry* table, cudaStream_t stream) {
  if (rows <= 0 || n_out <= 0) return;
  const bool vec = g_merge_mode > 0 && n_out % 8 == 0 && aligned16(out) && aligned16(delta);
  if (!vec) {
    const dim3 grid(static_cast<unsigned>((n_out + 2047) / 2048), static_cast<unsigned>(rows));
    if (out_f32)
      merge_kernel<true><<<grid, kMergeThreads, 0, stream>>>(out, delta, slots, num_slots, n_out, table);
    else
      merge_kernel<false><<<grid, kMergeThreads, 0, stream>>>(out, delta, slots, num_slots, n_out, table);
    BANYAN_CUDA_CHECK_LAUNCH("lora merge_kernel");
    return;
  }
  const dim3 grid(static_cast<unsigned>((n_out / 8 + kMergeThreads - 1) / kMergeThreads), static_cast<unsigned>(rows));
  const bool pdl = g_pdl && g_merge_mode >= 2;
  if (out_f32)
    launch_kernel(pdl, merge_vec_kernel<true>, grid, dim3(kMergeThreads), stream, out, delta, slots, num_slots,
                  n_out, table);
  else
    launch_kernel(pdl, merge_vec_kernel<false>, grid, dim3(kMergeThreads), stream, out, delta, slots, num_slots,
                  n_out, table);
}

}  // namespace banyan::kernels::cuda
