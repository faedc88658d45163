// Quantized GEMV and dequantization (quant_gemm.h).
//
// GEMV (1 to 4 rows of x). A warp owns R output features (R = 4 for one or two rows of
// x, 2 beyond) and streams their packed rows side by side: each lane loads the
// 16-byte vectors at the same column of the R rows (32 int4 / lut4 values or 16 int8 /
// fp8 values per vector), U vectors deep (R * U = 8 loads of 16 bytes in flight per
// lane), so that one conversion of the activations serves R rows. Narrow matrices
// split the row over up to 8 warps of a block (split-K, reduced in shared memory),
// so that every SM has bytes to stream. Scales and zero points are read once per
// vector (one group or block), not per value; products are accumulated in f32 and
// reduced with warp shuffles. Every weight is converted exactly (the products
// equal those of the plugin's dequantized weights):
//  - int4: q - z through the 2^23 trick: the nibble at bits s..s+3 (s <= 16) is or-ed
//    into the float 2^23 (one LOP3: 2^23 + q * 2^s), and fma(that, 2^-s, -(2^(23-s) +
//    z)) gives q - z exactly; the three high nibbles after one shift. The group's scale
//    multiplies the vector's partial sum.
//  - lut4 (NF4): code[q] from a 16-float table in shared memory (16 banks, no
//    conflicts), the nibble's byte offset made with one shift and one LOP3 per 4
//    values; the block's absmax (double quantization: code2[i] * scales2 + offset)
//    multiplies the vector's partial sum.
//  - int8: q + 128 (one XOR per 4 values) moved into the float 2^23 with one PRMT,
//    minus 2^23 + 128; the row's scale after the reduction.
//  - fp8: cvt e4m3x2 -> f16x2 (exact), widened; the tensor's or row's scale after.
// Activations (bf16) are read through L1 with 16-byte loads and widened once per R
// rows; the weight loads bypass L1.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/quant_gemm.h"

#include "kernels/cuda/cuda_resources.h"

#include <banyan/error.h>
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace banyan::kernels::cuda {
namespace {

// BanyanQuantLayout (abi.h is C; the values are fixed by the ABI).
constexpr int kInt8 = 0, kInt4 = 1, kLut4 = 2, kFp8 = 3;
constexpr int kWarps = 8, kLoadsInFlight = 8;
// The batch-1 GEMV variant per layout (int8, int4, lut4, fp8; int4 in the tensor-core
// layout: kDefaultMmaVariant): 0 batches of 8 loads per lane, 1 and 2 pipelined stages
// of R and 2R loads (see qgemv_kernel); tensor cores: 0 batches of 4 chunks per lane,
// 1 and 2 pipelined stages of 4 and 2, 3 batches of 8; every layout: 4 a per-lane ring
// of cp.async stages in shared memory over a grid of one resident wave
// (qgemv_ring_kernel, qgemv_int4_mma_ring_kernel; measured slower than 0 on the H100,
// bench/quant/README.md), 5 variant 0 over the ring's grid, 6 the ring over variant 0's
// grid, 7 variant 0 compiled for three blocks per SM (80 registers); int4 on tensor
// cores: 8 the ring of weights only (scales and zero points prefetched into L2, read
// with __ldg). Defaults from the H100 run of bench/quant/README.md (2026-11-25c):
// variant 5 for int8, lut4 and fp8 (7-9% faster per layer than 0; the ring's grid:
// one resident wave, fewer warps per row on the small and the down matrices); int4
// keeps 0 (5 measured equal in the tensor-core layout, not measured on CUDA cores).
// QuantWeightDev::variant overrides it.
constexpr int kDefaultVariant[4] = {5, 0, 5, 5};
constexpr int kDefaultMmaVariant = 0;

constexpr int values_per_vector(int L) { return (L == kInt4 || L == kLut4) ? 32 : 16; }
constexpr int rows_per_warp(int MT) { return MT == 1 ? 4 : 2; }

__device__ __forceinline__ uint4 load_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float e4m3_half(uint32_t b) {  // 2^-8 * value, exact
  return __half2float(__ushort_as_half(static_cast<unsigned short>(((b & 0x80u) << 8) | ((b & 0x7fu) << 7))));
}

// Per (row, vector) dequantization parameters: int4 the group's scale and -(2^23 + z);
// lut4 the block's absmax; unused for int8 / fp8.
struct VecParam {
  float scale = 1.0f, c0 = 0.0f;
};

template <int L>
__device__ __forceinline__ VecParam vec_param(const QuantWeightDev& w, int64_t row, int64_t k0, int gs_shift,
                                              int gs2_shift, bool blocks_in_rows) {
  VecParam p;
  if constexpr (L == kInt4) {
    const int64_t ng = w.cols / w.group_size;
    const int64_t g = row * ng + (gs_shift >= 0 ? (k0 >> gs_shift) : k0 / w.group_size);
    p.scale = __ldg(static_cast<const float*>(w.scales) + g);
    p.c0 = -__uint_as_float(0x4b000000u | __ldg(w.zeros + g));  // -(2^23 + z)
  } else if constexpr (L == kLut4) {
    int64_t b;
    if (blocks_in_rows)
      b = row * (w.cols / w.group_size) + (gs_shift >= 0 ? (k0 >> gs_shift) : k0 / w.group_size);
    else
      b = (row * w.cols + k0) / w.group_size;
    if (w.group_size2 > 0) {
      const int64_t b2 = gs2_shift >= 0 ? (b >> gs2_shift) : b / w.group_size2;
      p.scale = __ldg(w.code2 + __ldg(static_cast<const uint8_t*>(w.scales) + b)) * __ldg(w.scales2 + b2) + w.offset;
    }
    else
      p.scale = __ldg(static_cast<const float*>(w.scales) + b);
  }
  return p;
}

// The 8 values of chunk c of a 16-byte weight vector (values 8c .. 8c + 7), exact.
template <int L>
__device__ __forceinline__ void dequant8(const uint4& v, int c, const VecParam& p, const float* code,
                                         float (&f)[8]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
  if constexpr (L == kInt4) {  // byte j: value 2j low nibble, 2j + 1 high: nibble i at bits 4i
    const uint32_t wd = words[c], hi = wd >> 12;
    const float c0 = p.c0;                                            // -(2^23 + z)
    const float c4 = c0 + 7864320.0f, c8 = c0 + 8355840.0f;           // -(2^19 + z), -(2^15 + z)
    const float c12 = c0 + 8386560.0f, c16 = c0 + 8388480.0f;         // -(2^11 + z), -(2^7 + z)
    f[0] = __uint_as_float((wd & 0xfu) | 0x4b000000u) + c0;
    f[1] = fmaf(__uint_as_float((wd & 0xf0u) | 0x4b000000u), 0x1p-4f, c4);
    f[2] = fmaf(__uint_as_float((wd & 0xf00u) | 0x4b000000u), 0x1p-8f, c8);
    f[3] = fmaf(__uint_as_float((wd & 0xf000u) | 0x4b000000u), 0x1p-12f, c12);
    f[4] = fmaf(__uint_as_float((wd & 0xf0000u) | 0x4b000000u), 0x1p-16f, c16);
    f[5] = fmaf(__uint_as_float((hi & 0xf00u) | 0x4b000000u), 0x1p-8f, c8);
    f[6] = fmaf(__uint_as_float((hi & 0xf000u) | 0x4b000000u), 0x1p-12f, c12);
    f[7] = fmaf(__uint_as_float((hi & 0xf0000u) | 0x4b000000u), 0x1p-16f, c16);
  } else if constexpr (L == kLut4) {  // byte j: value 2j high nibble, 2j + 1 low
    const uint32_t wd = words[c];
    const uint32_t lo4 = (wd << 2) & 0x3c3c3c3cu, hi4 = (wd >> 2) & 0x3c3c3c3cu;  // byte offsets
    const char* base = reinterpret_cast<const char*>(code);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      f[2 * j] = *reinterpret_cast<const float*>(base + ((hi4 >> (8 * j)) & 0xffu));
      f[2 * j + 1] = *reinterpret_cast<const float*>(base + ((lo4 >> (8 * j)) & 0xffu));
    }
  } else if constexpr (L == kInt8) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t u = words[2 * c + h] ^ 0x80808080u;  // q + 128 per byte
#pragma unroll
      for (int j = 0; j < 4; ++j)
        f[4 * h + j] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7540u + j)) - 8388736.0f;
    }
  } else {  // fp8 e4m3fn: pairs through cvt.rn.f16x2.e4m3x2 (exact)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t wd = words[2 * c + h];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2(
            static_cast<__nv_fp8x2_storage_t>((wd >> (16 * j)) & 0xffffu), __NV_E4M3);
        f[4 * h + 2 * j] = __half2float(__ushort_as_half(r.x));
        f[4 * h + 2 * j + 1] = __half2float(__ushort_as_half(r.y));
      }
    }
  }
}

// One column of R weight vectors (values k0 .. k0 + EPV - 1 of each row) times MT rows
// of x, added to acc.
template <int L, int MT, int R>
__device__ __forceinline__ void consume(const uint4 (&wv)[R], const VecParam (&p)[R],
                                        const uint16_t* __restrict__ x, int64_t K, int64_t k0,
                                        const float* code, float (&acc)[R][MT]) {
  constexpr int EPV = values_per_vector(L);
  constexpr bool kScaled = L == kInt4 || L == kLut4;  // a scale per vector
  float part[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) part[r][m] = 0.0f;
#pragma unroll
  for (int c = 0; c < EPV / 8; ++c) {
    Bf16x8 xv[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) xv[m] = load8(x + m * K + k0 + 8 * c);
    float xf[MT][8];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int j = 0; j < 8; ++j) xf[m][j] = xv[m].get(j);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float f[8];
      dequant8<L>(wv[r], c, p[r], code, f);
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int j = 0; j < 8; ++j) part[r][m] = fmaf(f[j], xf[m][j], part[r][m]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = kScaled ? fmaf(p[r].scale, part[r][m], acc[r][m]) : acc[r][m] + part[r][m];
}

// U vectors of each of the R rows, starting at vector v with stride `stride`.
template <int L, int MT, int R, int U>
__device__ __forceinline__ void step(const QuantWeightDev& w, const uint8_t* const (&wr)[R],
                                     const int64_t (&rows)[R], int64_t v, int64_t stride,
                                     const uint16_t* __restrict__ x, const float* code, int gs_shift,
                                     int gs2_shift, bool blocks_in_rows, float (&acc)[R][MT]) {
  constexpr int EPV = values_per_vector(L);
  uint4 wv[U][R];
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int r = 0; r < R; ++r) wv[u][r] = load_stream16(wr[r] + (v + stride * u) * 16);
  VecParam p[U][R];
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int r = 0; r < R; ++r) p[u][r] = vec_param<L>(w, rows[r], (v + stride * u) * EPV, gs_shift, gs2_shift, blocks_in_rows);
#pragma unroll
  for (int u = 0; u < U; ++u) consume<L, MT, R>(wv[u], p[u], x, w.cols, (v + stride * u) * EPV, code, acc);
}

// Software-pipelined streaming (variants 1 and 2): a stage is U vectors of each of the
// R rows with their parameters; the next stage's loads are issued before the current
// one is consumed, so that loads stay in flight while the lane computes. Vectors past
// the row's end are neither read nor consumed.
template <int L, int R, int U>
struct Stage {
  uint4 wv[U][R];
  VecParam p[U][R];
};

template <int L, int R, int U>
__device__ __forceinline__ void load_stage(Stage<L, R, U>& st, const QuantWeightDev& w, const uint8_t* const (&wr)[R],
                                           const int64_t (&rows)[R], int64_t v, int64_t stride, int64_t vecs,
                                           int gs_shift, int gs2_shift, bool blocks_in_rows) {
  constexpr int EPV = values_per_vector(L);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t vu = v + stride * u;
#pragma unroll
    for (int r = 0; r < R; ++r) st.wv[u][r] = vu < vecs ? load_stream16(wr[r] + vu * 16) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t vu = v + stride * u;
#pragma unroll
    for (int r = 0; r < R; ++r)
      st.p[u][r] = vec_param<L>(w, rows[r], (vu < vecs ? vu : 0) * EPV, gs_shift, gs2_shift, blocks_in_rows);
  }
}

template <int L, int MT, int R, int U>
__device__ __forceinline__ void consume_stage(const Stage<L, R, U>& st, int64_t v, int64_t stride, int64_t vecs,
                                              const uint16_t* __restrict__ x, int64_t K, const float* code,
                                              float (&acc)[R][MT]) {
  constexpr int EPV = values_per_vector(L);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t vu = v + stride * u;
    if (vu < vecs) consume<L, MT, R>(st.wv[u], st.p[u], x, K, vu * EPV, code, acc);
  }
}

// MT: activation rows (x holds exactly MT rows). A block of 8 warps serves
// 8 / ksplit groups of R output features; the ksplit warps of one group split the row.
template <int L, int MT, int V>
__global__ void __launch_bounds__(kWarps * 32, V == 7 ? 3 : 2)  // 7: variant 0, three blocks per SM
    qgemv_kernel(QuantWeightDev w, const uint16_t* __restrict__ x, void* out, bool out_f32,
                 const float* __restrict__ bias, bool accumulate, int ksplit, int gs_shift,
                 int gs2_shift, bool blocks_in_rows) {
  constexpr int R = rows_per_warp(MT), EPV = values_per_vector(L), U = kLoadsInFlight / R;
  __shared__ float partial[kWarps][R * MT];
  __shared__ float code[16];
  if constexpr (L == kLut4) {
    if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
    __syncthreads();
  }
  const int64_t N = w.rows, K = w.cols;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % ksplit;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit) * R;
  const uint8_t* wr[R];
  int64_t rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {  // rows past N repeat the last one (read, never written)
    rows[r] = row0 + r < N ? row0 + r : N - 1;
    wr[r] = static_cast<const uint8_t*>(w.qweight) + rows[r] * (K * (EPV == 32 ? 1 : 2) / 2);
  }
  float acc[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;
  if (row0 < N) {
    const int64_t vecs = K / EPV, stride = 32 * ksplit;
    int64_t v = part * 32 + lane;
    if constexpr (V == 0 || V == 7) {  // batches of R * U vectors, no overlap
      for (; v + stride * (U - 1) < vecs; v += stride * U)
        step<L, MT, R, U>(w, wr, rows, v, stride, x, code, gs_shift, gs2_shift, blocks_in_rows, acc);
      for (; v < vecs; v += stride)
        step<L, MT, R, 1>(w, wr, rows, v, stride, x, code, gs_shift, gs2_shift, blocks_in_rows, acc);
    } else {  // pipelined stages of R * V vectors
      Stage<L, R, V> cur, nxt;
      load_stage(cur, w, wr, rows, v, stride, vecs, gs_shift, gs2_shift, blocks_in_rows);
      for (; v < vecs; v += stride * V) {
        load_stage(nxt, w, wr, rows, v + stride * V, stride, vecs, gs_shift, gs2_shift, blocks_in_rows);
        consume_stage<L, MT, R, V>(cur, v, stride, vecs, x, K, code, acc);
        cur = nxt;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = warp_sum(acc[r][m]);
  if (ksplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m) partial[warp][r * MT + m] = acc[r][m];
    __syncthreads();
    if (lane == 0 && part == 0)
      for (int p = 1; p < ksplit; ++p)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int m = 0; m < MT; ++m) acc[r][m] += partial[warp + p][r * MT + m];
  }
  if (lane == 0 && part == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = row0 + r;
      if (row >= N) break;
      float scale = 1.0f;
      if (L == kInt8) scale = static_cast<const float*>(w.scales)[row];
      if (L == kFp8) scale = static_cast<const float*>(w.scales)[w.per_row_scale ? row : 0];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const int64_t i = m * N + row;
        const float res = acc[r][m] * scale + (bias ? bias[row] : 0.0f);
        if (out_f32) {
          float* o = static_cast<float*>(out);
          o[i] = accumulate ? o[i] + res : res;
        } else {
          uint16_t* o = static_cast<uint16_t*>(out);
          o[i] = f2bf(accumulate ? bf2f(o[i]) + res : res);
        }
      }
    }
  }
}

// log2(n) where n is a power of two, else -1.
int log2_or_minus1(int64_t n) {
  for (int s = 0; s < 31; ++s)
    if (int64_t{1} << s == n) return s;
  return -1;
}

int ring_ksplit(int64_t groups, int64_t vecs, int num_sms);
int mma_ring_ksplit(int64_t tiles, int64_t chunks, int num_sms);

// one_wave: the ring's grid (ring_ksplit) instead of about 32 warps per SM (variants 5, 6).
template <int L, int MT, int V>
void launch(const QuantWeightDev& w, const uint16_t* x, void* out, bool out_f32, const float* bias,
            bool accumulate, int num_sms, cudaStream_t stream, bool one_wave = false) {
  constexpr int R = rows_per_warp(MT), EPV = values_per_vector(L);
  const int64_t N = w.rows, K = w.cols, groups = (N + R - 1) / R, vecs = K / EPV;
  // Split rows across warps until the grid has about 32 warps per SM to stream with,
  // keeping two vectors per lane.
  int ksplit = 1;
  while (ksplit < kWarps && groups * ksplit < 32LL * num_sms && vecs >= 64LL * ksplit) ksplit *= 2;
  if (one_wave) ksplit = ring_ksplit(groups, vecs, num_sms);
  const int gs_shift = log2_or_minus1(w.group_size), gs2_shift = log2_or_minus1(w.group_size2);
  const bool blocks_in_rows = (L == kInt4) || (w.group_size > 0 && K % w.group_size == 0);
  qgemv_kernel<L, MT, V><<<blocks_for(groups, kWarps / ksplit, int64_t{1} << 31), kWarps * 32, 0, stream>>>(
      w, x, out, out_f32, bias, accumulate, ksplit, gs_shift, gs2_shift, blocks_in_rows);
  BANYAN_CUDA_CHECK_LAUNCH("quant_gemv");
}

// --- Variant 4: a per-lane ring of cp.async stages in shared memory ----------------
// The same work split (R rows per warp, ksplit warps per row group), but the weight
// vectors are copied with cp.async into the lane's own slots of a ring of S stages
// (R vectors each) in shared memory: S - 1 stages stay in flight while the lane
// converts one, without holding them in registers (S * R * 16 bytes per lane: 96 KiB
// per block, two blocks per SM, up to 160 KiB of weights in flight per SM). lut4 copies
// the block's f32 absmax beside each vector. Only the lane that issued a copy reads its
// slot (cp.async.wait_group makes the lane's own copies visible to it), so the ring
// needs no barrier. The grid is sized to one resident wave (ring_ksplit).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

constexpr int kThreads = kWarps * 32;
// Stages of R vectors: 96 KiB of vectors per block (lut4: 80 KiB + its f32 absmax).
constexpr int ring_stages(int L, int R) { return (L == kLut4 ? 5 : 6) * 4 / R; }
template <int L, int R>
constexpr size_t ring_bytes() {
  return static_cast<size_t>(ring_stages(L, R)) * R * kThreads * (16 + (L == kLut4 ? 4 : 0));
}

// Warps per row group (split-K inside a block, reduced in shared memory): the smallest
// power of two up to 8 that fills one resident wave (two blocks of 8 warps per SM)
// while each lane keeps at least two vectors per row.
int ring_ksplit(int64_t groups, int64_t vecs, int num_sms) {
  int ksplit = 1;
  while (ksplit < kWarps && groups * ksplit * 2 <= int64_t{2} * kWarps * num_sms && vecs >= int64_t{64} * ksplit * 2)
    ksplit *= 2;
  return ksplit;
}

template <int L, int MT>
__global__ void __launch_bounds__(kThreads, 2)
    qgemv_ring_kernel(QuantWeightDev w, const uint16_t* __restrict__ x, void* out, bool out_f32,
                      const float* __restrict__ bias, bool accumulate, int ksplit, int gs_shift, int gs2_shift,
                      bool blocks_in_rows) {
  constexpr int R = rows_per_warp(MT), EPV = values_per_vector(L), S = ring_stages(L, R);
  extern __shared__ uint4 ring[];  // [S][R][kThreads] vectors, then (lut4) [S][R][kThreads] floats
  float* pring = reinterpret_cast<float*>(ring + S * R * kThreads);
  __shared__ float partial[kWarps][R * MT];
  __shared__ float code[16];
  if constexpr (L == kLut4) {
    if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
    __syncthreads();
  }
  const int64_t N = w.rows, K = w.cols;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, part = warp % ksplit;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit) * R;
  const uint8_t* wr[R];
  int64_t rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {  // rows past N repeat the last one (read, never written)
    rows[r] = row0 + r < N ? row0 + r : N - 1;
    wr[r] = static_cast<const uint8_t*>(w.qweight) + rows[r] * (K * (EPV == 32 ? 1 : 2) / 2);
  }
  float acc[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;
  if (row0 < N) {
    const int64_t vecs = K / EPV, stride = 32 * ksplit, v0 = part * 32 + lane;
    const int64_t nb = v0 < vecs ? (vecs - v0 + stride - 1) / stride : 0;  // this lane's vectors per row
    // Stage b: vector v0 + b * stride of each row (nothing past the lane's last).
    auto issue = [&](int64_t b) {
      if (b < nb) {
        const int s = static_cast<int>(b % S);
        const int64_t vb = v0 + b * stride;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          cp_async16(&ring[(s * R + r) * kThreads + tid], wr[r] + vb * 16);
          if constexpr (L == kLut4) {
            int64_t blk;
            if (blocks_in_rows)
              blk = rows[r] * (K / w.group_size) + (gs_shift >= 0 ? ((vb * EPV) >> gs_shift) : vb * EPV / w.group_size);
            else
              blk = (rows[r] * K + vb * EPV) / w.group_size;
            cp_async4(&pring[(s * R + r) * kThreads + tid], static_cast<const float*>(w.scales) + blk);
          }
        }
      }
      cp_async_commit();  // one group per stage, empty past the end: the count stays uniform
    };
#pragma unroll
    for (int b = 0; b < S - 1; ++b) issue(b);
    for (int64_t b = 0; b < nb; ++b) {
      issue(b + S - 1);      // into the slot consumed at b - 1 (by this lane)
      cp_async_wait<S - 1>();  // stage b has landed
      const int s = static_cast<int>(b % S);
      const int64_t vb = v0 + b * stride;
      uint4 wv[R];
      VecParam p[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        wv[r] = ring[(s * R + r) * kThreads + tid];
        if constexpr (L == kLut4) p[r].scale = pring[(s * R + r) * kThreads + tid];
        else p[r] = vec_param<L>(w, rows[r], vb * EPV, gs_shift, gs2_shift, blocks_in_rows);
      }
      consume<L, MT, R>(wv, p, x, K, vb * EPV, code, acc);
    }
    cp_async_wait<0>();
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = warp_sum(acc[r][m]);
  if (ksplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m) partial[warp][r * MT + m] = acc[r][m];
    __syncthreads();
    if (lane == 0 && part == 0)
      for (int q = 1; q < ksplit; ++q)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int m = 0; m < MT; ++m) acc[r][m] += partial[warp + q][r * MT + m];
  }
  if (lane == 0 && part == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = row0 + r;
      if (row >= N) break;
      float scale = 1.0f;
      if (L == kInt8) scale = static_cast<const float*>(w.scales)[row];
      if (L == kFp8) scale = static_cast<const float*>(w.scales)[w.per_row_scale ? row : 0];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const int64_t i = m * N + row;
        const float res = acc[r][m] * scale + (bias ? bias[row] : 0.0f);
        if (out_f32) {
          float* o = static_cast<float*>(out);
          o[i] = accumulate ? o[i] + res : res;
        } else {
          uint16_t* o = static_cast<uint16_t*>(out);
          o[i] = f2bf(accumulate ? bf2f(o[i]) + res : res);
        }
      }
    }
  }
}

template <int L, int MT>
void launch_ring(const QuantWeightDev& w, const uint16_t* x, void* out, bool out_f32, const float* bias,
                 bool accumulate, int num_sms, cudaStream_t stream, bool one_wave = true) {
  constexpr int R = rows_per_warp(MT), EPV = values_per_vector(L);
  const int64_t N = w.rows, K = w.cols, groups = (N + R - 1) / R, vecs = K / EPV;
  int ksplit = ring_ksplit(groups, vecs, num_sms);
  if (!one_wave) {  // variant 6: launch()'s rule
    ksplit = 1;
    while (ksplit < kWarps && groups * ksplit < 32LL * num_sms && vecs >= 64LL * ksplit) ksplit *= 2;
  }
  const int gs_shift = log2_or_minus1(w.group_size), gs2_shift = log2_or_minus1(w.group_size2);
  const bool blocks_in_rows = (L == kInt4) || (w.group_size > 0 && K % w.group_size == 0);
  constexpr size_t smem = ring_bytes<L, R>();
  static const cudaError_t allowed = cudaFuncSetAttribute(  // once per kernel: past 48 KiB
      qgemv_ring_kernel<L, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  BANYAN_CUDA_CHECK(allowed);
  qgemv_ring_kernel<L, MT><<<blocks_for(groups, kWarps / ksplit, int64_t{1} << 31), kThreads, smem, stream>>>(
      w, x, out, out_f32, bias, accumulate, ksplit, gs_shift, gs2_shift, blocks_in_rows);
  BANYAN_CUDA_CHECK_LAUNCH("quant_gemv (ring)");
}

// --- int4 on tensor cores (the repacked layout of quant_int4_repack_mma) ------------
// A warp owns a tile of 16 output features and walks its 64-column chunks (512 bytes:
// 16 per lane, coalesced), U chunks in flight; the ksplit warps of a tile take every
// ksplit-th chunk. Each lane's 32-bit word of a chunk's k-step is its A fragment of
// mma.m16n8k16 (bf16): four nibble pairs or-ed into bf16 128 + q (one LOP3 each after
// a shift), minus 128 + z (one bf16x2 subtraction, exact: q - z is a small integer).
// The B fragment is x (batch row = lane / 4, zero beyond M), read as bf16 pairs; the
// f32 accumulator of a chunk (one group) is scaled by the rows' scales.
constexpr int kMmaChunks = 4;

__device__ __forceinline__ uint32_t bf16x2_sub(uint32_t a, uint32_t b) {
  const __nv_bfloat162 r = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&a), *reinterpret_cast<const __nv_bfloat162*>(&b));
  return *reinterpret_cast<const uint32_t*>(&r);
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int MT, int U>
__device__ __forceinline__ void mma_batch(const QuantWeightDev& w, const uint8_t* tile_base, int64_t kc, int ksplit,
                                          int64_t chunks, int64_t r_lo, int gs_shift, const uint16_t* xr, bool xon,
                                          float (&acc)[4]) {
  const int64_t ng = w.cols / w.group_size;
  uint4 wv[U];
  float s_lo[U], s_hi[U];
  uint32_t z_lo[U], z_hi[U], xb[U][4][2];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t c = kc + static_cast<int64_t>(ksplit) * u;
    if (c < chunks) wv[u] = load_stream16(tile_base + c * 512);
    else wv[u] = make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t c = kc + static_cast<int64_t>(ksplit) * u;
    const int64_t k0 = (c < chunks ? c : 0) * 64;
    const int64_t gi = gs_shift >= 0 ? (k0 >> gs_shift) : k0 / w.group_size;
    const float* sc = static_cast<const float*>(w.scales);
    s_lo[u] = __ldg(sc + r_lo * ng + gi);
    s_hi[u] = __ldg(sc + (r_lo + 8) * ng + gi);
    z_lo[u] = __ldg(w.zeros + r_lo * ng + gi);
    z_hi[u] = __ldg(w.zeros + (r_lo + 8) * ng + gi);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      xb[u][j][0] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j)) : 0u;
      xb[u][j][1] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j + 8)) : 0u;
    }
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    if (kc + static_cast<int64_t>(ksplit) * u >= chunks) break;  // uniform over the warp
    const uint32_t zl = (0x4300u | z_lo[u]) * 0x10001u, zh = (0x4300u | z_hi[u]) * 0x10001u;  // 128 + z, twice
    const uint32_t words[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t wd = words[j];
      const uint32_t a0 = bf16x2_sub((wd & 0x000f000fu) | 0x43004300u, zl);
      const uint32_t a1 = bf16x2_sub(((wd >> 4) & 0x000f000fu) | 0x43004300u, zh);
      const uint32_t a2 = bf16x2_sub(((wd >> 8) & 0x000f000fu) | 0x43004300u, zl);
      const uint32_t a3 = bf16x2_sub(((wd >> 12) & 0x000f000fu) | 0x43004300u, zh);
      mma_bf16(c, a0, a1, a2, a3, xb[u][j][0], xb[u][j][1]);
    }
    acc[0] = fmaf(s_lo[u], c[0], acc[0]);
    acc[1] = fmaf(s_lo[u], c[1], acc[1]);
    acc[2] = fmaf(s_hi[u], c[2], acc[2]);
    acc[3] = fmaf(s_hi[u], c[3], acc[3]);
  }
}

template <int S>
struct MmaStage {
  uint4 wv[S];
  float s_lo[S], s_hi[S];
  uint32_t z_lo[S], z_hi[S];
};

template <int S>
__device__ __forceinline__ void mma_load_stage(MmaStage<S>& st, const QuantWeightDev& w, const uint8_t* tile_base,
                                               int64_t kc, int ksplit, int64_t chunks, int64_t r_lo, int gs_shift) {
  const int64_t ng = w.cols / w.group_size;
  const float* sc = static_cast<const float*>(w.scales);
#pragma unroll
  for (int u = 0; u < S; ++u) {
    const int64_t c = kc + static_cast<int64_t>(ksplit) * u;
    st.wv[u] = c < chunks ? load_stream16(tile_base + c * 512) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int u = 0; u < S; ++u) {
    const int64_t c = kc + static_cast<int64_t>(ksplit) * u;
    const int64_t k0 = (c < chunks ? c : 0) * 64;
    const int64_t gi = gs_shift >= 0 ? (k0 >> gs_shift) : k0 / w.group_size;
    st.s_lo[u] = __ldg(sc + r_lo * ng + gi);
    st.s_hi[u] = __ldg(sc + (r_lo + 8) * ng + gi);
    st.z_lo[u] = __ldg(w.zeros + r_lo * ng + gi);
    st.z_hi[u] = __ldg(w.zeros + (r_lo + 8) * ng + gi);
  }
}

template <int MT, int S>
__device__ __forceinline__ void mma_consume_stage(const MmaStage<S>& st, int64_t kc, int ksplit, int64_t chunks,
                                                  const uint16_t* xr, bool xon, float (&acc)[4]) {
#pragma unroll
  for (int u = 0; u < S; ++u) {
    const int64_t c = kc + static_cast<int64_t>(ksplit) * u;
    if (c >= chunks) break;  // uniform over the warp
    const int64_t k0 = c * 64;
    uint32_t xb[4][2];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      xb[j][0] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j)) : 0u;
      xb[j][1] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j + 8)) : 0u;
    }
    const uint32_t zl = (0x4300u | st.z_lo[u]) * 0x10001u, zh = (0x4300u | st.z_hi[u]) * 0x10001u;
    const uint32_t words[4] = {st.wv[u].x, st.wv[u].y, st.wv[u].z, st.wv[u].w};
    float c4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t wd = words[j];
      const uint32_t a0 = bf16x2_sub((wd & 0x000f000fu) | 0x43004300u, zl);
      const uint32_t a1 = bf16x2_sub(((wd >> 4) & 0x000f000fu) | 0x43004300u, zh);
      const uint32_t a2 = bf16x2_sub(((wd >> 8) & 0x000f000fu) | 0x43004300u, zl);
      const uint32_t a3 = bf16x2_sub(((wd >> 12) & 0x000f000fu) | 0x43004300u, zh);
      mma_bf16(c4, a0, a1, a2, a3, xb[j][0], xb[j][1]);
    }
    acc[0] = fmaf(st.s_lo[u], c4[0], acc[0]);
    acc[1] = fmaf(st.s_lo[u], c4[1], acc[1]);
    acc[2] = fmaf(st.s_hi[u], c4[2], acc[2]);
    acc[3] = fmaf(st.s_hi[u], c4[3], acc[3]);
  }
}

template <int MT, int V>
__global__ void __launch_bounds__(kWarps * 32, V == 7 ? 3 : 2)  // 7: variant 0, three blocks per SM
    qgemv_int4_mma_kernel(QuantWeightDev w, const uint16_t* __restrict__ x, void* out, bool out_f32,
                          const float* __restrict__ bias, bool accumulate, int ksplit, int gs_shift) {
  __shared__ float partial[kWarps][32][4];
  const int64_t N = w.rows, K = w.cols, chunks = K / 64, tiles = N / 16;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % ksplit;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit;
  const int64_t r_lo = tile * 16 + g;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (tile < tiles) {
    const uint8_t* tile_base = static_cast<const uint8_t*>(w.qweight) + tile * chunks * 512 + lane * 16;
    const bool xon = g < MT;
    const uint16_t* xr = x + (xon ? g : 0) * K + 2 * t;  // B fragment: batch row g, columns 2t, 2t + 1
    if constexpr (V == 0 || V == 7) {  // batches of 4 chunks, no overlap
      for (int64_t kc = part; kc < chunks; kc += static_cast<int64_t>(ksplit) * kMmaChunks)
        mma_batch<MT, kMmaChunks>(w, tile_base, kc, ksplit, chunks, r_lo, gs_shift, xr, xon, acc);
    } else if constexpr (V == 3) {  // batches of 8 chunks (4 KiB per warp in flight), no overlap
      for (int64_t kc = part; kc < chunks; kc += static_cast<int64_t>(ksplit) * 8) {
        MmaStage<8> st;
        mma_load_stage(st, w, tile_base, kc, ksplit, chunks, r_lo, gs_shift);
        mma_consume_stage<MT>(st, kc, ksplit, chunks, xr, xon, acc);
      }
    } else {  // pipelined stages of 2 (V = 2) or 4 (V = 1) chunks
      constexpr int S = V == 1 ? 4 : 2;
      MmaStage<S> cur, nxt;
      const int64_t step = static_cast<int64_t>(ksplit) * S;
      int64_t kc = part;
      mma_load_stage(cur, w, tile_base, kc, ksplit, chunks, r_lo, gs_shift);
      for (; kc < chunks; kc += step) {
        mma_load_stage(nxt, w, tile_base, kc + step, ksplit, chunks, r_lo, gs_shift);
        mma_consume_stage<MT>(cur, kc, ksplit, chunks, xr, xon, acc);
        cur = nxt;
      }
    }
  }
  if (ksplit > 1) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][lane][i] = acc[i];
    __syncthreads();
    if (part == 0)
      for (int p = 1; p < ksplit; ++p)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] += partial[warp + p][lane][i];
  }
  if (part == 0 && tile < tiles) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // c0, c1: feature r_lo, batch rows 2t, 2t + 1; c2, c3: feature r_lo + 8
      const int m = 2 * t + (i & 1);
      const int64_t row = r_lo + (i >> 1) * 8;
      if (m >= MT) continue;
      const int64_t o = m * N + row;
      const float res = acc[i] + (bias ? bias[row] : 0.0f);
      if (out_f32) {
        float* op = static_cast<float*>(out);
        op[o] = accumulate ? op[o] + res : res;
      } else {
        uint16_t* op = static_cast<uint16_t*>(out);
        op[o] = f2bf(accumulate ? bf2f(op[o]) + res : res);
      }
    }
  }
}

template <int MT, int V>
void launch_int4_mma(const QuantWeightDev& w, const uint16_t* x, void* out, bool out_f32, const float* bias,
                     bool accumulate, int num_sms, cudaStream_t stream, bool one_wave = false) {
  const int64_t tiles = w.rows / 16, chunks = w.cols / 64;
  int ksplit = 1;
  while (ksplit < kWarps && tiles * ksplit < 32LL * num_sms && chunks >= int64_t{kMmaChunks} * ksplit * 2) ksplit *= 2;
  if (one_wave) ksplit = mma_ring_ksplit(tiles, chunks, num_sms);
  qgemv_int4_mma_kernel<MT, V><<<blocks_for(tiles, kWarps / ksplit, int64_t{1} << 31), kWarps * 32, 0, stream>>>(
      w, x, out, out_f32, bias, accumulate, ksplit, log2_or_minus1(w.group_size));
  BANYAN_CUDA_CHECK_LAUNCH("quant_gemv (int4, tensor cores)");
}

// Variant 4 on tensor cores: each lane copies its 16 bytes of a chunk, the two rows'
// scales and the 32-bit words holding their zero points (cp.async takes 4 aligned
// bytes; allocations are 256-byte aligned, so the word stays inside the buffer's
// allocation) into its slots of a ring of kMmaRing one-chunk stages in shared memory:
// up to 11 chunks (176 bytes of weights) in flight per lane, 96 KiB per block.
constexpr int kMmaRing = 12;
constexpr size_t kMmaRingBytes = static_cast<size_t>(kMmaRing) * kThreads * 32;

int mma_ring_ksplit(int64_t tiles, int64_t chunks, int num_sms) {
  int ksplit = 1;
  while (ksplit < kWarps && tiles * ksplit * 2 <= int64_t{2} * kWarps * num_sms && chunks >= int64_t{4} * ksplit * 2)
    ksplit *= 2;
  return ksplit;
}

// kParams false (variant 8): only the weights go through the ring (48 KiB per block);
// the scales and zero points are prefetched into L2 when a stage is issued and read
// with __ldg when it is converted.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

template <int MT, bool kParams>
__global__ void __launch_bounds__(kThreads, 2)
    qgemv_int4_mma_ring_kernel(QuantWeightDev w, const uint16_t* __restrict__ x, void* out, bool out_f32,
                               const float* __restrict__ bias, bool accumulate, int ksplit, int gs_shift) {
  extern __shared__ uint4 ring[];  // [kMmaRing][kThreads] chunks, then [kMmaRing][4][kThreads] words
  uint32_t* pw = reinterpret_cast<uint32_t*>(ring + kMmaRing * kThreads);
  __shared__ float partial[kWarps][32][4];
  const int64_t N = w.rows, K = w.cols, chunks = K / 64, tiles = N / 16, ng = K / w.group_size;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, part = warp % ksplit;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * (kWarps / ksplit) + warp / ksplit;
  const int64_t r_lo = tile * 16 + g;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (tile < tiles) {
    const uint8_t* tile_base = static_cast<const uint8_t*>(w.qweight) + tile * chunks * 512 + lane * 16;
    const bool xon = g < MT;
    const uint16_t* xr = x + (xon ? g : 0) * K + 2 * t;  // B fragment: batch row g, columns 2t, 2t + 1
    const float* sc = static_cast<const float*>(w.scales);
    const int64_t nb = part < chunks ? (chunks - part + ksplit - 1) / ksplit : 0;  // this warp's chunks
    auto gidx = [&](int64_t c) { return gs_shift >= 0 ? ((c * 64) >> gs_shift) : c * 64 / w.group_size; };
    auto issue = [&](int64_t b) {
      if (b < nb) {
        const int s = static_cast<int>(b % kMmaRing);
        const int64_t c = part + b * ksplit, gi = gidx(c);
        const int64_t ilo = r_lo * ng + gi, ihi = (r_lo + 8) * ng + gi;
        cp_async16(&ring[s * kThreads + tid], tile_base + c * 512);
        if constexpr (kParams) {
          cp_async4(&pw[(s * 4 + 0) * kThreads + tid], sc + ilo);
          cp_async4(&pw[(s * 4 + 1) * kThreads + tid], sc + ihi);
          cp_async4(&pw[(s * 4 + 2) * kThreads + tid], w.zeros + (ilo & ~int64_t{3}));
          cp_async4(&pw[(s * 4 + 3) * kThreads + tid], w.zeros + (ihi & ~int64_t{3}));
        } else if (t == 0) {  // one lane per row pair
          prefetch_l2(sc + ilo);
          prefetch_l2(sc + ihi);
          prefetch_l2(w.zeros + ilo);
          prefetch_l2(w.zeros + ihi);
        }
      }
      cp_async_commit();
    };
#pragma unroll
    for (int b = 0; b < kMmaRing - 1; ++b) issue(b);
    for (int64_t b = 0; b < nb; ++b) {
      issue(b + kMmaRing - 1);
      cp_async_wait<kMmaRing - 1>();
      const int s = static_cast<int>(b % kMmaRing);
      const int64_t c = part + b * ksplit, k0 = c * 64, gi = gidx(c);
      uint32_t xb[4][2];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        xb[j][0] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j)) : 0u;
        xb[j][1] = xon ? __ldg(reinterpret_cast<const unsigned int*>(xr + k0 + 16 * j + 8)) : 0u;
      }
      const uint4 wv = ring[s * kThreads + tid];
      float s_lo, s_hi;
      uint32_t z_lo, z_hi;
      if constexpr (kParams) {
        s_lo = __uint_as_float(pw[(s * 4 + 0) * kThreads + tid]);
        s_hi = __uint_as_float(pw[(s * 4 + 1) * kThreads + tid]);
        z_lo = (pw[(s * 4 + 2) * kThreads + tid] >> (8 * ((r_lo * ng + gi) & 3))) & 0xffu;
        z_hi = (pw[(s * 4 + 3) * kThreads + tid] >> (8 * (((r_lo + 8) * ng + gi) & 3))) & 0xffu;
      } else {
        s_lo = __ldg(sc + r_lo * ng + gi);
        s_hi = __ldg(sc + (r_lo + 8) * ng + gi);
        z_lo = __ldg(w.zeros + r_lo * ng + gi);
        z_hi = __ldg(w.zeros + (r_lo + 8) * ng + gi);
      }
      const uint32_t zl = (0x4300u | z_lo) * 0x10001u, zh = (0x4300u | z_hi) * 0x10001u;  // 128 + z, twice
      const uint32_t words[4] = {wv.x, wv.y, wv.z, wv.w};
      float c4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t wd = words[j];
        const uint32_t a0 = bf16x2_sub((wd & 0x000f000fu) | 0x43004300u, zl);
        const uint32_t a1 = bf16x2_sub(((wd >> 4) & 0x000f000fu) | 0x43004300u, zh);
        const uint32_t a2 = bf16x2_sub(((wd >> 8) & 0x000f000fu) | 0x43004300u, zl);
        const uint32_t a3 = bf16x2_sub(((wd >> 12) & 0x000f000fu) | 0x43004300u, zh);
        mma_bf16(c4, a0, a1, a2, a3, xb[j][0], xb[j][1]);
      }
      acc[0] = fmaf(s_lo, c4[0], acc[0]);
      acc[1] = fmaf(s_lo, c4[1], acc[1]);
      acc[2] = fmaf(s_hi, c4[2], acc[2]);
      acc[3] = fmaf(s_hi, c4[3], acc[3]);
    }
    cp_async_wait<0>();
  }
  if (ksplit > 1) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][lane][i] = acc[i];
    __syncthreads();
    if (part == 0)
      for (int q = 1; q < ksplit; ++q)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] += partial[warp + q][lane][i];
  }
  if (part == 0 && tile < tiles) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // c0, c1: feature r_lo, batch rows 2t, 2t + 1; c2, c3: feature r_lo + 8
      const int m = 2 * t + (i & 1);
      const int64_t row = r_lo + (i >> 1) * 8;
      if (m >= MT) continue;
      const int64_t o = m * N + row;
      const float res = acc[i] + (bias ? bias[row] : 0.0f);
      if (out_f32) {
        float* op = static_cast<float*>(out);
        op[o] = accumulate ? op[o] + res : res;
      } else {
        uint16_t* op = static_cast<uint16_t*>(out);
        op[o] = f2bf(accumulate ? bf2f(op[o]) + res : res);
      }
    }
  }
}

template <int MT, bool kParams = true>
void launch_int4_mma_ring(const QuantWeightDev& w, const uint16_t* x, void* out, bool out_f32, const float* bias,
                          bool accumulate, int num_sms, cudaStream_t stream, bool one_wave = true) {
  const int64_t tiles = w.rows / 16, chunks = w.cols / 64;
  int ksplit = mma_ring_ksplit(tiles, chunks, num_sms);
  if (!one_wave) {  // variant 6: launch_int4_mma()'s rule
    ksplit = 1;
    while (ksplit < kWarps && tiles * ksplit < 32LL * num_sms && chunks >= int64_t{kMmaChunks} * ksplit * 2) ksplit *= 2;
  }
  constexpr size_t smem = kParams ? kMmaRingBytes : kMmaRingBytes / 2;
  static const cudaError_t allowed = cudaFuncSetAttribute(  // once per kernel: past 48 KiB
      qgemv_int4_mma_ring_kernel<MT, kParams>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  BANYAN_CUDA_CHECK(allowed);
  qgemv_int4_mma_ring_kernel<MT, kParams><<<blocks_for(tiles, kWarps / ksplit, int64_t{1} << 31), kThreads, smem,
                                            stream>>>(w, x, out, out_f32, bias, accumulate, ksplit,
                                                      log2_or_minus1(w.group_size));
  BANYAN_CUDA_CHECK_LAUNCH("quant_gemv (int4, tensor cores, ring)");
}

// W[n][k] of the repacked layout: the byte offset of its word and the nibble's shift.
__device__ __forceinline__ void int4_mma_locate(int64_t n, int64_t k, int64_t chunks, int64_t& word_byte, int& shift) {
  const int64_t tile = n / 16, kc = k / 64;
  const int r = static_cast<int>(n % 16), kk = static_cast<int>(k % 64);
  const int j = kk / 16, ks = kk % 16, hi_row = r >= 8, g = r % 8, hi_k = ks >= 8, t = (ks % 8) / 2, odd = ks & 1;
  const int lane = g * 4 + t;
  word_byte = ((tile * chunks + kc) * 32 + lane) * 16 + 4 * j;
  shift = 4 * (hi_row + 2 * hi_k) + 16 * odd;
}

// One row per blockIdx.y (no division per value), two values (k even, k + 1: the same
// word, 16 bits apart) per thread and step, written as one 32-bit pair.
__global__ void dequant_int4_mma_kernel(QuantWeightDev w, uint16_t* __restrict__ dst) {
  const int64_t K = w.cols, chunks = K / 64, ng = K / w.group_size;
  const float* scales = static_cast<const float*>(w.scales);
  for (int64_t n = blockIdx.y; n < w.rows; n += gridDim.y) {
    for (int64_t k = 2 * (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x); k < K;
         k += 2 * static_cast<int64_t>(gridDim.x) * blockDim.x) {
      int64_t wb;
      int sh;
      int4_mma_locate(n, k, chunks, wb, sh);
      const uint32_t wd = *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.qweight) + wb);
      const int64_t gi = n * ng + static_cast<uint32_t>(k) / static_cast<uint32_t>(w.group_size);
      const float s = scales[gi], z = static_cast<float>(w.zeros[gi]);
      const float v0 = (static_cast<float>((wd >> sh) & 0xfu) - z) * s;
      const float v1 = (static_cast<float>((wd >> (sh + 16)) & 0xfu) - z) * s;
      *reinterpret_cast<uint32_t*>(dst + n * K + k) = uint32_t(f2bf(v0)) | (uint32_t(f2bf(v1)) << 16);
    }
  }
}

template <int L>
void launch_rows(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
                 const float* bias, bool accumulate, int num_sms, cudaStream_t stream) {
  switch (M) {
    case 1: {
      const int v = w.variant >= 0 ? w.variant : kDefaultVariant[L];
      const bool ring_ok = !(L == kLut4 && w.group_size2 > 0);  // the ring stages f32 absmax only
      if ((v == 4 || v == 6) && ring_ok)
        launch_ring<L, 1>(w, x, out, out_f32, bias, accumulate, num_sms, stream, v == 4);
      else if (v == 5) launch<L, 1, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream, true);
      else if (v == 7) launch<L, 1, 7>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
      else if (v == 1) launch<L, 1, 1>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
      else if (v == 2) launch<L, 1, 2>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
      else launch<L, 1, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
      break;
    }
    case 2: launch<L, 2, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
    case 3: launch<L, 3, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
    default: launch<L, 4, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
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

// The dequantization by 16-byte vectors (the GEMV's conversions): one vector of the
// packed weight in, 32 or 64 bytes of bf16 out per thread and step.
template <int L>
__global__ void dequant_vec_kernel(QuantWeightDev w, uint16_t* __restrict__ dst, int gs_shift, int gs2_shift,
                                   bool blocks_in_rows) {
  constexpr int EPV = values_per_vector(L);
  __shared__ float code[16];
  if constexpr (L == kLut4) {
    if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
    __syncthreads();
  }
  const int64_t vpr = w.cols / EPV, total = w.rows * vpr;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / vpr, k0 = (i - row * vpr) * EPV;
    const uint4 v = load_stream16(static_cast<const uint8_t*>(w.qweight) + i * 16);
    const VecParam p = vec_param<L>(w, row, k0, gs_shift, gs2_shift, blocks_in_rows);
    float s = p.scale;
    if (L == kInt8) s = static_cast<const float*>(w.scales)[row];
    if (L == kFp8) s = static_cast<const float*>(w.scales)[w.per_row_scale ? row : 0];
#pragma unroll
    for (int c = 0; c < EPV / 8; ++c) {
      float f[8];
      dequant8<L>(v, c, p, code, f);
      Bf16x8 o;
#pragma unroll
      for (int j = 0; j < 8; ++j) o.set(j, f[j] * s);
      store8(dst + row * w.cols + k0 + 8 * c, o);
    }
  }
}

template <int L>
void launch_dequant_vec(const QuantWeightDev& w, uint16_t* dst, cudaStream_t stream) {
  const int64_t vecs = w.rows * (w.cols / values_per_vector(L));
  const bool blocks_in_rows = (L == kInt4) || (w.group_size > 0 && w.cols % w.group_size == 0);
  dequant_vec_kernel<L><<<blocks_for(vecs, 256, 65535LL * 16), 256, 0, stream>>>(
      w, dst, log2_or_minus1(w.group_size), log2_or_minus1(w.group_size2), blocks_in_rows);
  BANYAN_CUDA_CHECK_LAUNCH("quant_dequantize_bf16");
}

}  // namespace

bool quant_int4_mma_eligible(int64_t rows, int64_t cols, int64_t group_size) {
  return rows > 0 && rows % 16 == 0 && cols > 0 && cols % 64 == 0 && group_size > 0 && group_size % 64 == 0 &&
         cols % group_size == 0;
}

void quant_int4_repack_mma(const uint8_t* src, int64_t N, int64_t K, uint8_t* dst) {
  const int64_t chunks = K / 64;
  const auto nib = [&](int64_t n, int64_t k) -> uint32_t {
    const uint8_t b = src[n * (K / 2) + k / 2];
    return (k & 1) ? (b >> 4) : (b & 0xfu);
  };
  for (int64_t tile = 0; tile < N / 16; ++tile)
    for (int64_t kc = 0; kc < chunks; ++kc)
      for (int lane = 0; lane < 32; ++lane) {
        const int64_t lo = tile * 16 + lane / 4, hi = lo + 8;
        for (int j = 0; j < 4; ++j) {
          const int64_t k = kc * 64 + 16 * j + 2 * (lane % 4);
          const uint32_t wd = nib(lo, k) | nib(hi, k) << 4 | nib(lo, k + 8) << 8 | nib(hi, k + 8) << 12 |
                              nib(lo, k + 1) << 16 | nib(hi, k + 1) << 20 | nib(lo, k + 9) << 24 |
                              nib(hi, k + 9) << 28;
          uint8_t* d = dst + ((tile * chunks + kc) * 32 + lane) * 16 + 4 * j;
          for (int b = 0; b < 4; ++b) d[b] = static_cast<uint8_t>(wd >> (8 * b));
        }
      }
}

bool quant_gemv_supported(const QuantWeightDev& w, int64_t M, const void* x) {
  if (w.int4_mma) return M >= 1 && M <= kQuantGemvMaxRows && (reinterpret_cast<uintptr_t>(x) & 3u) == 0;
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
    case kInt4:
      if (w.int4_mma) {
        switch (M) {
          case 1: {
            const int v = w.variant >= 0 ? w.variant : kDefaultMmaVariant;
            if (v == 1) launch_int4_mma<1, 1>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            else if (v == 2) launch_int4_mma<1, 2>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            else if (v == 3) launch_int4_mma<1, 3>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            else if (v == 4 || v == 6)
              launch_int4_mma_ring<1>(w, x, out, out_f32, bias, accumulate, num_sms, stream, v == 4);
            else if (v == 5) launch_int4_mma<1, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream, true);
            else if (v == 7) launch_int4_mma<1, 7>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            else if (v == 8) launch_int4_mma_ring<1, false>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            else launch_int4_mma<1, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream);
            break;
          }
          case 2: launch_int4_mma<2, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
          case 3: launch_int4_mma<3, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
          default: launch_int4_mma<4, 0>(w, x, out, out_f32, bias, accumulate, num_sms, stream); break;
        }
      } else {
        launch_rows<kInt4>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream);
      }
      break;
    case kLut4: launch_rows<kLut4>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
    default: launch_rows<kFp8>(w, x, M, out, out_f32, bias, accumulate, num_sms, stream); break;
  }
}

void quant_dequantize_bf16(const QuantWeightDev& w, uint16_t* dst, cudaStream_t stream) {
  const int64_t total = w.rows * w.cols;
  if (total <= 0) return;
  if (w.int4_mma) {
    const dim3 grid(blocks_for(w.cols / 2, 256, 64), static_cast<unsigned>(std::min<int64_t>(w.rows, 65535)));
    dequant_int4_mma_kernel<<<grid, 256, 0, stream>>>(w, dst);
    BANYAN_CUDA_CHECK_LAUNCH("quant_dequantize_bf16 (int4, repacked)");
    return;
  }
  if ((reinterpret_cast<uintptr_t>(dst) & 15u) == 0 && quant_gemv_supported(w, 1, dst)) {
    switch (w.layout) {
      case kInt8: return launch_dequant_vec<kInt8>(w, dst, stream);
      case kInt4: return launch_dequant_vec<kInt4>(w, dst, stream);
      case kLut4: return launch_dequant_vec<kLut4>(w, dst, stream);
      default: return launch_dequant_vec<kFp8>(w, dst, stream);
    }
  }
  dequant_kernel<<<blocks_for(total, 256, 65535LL * 16), 256, 0, stream>>>(w, dst);
  BANYAN_CUDA_CHECK_LAUNCH("quant_dequantize_bf16");
}

}  // namespace banyan::kernels::cuda

// ---------------------------------------------------------------------------------
// FP8 W8A8 through cuBLASLt.
namespace banyan::kernels::cuda {
namespace {

constexpr float kE4m3Max = 448.0f;

// amax_bits (zeroed before) = the bits of max |x| over n values (non-negative floats
// order as their bits).
__global__ void fp8_amax_kernel(const uint16_t* __restrict__ x, int64_t n8, unsigned* amax_bits) {
  float m = 0.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Bf16x8 v = load8(x + 8 * i);
#pragma unroll
    for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(v.get(j)));
  }
  m = warp_max(m);
  if ((threadIdx.x & 31) == 0 && m > 0.0f) atomicMax(amax_bits, __float_as_uint(m));
}

// xq = e4m3(x / s_x), s_x = amax / 448 (1 when amax is 0); x_scale = s_x.
__global__ void fp8_quantize_kernel(const uint16_t* __restrict__ x, int64_t n8, const unsigned* amax_bits,
                                    uint8_t* __restrict__ xq, float* x_scale) {
  const float amax = __uint_as_float(*amax_bits);
  const float s = amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f;
  if (blockIdx.x == 0 && threadIdx.x == 0) *x_scale = s;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Bf16x8 v = load8(x + 8 * i);
    uint32_t words[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t wd = 0;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float2 f = make_float2(__fdiv_rn(v.get(4 * h + 2 * j), s), __fdiv_rn(v.get(4 * h + 2 * j + 1), s));
        wd |= static_cast<uint32_t>(__nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3)) << (16 * j);
      }
      words[h] = wd;
    }
    *reinterpret_cast<uint2*>(xq + 8 * i) = make_uint2(words[0], words[1]);
  }
}

// out [M, N] = d [M, N] (f32 or bf16) * (per-channel scale) + bias.
template <class D>
__global__ void fp8_epilogue_kernel(const D* __restrict__ d, int64_t M, int64_t N,
                                    const float* __restrict__ row_scale, const float* __restrict__ bias,
                                    void* out, bool out_f32) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i % N;
    float v;
    if constexpr (sizeof(D) == 4) v = d[i];
    else v = bf2f(d[i]);
    if (row_scale) v *= row_scale[n];
    if (bias) v += bias[n];
    if (out_f32) static_cast<float*>(out)[i] = v;
    else static_cast<uint16_t*>(out)[i] = f2bf(v);
  }
}

}  // namespace

struct Fp8Gemm::Impl {
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d32 = nullptr, d16 = nullptr;
    // The heuristic's candidates, f32 output first, then bf16 (where cuBLASLt has no
    // f32-output FP8 kernel); `chosen` is the first that ran.
    std::vector<std::pair<bool, cublasLtMatmulAlgo_t>> algos;
    size_t chosen = 0;
    Plan() = default;
    Plan(Plan&& o) noexcept
        : desc(std::exchange(o.desc, nullptr)), a(std::exchange(o.a, nullptr)), b(std::exchange(o.b, nullptr)),
          d32(std::exchange(o.d32, nullptr)), d16(std::exchange(o.d16, nullptr)), algos(std::move(o.algos)),
          chosen(o.chosen) {}
    Plan& operator=(Plan&&) = delete;
    ~Plan() {
      if (d16) cublasLtMatrixLayoutDestroy(d16);
      if (d32) cublasLtMatrixLayoutDestroy(d32);
      if (b) cublasLtMatrixLayoutDestroy(b);
      if (a) cublasLtMatrixLayoutDestroy(a);
      if (desc) cublasLtMatmulDescDestroy(desc);
    }
  };
  cublasLtHandle_t handle = nullptr;
  DeviceMemory workspace{size_t{32} << 20};
  DeviceMemory small{256};  // floats: [0] amax bits, [4] s_x, [8] 1.0 (16-byte aligned)
  DeviceMemory xq, dout;
  std::map<std::tuple<int64_t, int64_t, int64_t>, Plan> plans;

  ~Impl() {
    plans.clear();
    if (handle) cublasLtDestroy(handle);
  }

  Plan& plan(int64_t M, int64_t N, int64_t K) {
    const auto key = std::make_tuple(M, N, K);
    if (auto it = plans.find(key); it != plans.end()) return it->second;
    if (plans.size() >= 64) plans.clear();
    Plan p;
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;  // FP8 needs "TN"
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    // Column-major view: out^T [N, M] = W [N, K] · x_q^T [K, M].
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8F_E4M3, K, N, K));
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8F_E4M3, K, M, K));
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d32, CUDA_R_32F, N, M, N));
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d16, CUDA_R_16BF, N, M, N));
    // Scale pointers set, so that the heuristic picks scaled kernels.
    const float* sx = small.as<float>() + 4;
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sx, sizeof sx));
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof sx));
    cublasLtMatmulPreference_t pref = nullptr;
    BANYAN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = workspace.size();
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    for (bool d_bf16 : {false, true}) {
      if (st != CUBLAS_STATUS_SUCCESS) break;
      constexpr int kCandidates = 4;
      cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
      int found = 0;
      cublasLtMatrixLayout_t d = d_bf16 ? p.d16 : p.d32;
      if (cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, d, d, pref, kCandidates, results, &found) !=
          CUBLAS_STATUS_SUCCESS)
        found = 0;
      for (int i = 0; i < found; ++i) p.algos.emplace_back(d_bf16, results[i].algo);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || p.algos.empty())
      throw Error(Code::unsupported, "cuBLASLt has no FP8 (e4m3 x e4m3 -> f32 or bf16) algorithm for " +
                                         std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
                                         " (status " + std::to_string(static_cast<int>(st)) + ")");
    return plans.emplace(key, std::move(p)).first->second;
  }
};

Fp8Gemm::Fp8Gemm() : impl_(std::make_unique<Impl>()) {
  BANYAN_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  const float init[12] = {0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f};
  BANYAN_CUDA_CHECK(cudaMemcpy(impl_->small.get(), init, sizeof init, cudaMemcpyHostToDevice));
}
Fp8Gemm::~Fp8Gemm() = default;

bool Fp8Gemm::supported(int device, std::string* why) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    if (why) *why = "cannot read the compute capability of device " + std::to_string(device);
    return false;
  }
  if (major * 10 + minor >= 89) return true;
  if (why)
    *why = "FP8 tensor cores need compute capability 8.9 or later (device " + std::to_string(device) + " has " +
           std::to_string(major) + "." + std::to_string(minor) + ")";
  return false;
}

void Fp8Gemm::run(const QuantWeightDev& w, const uint16_t* x, int64_t M, void* out, bool out_f32,
                  const float* bias, cudaStream_t stream) {
  if (w.layout != kFp8) throw Error(Code::internal, "Fp8Gemm: the weight is not fp8");
  const int64_t N = w.rows, K = w.cols;
  if (M <= 0 || N <= 0) return;
  if (K % 16 != 0 || N % 16 != 0 || (reinterpret_cast<uintptr_t>(x) & 15u) != 0)
    throw Error(Code::unsupported, "FP8 W8A8: N (" + std::to_string(N) + ") and K (" + std::to_string(K) +
                                       ") must be multiples of 16 and x 16-byte aligned");
  Impl& im = *impl_;
  // cuBLASLt's FP8 kernels want every dimension a multiple of 16: x_q gets zero rows
  // up to Mp, and the epilogue reads the first M rows of D.
  const int64_t Mp = (M + 15) / 16 * 16;
  const size_t xq_bytes = static_cast<size_t>(Mp * K), d_bytes = static_cast<size_t>(Mp * N) * 4;
  if (im.xq.size() < xq_bytes) im.xq = DeviceMemory(xq_bytes);
  if (im.dout.size() < d_bytes) im.dout = DeviceMemory(d_bytes);
  unsigned* amax = im.small.as<unsigned>();
  float* sx = im.small.as<float>() + 4;
  const int64_t n8 = M * K / 8;
  BANYAN_CUDA_CHECK(cudaMemsetAsync(amax, 0, sizeof(unsigned), stream));
  if (Mp > M)
    BANYAN_CUDA_CHECK(cudaMemsetAsync(im.xq.as<uint8_t>() + M * K, 0, static_cast<size_t>((Mp - M) * K), stream));
  const unsigned blocks = blocks_for(n8, 256, 1024);
  fp8_amax_kernel<<<blocks, 256, 0, stream>>>(x, n8, amax);
  BANYAN_CUDA_CHECK_LAUNCH("fp8_amax");
  fp8_quantize_kernel<<<blocks, 256, 0, stream>>>(x, n8, amax, im.xq.as<uint8_t>(), sx);
  BANYAN_CUDA_CHECK_LAUNCH("fp8_quantize");
  Impl::Plan& p = im.plan(Mp, N, K);
  // Per tensor: A's scale is s_w; per channel it is 1 (a device float of `small`) and
  // the epilogue scales the rows.
  const float* a_scale = w.per_row_scale ? im.small.as<float>() + 8 : static_cast<const float*>(w.scales);
  BANYAN_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof a_scale));
  BANYAN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof sx));
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
  for (; p.chosen < p.algos.size(); ++p.chosen) {  // a candidate may refuse: try the next
    const auto& [d_bf16, algo] = p.algos[p.chosen];
    cublasLtMatrixLayout_t d = d_bf16 ? p.d16 : p.d32;
    st = cublasLtMatmul(im.handle, p.desc, &alpha, w.qweight, p.a, im.xq.get(), p.b, &beta, im.dout.get(), d,
                        im.dout.get(), d, &algo, im.workspace.get(), im.workspace.size(), stream);
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) break;
  }
  if (p.chosen == p.algos.size()) {
    p.chosen = 0;
    size_t with_bf16 = 0;
    for (const auto& a : p.algos) with_bf16 += a.first ? 1 : 0;
    throw Error(Code::unsupported,
                "cuBLASLt (version " + std::to_string(cublasLtGetVersion()) + ") refused every FP8 algorithm for " +
                    std::to_string(Mp) + "x" + std::to_string(N) + "x" + std::to_string(K) + " (" +
                    std::to_string(p.algos.size() - with_bf16) + " with f32 output, " + std::to_string(with_bf16) +
                    " with bf16 output; CUBLASLT_LOG_LEVEL=5 says why)");
  }
  BANYAN_CUBLAS_CHECK(st);
  const float* row_scale = w.per_row_scale ? static_cast<const float*>(w.scales) : nullptr;
  const unsigned eb = blocks_for(M * N, 256, 65535LL * 8);
  if (p.algos[p.chosen].first)
    fp8_epilogue_kernel<uint16_t><<<eb, 256, 0, stream>>>(im.dout.as<uint16_t>(), M, N, row_scale, bias, out, out_f32);
  else
    fp8_epilogue_kernel<float><<<eb, 256, 0, stream>>>(im.dout.as<float>(), M, N, row_scale, bias, out, out_f32);
  BANYAN_CUDA_CHECK_LAUNCH("fp8_epilogue");
}

}  // namespace banyan::kernels::cuda
