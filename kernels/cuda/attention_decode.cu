// Paged attention with one query token per block row (decode, and any batch whose
// head_dim the tensor-core kernel does not take). Block (token, head group, split):
// up to 8 query heads that share one KV head (GQA) read each cached key and value
// row once; the keys of a long context are split across blocks (split-KV) whose
// partial results a combine kernel merges; a few short contexts take wide blocks of
// 16 warps and one split instead (mode bit 4). Per split: scores into shared memory, softmax
// statistics, then the weighted sum of V, all in f32. For decode steps (one query
// token per sequence) the kernel also writes the step's keys and values into the
// cache, reading each token's own from the step's k and v, and may apply the rotary
// embedding to q and the new k as it reads them (set_decode_attention_mode). With
// pipelined loads (mode bit 3) the block first resolves the cache slots of its keys
// into shared memory (one round trip for the whole block table instead of one ahead
// of every batch of rows), reads eight rows per lane per batch, and issues its first
// value rows before the softmax statistics, so that they arrive while it computes.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/paged.cuh"
#include "kernels/cuda/rope.cuh"

#include <banyan/error.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace banyan::kernels::cuda {
namespace {

constexpr int kWarps = 4, kUnroll = 4;
// Wide blocks (mode bit 4): one block of 16 warps per (token, head group) reads the
// whole context in one batch of rows, where the grid would otherwise have fewer
// blocks than SMs and split the keys (decode of a few sequences): no combine kernel.
// Head groups up to 4 (the registers of 512 threads).
constexpr int kWideWarps = 16, kWideMaxGroup = 4;
constexpr size_t kMaxSmem = 96 * 1024;
constexpr float kLog2e = 1.4426950408889634f;
// set_decode_attention_mode (the bits: kernels.h). Every default bit was measured on
// the H100 against the mode without it in one run (bench/cuda/NOTES.md);
// BANYAN_DECODE_ATTENTION_MODE overrides the default (0-127; bit 1 is unused).
int initial_attention_mode() {
  const char* e = std::getenv("BANYAN_DECODE_ATTENTION_MODE");
  if (e && *e) {
    char* end = nullptr;
    const long m = std::strtol(e, &end, 10);
    if (*end == '\0' && m >= 0 && m <= 127) return static_cast<int>(m) & ~2;
  }
  return kAttentionWritesCache | kRopeInAttention | kPipelinedLoads | kWideBlocks | kHalvingSums |
         kEarlyLayout;
}
int g_attention_mode = initial_attention_mode();
// Blocks per SM the split-KV plan aims for (set_decode_attention_split_blocks).
int g_split_blocks_per_sm = 2;
// The cap on query heads per block (set_decode_attention_max_group).
int g_max_group = 8;

struct Split {
  int32_t chunk, splits;
  float* ws_o;        // [T, Hq, splits, D]
  float* ws_ml;       // [T, Hq, splits, 2]
  const uint16_t* new_k;  // the step's k and v when the kernel writes the cache
  const uint16_t* new_v;
  // Rotary embedding applied here (new_k set): q and the new k rotate as they are
  // staged and are left rotated in place (rotary()'s result): by the combine kernel
  // when there are splits, else by the attention kernel (one block per KV head).
  bool rotate;
  bool halving;  // sum_heads_halving for the scores (mode bit 5, pipelined loads)
  bool early_layout;  // layout reads before pdl_wait (mode bit 6, pipelined loads)
  RotaryArgs rope;
  uint16_t* rot_q;
  uint16_t* rot_k;
};

// Element d of a head x (bf16), rotated when d < rotary_dim (token t). cs: the
// pairs' cos and sin (rope_cos_sin) staged in shared memory, or null.
__device__ __forceinline__ float head_value(const Split& sp, const uint16_t* x, int64_t t, int d,
                                            const float* cs) {
  if (!sp.rotate || d >= sp.rope.rotary_dim) return bf2f(x[d]);
  const int half = sp.rope.rotary_dim / 2;
  const int i = sp.rope.neox ? (d < half ? d : d - half) : d / 2;
  int i0, i1;
  rope_pair(sp.rope, i, i0, i1);
  float x0 = bf2f(x[i0]), x1 = bf2f(x[i1]);
  if (cs)
    rope_apply(cs[2 * i], cs[2 * i + 1], x0, x1);
  else
    rope_rotate(sp.rope, t, i, x0, x1);
  return d == i0 ? x0 : x1;
}

// Sums the lanes' partial dot products dot[GC] over the lk lanes of one key row
// (GC <= lk, both powers of two) by halving: at each of the first log2(GC) levels a
// lane keeps half of its heads and sends the other half to its partner, so that
// GC - 1 + log2(lk / GC) shuffles do the work of GC * log2(lk). Returns the sum of
// head `head` (set here; the lk / GC lanes of one head hold the same value).
template <int GC>
__device__ __forceinline__ float sum_heads_halving(float (&dot)[GC], int lk, int sub, int& head) {
  head = 0;
  int o = lk / 2;
#pragma unroll
  for (int n = GC; n > 1; n >>= 1, o >>= 1) {
    const bool up = sub & o;
#pragma unroll
    for (int k = 0; k < n / 2; ++k) {
      const float send = up ? dot[k] : dot[k + n / 2];
      const float keep = up ? dot[k + n / 2] : dot[k];
      dot[k] = keep + __shfl_xor_sync(0xffffffffu, send, o);
    }
    if (up) head += n / 2;
  }
  float r = dot[0];
  for (; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
  return r;
}

// The keys [lo, p] a query token attends to.
struct QueryRange {
  int32_t p, lo;
  const int32_t* table;
};

__device__ __forceinline__ QueryRange query_range(const PagedArgs& a, int t) {
  const int32_t* info = a.seq_info + a.token_seq[t] * 4;
  QueryRange r;
  r.p = info[2] - info[1] + (t - info[0]);
  r.lo = a.sliding_window > 0 ? max(0, r.p - a.sliding_window + 1) : 0;
  r.table = a.block_tables + info[3];
  return r;
}

template <int GC, bool PIPE, int W>
__global__ void __launch_bounds__(W * 32)
    token_attention_kernel(const uint16_t* __restrict__ q, PagedArgs a, Split sp,
                           uint16_t* __restrict__ out) {
  constexpr int kT = W * 32;
  extern __shared__ float smem[];
  pdl_launch_dependents();
  // PIPE with early_layout: what depends on the step's layout only (the keys'
  // slots, the rotary cos/sin) is read before the wait, while the kernel before still
  // runs; the layout is uploaded before the step's first kernel.
  const bool early = PIPE && sp.early_layout;
  if (!early) pdl_wait();
  const int t = blockIdx.x, h0 = blockIdx.y * GC, split = blockIdx.z;
  const int D = a.head_dim, Hq = a.num_heads, g = h0 / (Hq / a.num_kv_heads);
  const QueryRange qr = query_range(a, t);
  const int begin = qr.lo + split * sp.chunk;
  if (begin > qr.p) {
    if (early) pdl_wait();
    return;
  }
  const int len = min(qr.p + 1, begin + sp.chunk) - begin;
  const int64_t slot_stride = static_cast<int64_t>(a.num_kv_heads) * D;
  // With new_k, the split that holds position p (always its last row) takes key and
  // value p from new_k / new_v: its loops run over the cached rows only, then add row
  // p. The first head group of that split writes them into the cache for later steps
  // (no block of this launch reads them there).
  const bool own = sp.new_k != nullptr && qr.p < begin + sp.chunk;
  const int cached = own ? len - 1 : len;

  float* q_s = smem;                      // [GC, D]
  float* sc = q_s + GC * D;               // [GC, chunk]
  float* red = sc + GC * sp.chunk;        // [W, GC, D]
  float* stat = red + W * GC * D;    // [GC, 2]
  float* kv_s = stat + 2 * GC;            // [2, D]: key and value p (own split)
  // [chunk]: the cache slot of each cached key (PIPE); 8-byte aligned (every size
  // above is even).
  int64_t* slot_s = reinterpret_cast<int64_t*>(kv_s + 2 * D);
  // [rotary_dim / 2, 2] (PIPE): cos and sin of each rotary pair for token t.
  float* cs_s = reinterpret_cast<float*>(slot_s + sp.chunk);
  constexpr int U = PIPE ? 8 : kUnroll;  // rows per lane per batch
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, vecs = D / 8;
  int lk = 1;  // lanes per key row: a power of two >= D / 8
  while (lk < vecs) lk <<= 1;
  const int kpw = 32 / lk, sub = lane % lk, kk = lane / lk, d0 = sub * 8;
  const bool active = sub < vecs;
  const int64_t head_off = static_cast<int64_t>(g) * D + d0;
  const bool halving = sp.halving && GC <= lk;
  const int step = W * kpw;
  auto load_rows = [&](const uint16_t* cache, int base, Bf16x8 (&rows)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = base + u * step + warp * kpw + kk;
      if (j < cached && active) {
        const int64_t slot = PIPE ? slot_s[j] : slot_of(a, qr.table, begin + j);
        rows[u] = load8(cache + slot * slot_stride + head_off);
      } else {
        rows[u] = Bf16x8{{0u, 0u, 0u, 0u}};
      }
    }
  };

  // The first batch of key rows, read before the wait where no kernel of this step
  // writes the cache before this one (it writes the step's keys itself): the cached
  // rows were written by earlier steps, before this step's layout was uploaded. Wide
  // blocks only (a few sequences): H100 b1 +0.3%, while b16-b256 lost 0.2-0.4% with
  // every block reading early (bench/cuda/NOTES.md, run g8).
  const bool early_keys = early && sp.new_k != nullptr && W == kWideWarps;
  Bf16x8 krows[U];
  const float* cs = nullptr;
  if (PIPE) {
    for (int j = threadIdx.x; j < cached; j += kT) slot_s[j] = slot_of(a, qr.table, begin + j);
    if (sp.rotate) {
      for (int i = threadIdx.x; i < sp.rope.rotary_dim / 2; i += kT)
        rope_cos_sin(sp.rope, t, i, cs_s[2 * i], cs_s[2 * i + 1]);
      cs = cs_s;
    }
    __syncthreads();
    if (early_keys) load_rows(a.k_cache, 0, krows);
    if (early) pdl_wait();
  }

  const float qscale = a.scale * kLog2e;  // scores in log2 units: exp2 below
  for (int i = threadIdx.x; i < GC * D; i += kT)
    q_s[i] = head_value(sp, q + (static_cast<int64_t>(t) * Hq + h0 + i / D) * D, t, i % D, cs);
  if (own)  // staged with q: no load on the path after the cached rows
    for (int i = threadIdx.x; i < 2 * D; i += kT) {
      const int64_t head = t * slot_stride + static_cast<int64_t>(g) * D;
      kv_s[i] = i < D ? head_value(sp, sp.new_k + head, t, i, cs) : bf2f(sp.new_v[head + i - D]);
    }
  __syncthreads();
  // One split with the rotary embedding: no combine kernel follows, so this block
  // leaves its q heads rotated in place, as rotary() would (it alone reads them; the
  // host plans such a launch only with one block per KV head, which then alone reads
  // that head of the new k: rotated in place below).
  const bool write_back = sp.rotate && sp.splits == 1;
  if (write_back)
    for (int i = threadIdx.x; i < GC * D; i += kT)
      sp.rot_q[(static_cast<int64_t>(t) * Hq + h0 + i / D) * D + i % D] = f2bf(q_s[i]);
  // The token's key (rotated) and value into the cache, by the first head group of
  // the split that holds position p; no block of this launch reads them there.
  if (own && h0 % (Hq / a.num_kv_heads) == 0) {
    const int64_t slot = a.slot_mapping[t];
    if (slot >= 0)
      for (int i = threadIdx.x; i < 2 * D; i += kT)
        (i < D ? a.k_cache : a.v_cache)[slot * slot_stride + static_cast<int64_t>(g) * D + i % D] =
            f2bf(kv_s[i]);
    if (write_back)
      for (int i = threadIdx.x; i < D; i += kT)
        sp.rot_k[t * slot_stride + static_cast<int64_t>(g) * D + i] = f2bf(kv_s[i]);
  }

  float qv[GC][8];
#pragma unroll
  for (int h = 0; h < GC; ++h)
#pragma unroll
    for (int j = 0; j < 8; ++j) qv[h][j] = active ? q_s[h * D + d0 + j] * qscale : 0.0f;

  // Scores.
  for (int base = 0; base < cached; base += step * U) {
    Bf16x8 (&rows)[U] = krows;
    if (!early_keys || base > 0) load_rows(a.k_cache, base, rows);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float dot[GC];
#pragma unroll
      for (int h = 0; h < GC; ++h) {
        dot[h] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) dot[h] += qv[h][j] * rows[u].get(j);
      }
      const int j = base + u * step + warp * kpw + kk;
      if (PIPE && halving) {  // (shuffles: a quarter of the loop's issue slots at GC 4)
        int head;
        const float r = sum_heads_halving<GC>(dot, lk, sub, head);
        if ((sub & (lk / GC - 1)) == 0 && j < cached) sc[head * sp.chunk + j] = r;
        continue;
      }
      for (int o = lk / 2; o > 0; o >>= 1)
#pragma unroll
        for (int h = 0; h < GC; ++h) dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], o);
      if (sub == 0 && j < cached)
#pragma unroll
        for (int h = 0; h < GC; ++h) sc[h * sp.chunk + j] = dot[h];
    }
  }
  if (own && warp == 0) {  // key p, from the step's k
    float dot[GC];
#pragma unroll
    for (int h = 0; h < GC; ++h) {
      dot[h] = 0.0f;
      if (active)
#pragma unroll
        for (int j = 0; j < 8; ++j) dot[h] += qv[h][j] * kv_s[d0 + j];
    }
    for (int o = lk / 2; o > 0; o >>= 1)
#pragma unroll
      for (int h = 0; h < GC; ++h) dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], o);
    if (lane == 0)
#pragma unroll
      for (int h = 0; h < GC; ++h) sc[h * sp.chunk + len - 1] = dot[h];
  }
  // PIPE: the first batch of value rows is in flight during the softmax statistics.
  Bf16x8 vrows[U];
  if (PIPE) load_rows(a.v_cache, 0, vrows);
  __syncthreads();

  // Softmax statistics of this split, one warp per head.
  for (int h = warp; h < GC; h += W) {
    float* s = sc + h * sp.chunk;
    float m = -INFINITY;
    for (int j = lane; j < len; j += 32) m = fmaxf(m, s[j]);
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lane; j < len; j += 32) {
      const float e = exp2f(s[j] - m);
      s[j] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) {
      stat[2 * h] = m;
      stat[2 * h + 1] = l;
    }
  }
  __syncthreads();

  // Weighted sum of V.
  float acc[GC][8];
#pragma unroll
  for (int h = 0; h < GC; ++h)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[h][j] = 0.0f;
  for (int base = 0; base < cached; base += step * U) {
    if (!PIPE || base > 0) load_rows(a.v_cache, base, vrows);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = base + u * step + warp * kpw + kk;
      if (j < cached) {
#pragma unroll
        for (int h = 0; h < GC; ++h) {
          const float w = sc[h * sp.chunk + j];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[h][e] += w * vrows[u].get(e);
        }
      }
    }
  }
  if (own && warp == 0 && kk == 0 && active) {  // value p, from the step's v
#pragma unroll
    for (int h = 0; h < GC; ++h) {
      const float w = sc[h * sp.chunk + len - 1];
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[h][e] += w * kv_s[D + d0 + e];
    }
  }
  for (int o = lk; o < 32; o <<= 1)
#pragma unroll
    for (int h = 0; h < GC; ++h)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[h][e] += __shfl_xor_sync(0xffffffffu, acc[h][e], o);
  if (kk == 0 && active)
#pragma unroll
    for (int h = 0; h < GC; ++h)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[(warp * GC + h) * D + d0 + e] = acc[h][e];
  __syncthreads();

  for (int i = threadIdx.x; i < GC * D; i += kT) {
    const int h = i / D, d = i % D;
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < W; ++w) o += red[(w * GC + h) * D + d];
    if (sp.splits == 1) {
      out[(static_cast<int64_t>(t) * Hq + h0 + h) * D + d] = f2bf(o / stat[2 * h + 1]);
    } else {
      const int64_t idx = (static_cast<int64_t>(t) * Hq + h0 + h) * sp.splits + split;
      sp.ws_o[idx * D + d] = o;
      if (d == 0) {
        sp.ws_ml[2 * idx] = stat[2 * h];
        sp.ws_ml[2 * idx + 1] = stat[2 * h + 1];
      }
    }
  }
}

// Combines the splits of one (token, head): out = sum_i o_i 2^(m_i - M) /
// sum_i l_i 2^(m_i - M) over the splits that ran (a last-block combine inside the
// attention kernel, a fence and an atomic per block, measured slower: NOTES).
__global__ void combine_kernel(PagedArgs a, Split sp, uint16_t* __restrict__ out) {
  pdl_launch_dependents();
  pdl_wait();
  const int t = blockIdx.x, h = blockIdx.y, D = a.head_dim, Hq = a.num_heads;
  if (sp.rotate) {  // q and k as rotary() leaves them (the attention read them unrotated)
    rope_head_inplace(sp.rope, t, sp.rot_q + (static_cast<int64_t>(t) * Hq + h) * D);
    if (h < a.num_kv_heads)
      rope_head_inplace(sp.rope, t, sp.rot_k + (static_cast<int64_t>(t) * a.num_kv_heads + h) * D);
  }
  if (sp.splits <= 1) return;  // the attention kernel wrote out
  const QueryRange qr = query_range(a, t);
  const int used = (qr.p - qr.lo + 1 + sp.chunk - 1) / sp.chunk;
  const int64_t first = (static_cast<int64_t>(t) * Hq + h) * sp.splits;
  float M = -INFINITY;
  for (int i = 0; i < used; ++i) M = fmaxf(M, sp.ws_ml[2 * (first + i)]);
  float L = 0.0f;
  for (int i = 0; i < used; ++i)
    L += sp.ws_ml[2 * (first + i) + 1] * exp2f(sp.ws_ml[2 * (first + i)] - M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int i = 0; i < used; ++i)
      o += sp.ws_o[(first + i) * D + d] * exp2f(sp.ws_ml[2 * (first + i)] - M);
    out[(static_cast<int64_t>(t) * Hq + h) * D + d] = f2bf(o / L);
  }
}

// Shared memory of one block: q, scores, the cross-warp sums, statistics, key and
// value p, and (pipelined loads) the slots of the cached keys and the rotary cos/sin.
size_t smem_bytes(int gc, int head_dim, int chunk, bool pipelined, int warps) {
  return sizeof(float) * (static_cast<size_t>(gc) * head_dim * (1 + warps) +
                          static_cast<size_t>(gc) * chunk + 2 * gc + 2 * head_dim) +
         (pipelined ? sizeof(int64_t) * static_cast<size_t>(chunk) + sizeof(float) * head_dim : 0);
}

template <int GC, bool PIPE, int W>
void launch(const bf16_bits* q, const PagedArgs& a, const SplitPlan& plan, Split sp,
            bf16_bits* out, cudaStream_t stream) {
  static bool configured = false;
  if (!configured) {
    BANYAN_CUDA_CHECK(cudaFuncSetAttribute(token_attention_kernel<GC, PIPE, W>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(kMaxSmem)));
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(a.num_tokens), static_cast<unsigned>(a.num_heads / GC),
                  static_cast<unsigned>(plan.splits));
  launch_chained("token_attention", token_attention_kernel<GC, PIPE, W>, grid, W * 32,
                 smem_bytes(GC, a.head_dim, plan.chunk, PIPE, W), stream, q, a, sp, out);
}

template <int GC>
void launch(const bf16_bits* q, const PagedArgs& a, const SplitPlan& plan, Split sp,
            bf16_bits* out, cudaStream_t stream) {
  if constexpr (GC <= kWideMaxGroup)
    if (plan.warps == kWideWarps) return launch<GC, true, kWideWarps>(q, a, plan, sp, out, stream);
  if (g_attention_mode & kPipelinedLoads)
    launch<GC, true, kWarps>(q, a, plan, sp, out, stream);
  else
    launch<GC, false, kWarps>(q, a, plan, sp, out, stream);
}

}  // namespace

SplitPlan plan_token_attention(const PagedArgs& a, int num_sms) {
  if (a.head_dim % 8 || a.head_dim > 256 || a.head_dim <= 0)
    throw Error(Code::unsupported, "cuda attention: head_dim " + std::to_string(a.head_dim) +
                                       " is not supported (a multiple of 8, at most 256)");
  SplitPlan p{};
  const int G = a.num_heads / a.num_kv_heads;
  p.group = g_max_group;
  while (G % p.group) p.group >>= 1;
  int64_t max_keys = std::max(a.max_context_len, 1);
  if (a.sliding_window > 0) max_keys = std::min<int64_t>(max_keys, a.sliding_window);
  const int64_t base_blocks = static_cast<int64_t>(a.num_tokens) * (a.num_heads / p.group);
  int64_t splits = (int64_t{g_split_blocks_per_sm} * num_sms + base_blocks - 1) / base_blocks;
  splits = std::clamp<int64_t>(splits, 1, (max_keys + 31) / 32);
  int64_t chunk = ((max_keys + splits - 1) / splits + 31) / 32 * 32;
  // The scores of one split (and with pipelined loads its keys' slots, two floats'
  // worth each, and the rotary cos/sin) live in shared memory.
  const int64_t room = (static_cast<int64_t>(kMaxSmem) / 4 -
                        static_cast<int64_t>(p.group) * a.head_dim * (1 + kWarps) - 2 * p.group -
                        3 * a.head_dim) /
                       (p.group + 2);
  chunk = std::min<int64_t>(chunk, std::min<int64_t>(room / 32 * 32, 2048));
  p.chunk = static_cast<int32_t>(chunk);
  p.splits = static_cast<int32_t>((max_keys + chunk - 1) / chunk);
  // Wide blocks (the pipelined kernel): one batch of 8 rows per lane over 16 warps
  // covers the context.
  int lk = 1;
  while (lk < a.head_dim / 8) lk <<= 1;
  const int64_t wide_keys = int64_t{kWideWarps} * (32 / lk) * 8;
  if ((g_attention_mode & kWideBlocks) && (g_attention_mode & kPipelinedLoads) && p.splits > 1 &&
      p.group <= kWideMaxGroup &&
      base_blocks <= num_sms && max_keys <= wide_keys) {
    p.warps = kWideWarps;
    p.splits = 1;
    p.chunk = static_cast<int32_t>((max_keys + 31) / 32 * 32);
    // Still under a quarter of the SMs (one to four sequences of Llama-3-8B): one
    // query head per block, G times the blocks (the rotary embedding then runs before,
    // token_attention). H100, b1: 180.1 -> 182.0 tok/s (bench/cuda/NOTES.md).
    // Not with a cap set below 8 (set_decode_attention_max_group: the A/B).
    if (g_max_group == 8 && base_blocks * 4 < num_sms) p.group = 1;
  }
  return p;
}

size_t token_attention_workspace(const PagedArgs& a, const SplitPlan& plan) {
  if (plan.splits <= 1) return 0;
  return sizeof(float) * static_cast<size_t>(a.num_tokens) * a.num_heads * plan.splits *
         (a.head_dim + 2);
}

void token_attention(const bf16_bits* q, const PagedArgs& a, const SplitPlan& plan,
                     float* workspace, const bf16_bits* new_k,
                     const bf16_bits* new_v, bf16_bits* out, cudaStream_t stream,
                     const RotaryArgs* rope) {
  if (a.num_tokens <= 0) return;
  if ((new_k == nullptr) != (new_v == nullptr))
    throw Error(Code::internal, "token_attention: new_k and new_v go together");
  if (new_k && a.max_query_len != 1)
    throw Error(Code::internal, "token_attention: writes the cache only for one query token per sequence");
  if (rope && (!new_k || rope->rotary_dim <= 0 || rope->rotary_dim % 2 || rope->rotary_dim > a.head_dim))
    throw Error(Code::internal, "token_attention: the rotary embedding needs new_k and an even rotary_dim <= head_dim");
  // One split and more than one block per KV head: no block may rotate the new k in
  // place (the others read it), so the rotary kernel runs first instead.
  if (rope && plan.splits == 1 && plan.group != a.num_heads / a.num_kv_heads) {
    rotary(const_cast<bf16_bits*>(q), a.num_heads, const_cast<bf16_bits*>(new_k), a.num_kv_heads,
           a.num_tokens, *rope, stream);
    rope = nullptr;
  }
  Split sp{plan.chunk, plan.splits, workspace, nullptr, new_k, new_v, rope != nullptr,
           (g_attention_mode & kHalvingSums) != 0, (g_attention_mode & kEarlyLayout) != 0,
           rope ? *rope : RotaryArgs{}, const_cast<bf16_bits*>(q), const_cast<bf16_bits*>(new_k)};
  if (plan.splits > 1)
    sp.ws_ml = workspace + static_cast<size_t>(a.num_tokens) * a.num_heads * plan.splits * a.head_dim;
  switch (plan.group) {
    case 8: launch<8>(q, a, plan, sp, out, stream); break;
    case 4: launch<4>(q, a, plan, sp, out, stream); break;
    case 2: launch<2>(q, a, plan, sp, out, stream); break;
    default: launch<1>(q, a, plan, sp, out, stream); break;
  }
  if (plan.splits > 1)  // (which also leaves q and k rotated, with rope)
    launch_chained("token_attention combine", combine_kernel,
                   dim3(static_cast<unsigned>(a.num_tokens), static_cast<unsigned>(a.num_heads)),
                   128, 0, stream, a, sp, out);
}

int decode_attention_mode() { return g_attention_mode; }
int decode_attention_split_blocks() { return g_split_blocks_per_sm; }
int decode_attention_max_group() { return g_max_group; }
void set_decode_attention_max_group(int heads) {
  g_max_group = heads >= 8 ? 8 : heads >= 4 ? 4 : heads >= 2 ? 2 : 1;
}
void set_decode_attention_split_blocks(int blocks) { g_split_blocks_per_sm = std::clamp(blocks, 1, 64); }
void set_decode_attention_mode(int mode) { g_attention_mode = mode & 127 & ~2; }

}  // namespace banyan::kernels::cuda
