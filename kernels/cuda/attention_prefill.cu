// Prefill attention on tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate),
// flash-attention style over the paged KV cache: a block takes 64 query rows of one
// sequence and one head (four warps of 16 rows), streams the keys and values it
// may see in tiles of 64 rows (cp.async, two stages, rows gathered through the
// block table), and keeps the softmax online in registers. Causal and sliding-
// window masks come from positions, so chunked prefill over earlier context works.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/paged.cuh"

#include <banyan/error.h>

#include <string>

namespace banyan::kernels::cuda {
namespace {

constexpr int BM = 64, BN = 64, kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

static_assert(BM == BN, "the query tile is staged in a key buffer");

// K and V, two stages each; the query tile passes through the second K buffer
// before the pipeline starts, which lets three blocks share an SM.
template <int D>
constexpr size_t smem_bytes() {
  return sizeof(uint16_t) * static_cast<size_t>(4 * BN) * (D + 8);
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int n = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // one cvt for both
  return *reinterpret_cast<const uint32_t*>(&v);
}
/// 2^x (MUFU.EX2; 2^-inf = 0), without the library's denormal handling.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <int D>
__global__ void __launch_bounds__(kThreads, 3)
    prefill_kernel(const uint16_t* __restrict__ q, PagedArgs a, int q_tiles,
                   uint16_t* __restrict__ out) {
  constexpr int S = D + 8;  // padded row: conflict-free ldmatrix
  constexpr int VPR = D / 8;
  extern __shared__ __align__(16) uint16_t sm[];
  uint16_t* sK = sm;
  uint16_t* sV = sm + 2 * BN * S;
  uint16_t* sQ = sK + BN * S;  // stage-1 K buffer, free until the second tile loads

  const int s = blockIdx.x / q_tiles;
  const int tile = q_tiles - 1 - static_cast<int>(blockIdx.x % q_tiles);  // long rows first
  const int h = blockIdx.y;
  const int32_t* info = a.seq_info + 4 * s;
  const int qstart = info[0], qlen = info[1], ctx = info[2];
  const int row0 = tile * BM;
  if (row0 >= qlen) return;
  const int32_t* table = a.block_tables + info[3];
  const int Hq = a.num_heads, Hk = a.num_kv_heads, g = h / (Hq / Hk);
  const int rows = min(BM, qlen - row0);
  const int p_first = ctx - qlen + row0, p_last = p_first + rows - 1;
  const int W = a.sliding_window;
  const int kv_lo = W > 0 ? max(0, p_first - W + 1) : 0;
  const int n_tiles = (p_last - kv_lo + BN) / BN;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  for (int i = tid; i < BM * VPR; i += kThreads) {
    const int r = i / VPR, c = (i % VPR) * 8;
    const bool valid = r < rows;
    const int64_t t = qstart + row0 + (valid ? r : 0);
    cp_async16(sQ + r * S + c, q + (t * Hq + h) * D + c, valid);
  }
  auto load_kv = [&](int it, int buf) {
    const int j0 = kv_lo + it * BN;
    uint16_t* k_s = sK + buf * BN * S;
    uint16_t* v_s = sV + buf * BN * S;
    for (int i = tid; i < BN * VPR; i += kThreads) {
      const int r = i / VPR, c = (i % VPR) * 8, pos = j0 + r;
      const bool valid = pos <= p_last;
      const int64_t slot = valid ? slot_of(a, table, pos) : 0;
      const int64_t off = (slot * Hk + g) * D + c;
      cp_async16(k_s + r * S + c, a.k_cache + off, valid);
      cp_async16(v_s + r * S + c, a.v_cache + off, valid);
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  const float sl2 = a.scale * kLog2e;
  const int r_in = warp * 16 + (lane >> 2);         // row of c0/c1 in the tile; c2/c3: +8
  const int pq0 = p_first + r_in, pq1 = pq0 + 8;    // their positions
  uint32_t qf[D / 16][4];
  cp_async_wait<0>();
  __syncthreads();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * S + kk * 16 + (lane >> 4) * 8);
  __syncthreads();  // sQ is overwritten by the second tile's keys
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int it = 0; it < n_tiles; ++it) {
    const int buf = it & 1;
    if (it + 1 < n_tiles) {
      load_kv(it + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* k_s = sK + buf * BN * S;
    const uint16_t* v_s = sV + buf * BN * S;

    float sc[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int nt = 0; nt < BN / 8; nt += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, k_s + (nt * 8 + (lane & 7) + (lane >> 4) * 8) * S + kk * 16 +
                           ((lane >> 3) & 1) * 8);
        mma(sc[nt], qf[kk], b[0], b[1]);
        mma(sc[nt + 1], qf[kk], b[2], b[3]);
      }

    const int j0 = kv_lo + it * BN;
    // Tiles every row of the block sees whole (most of them) skip the masking.
    const bool whole = j0 + BN - 1 <= p_first && (W == 0 || j0 > p_last - W);
    float mx[2] = {m[0], m[1]};
    if (whole) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          sc[nt][e] *= sl2;
          mx[e >> 1] = fmaxf(mx[e >> 1], sc[nt][e]);
        }
    } else {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = j0 + nt * 8 + (lane & 3) * 2 + (e & 1);
          const int pq = e < 2 ? pq0 : pq1;
          const bool ok = key <= pq && (W == 0 || key > pq - W);
          sc[nt][e] = ok ? sc[nt][e] * sl2 : -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], sc[nt][e]);
        }
    }
    float alpha[2], ref[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      ref[r] = mx[r] == -INFINITY ? 0.0f : mx[r];  // a row with nothing visible yet
      alpha[r] = fast_exp2(m[r] - ref[r]);
      m[r] = mx[r];
    }
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sc[nt][e] = fast_exp2(sc[nt][e] - ref[e >> 1]);
        rs[e >> 1] += sc[nt][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + rs[r];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t pa[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]),
                              pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                              pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                              pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_s + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dt * 8 +
                                 (lane >> 4) * 8);
        mma(o[dt], pa, b[0], b[1]);
        mma(o[dt + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this buffer
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r_in + 8 * r;
    if (row >= rows) continue;
    uint16_t* dst = out + (static_cast<int64_t>(qstart + row0 + row) * Hq + h) * D + (lane & 3) * 2;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(dst + dt * 8) =
          pack_bf16(o[dt][2 * r] * inv[r], o[dt][2 * r + 1] * inv[r]);
  }
}

template <int D>
void launch(const bf16_bits* q, const PagedArgs& a, bf16_bits* out, cudaStream_t stream) {
  static bool configured = false;
  if (!configured) {
    BANYAN_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem_bytes<D>())));
    configured = true;
  }
  const int q_tiles = (a.max_query_len + BM - 1) / BM;
  const dim3 grid(static_cast<unsigned>(a.num_seqs * q_tiles), static_cast<unsigned>(a.num_heads));
  prefill_kernel<D><<<grid, kThreads, smem_bytes<D>(), stream>>>(q, a, q_tiles, out);
  BANYAN_CUDA_CHECK_LAUNCH("prefill_attention");
}

}  // namespace

bool prefill_attention_supported(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

void prefill_attention(const bf16_bits* q, const PagedArgs& a, bf16_bits* out,
                       cudaStream_t stream) {
  if (a.num_tokens <= 0) return;
  if (a.head_dim == 128) launch<128>(q, a, out, stream);
  else if (a.head_dim == 64) launch<64>(q, a, out, stream);
  else
    throw Error(Code::unsupported, "cuda prefill attention: head_dim " +
                                       std::to_string(a.head_dim) + " (64 or 128)");
}

}  // namespace banyan::kernels::cuda
