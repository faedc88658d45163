// Host-side launchers of the CUDA kernels behind CudaBackend: plain functions over
// raw device pointers that enqueue on `stream` and check the launch. Activations
// are bf16 (passed as uint16_t bit patterns so this header needs no cuda_bf16.h);
// accumulation is f32. Inputs are trusted (StepContext validated the shapes).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace banyan::kernels::cuda {

using bf16_bits = uint16_t;

// --- programmatic dependent launch (elementwise.cu) -------------------------------
/// Whether the decode-chain kernels launch with programmatic dependent launch (their
/// prologue overlaps the previous kernel's tail). On unless the environment sets
/// BANYAN_PDL=0; set_pdl switches it (for A/B runs; graphs captured before keep
/// their launches).
bool pdl_enabled();
void set_pdl(bool on);

// --- norm.cu --------------------------------------------------------------------
/// Per row of width n: if residual, residual = bf16(residual + x) and normalize it.
/// out = bf16(w * bf16(v / rms)) when w_offset == 0 (Llama), else bf16((w + w_offset) * v / rms).
void rms_norm(const bf16_bits* x, bf16_bits* residual, const float* w, float w_offset, float eps,
              int64_t rows, int64_t n, bf16_bits* out, cudaStream_t stream);
void layer_norm(const bf16_bits* x, bf16_bits* residual, const float* w, const float* bias,
                float eps, int64_t rows, int64_t n, bf16_bits* out, cudaStream_t stream);

// --- elementwise.cu -------------------------------------------------------------
/// out[t] = table[ids[t]]; table bf16 (table_f32 false) or f32.
void embedding(const void* table, bool table_f32, int64_t hidden, const int32_t* ids, int64_t n,
               bf16_bits* out, cudaStream_t stream);
/// out = bf16(bf16(act(gate)) * up), as the reference computes in bf16.
void act_mul(const bf16_bits* gate, const bf16_bits* up, int64_t n, int32_t activation,
             bf16_bits* out, cudaStream_t stream);
/// out [rows, n] = act_mul of the two halves of each row of gate_up [rows, 2n].
void act_mul_halves(const bf16_bits* gate_up, int64_t rows, int64_t n, int32_t activation, bf16_bits* out,
                    cudaStream_t stream);
void activation(const bf16_bits* x, int64_t n, int32_t activation, bf16_bits* out,
                cudaStream_t stream);
void add(const bf16_bits* a, const bf16_bits* b, int64_t n, bf16_bits* out, cudaStream_t stream);
/// out[m, :] += bias (f32) for out [M, N] of bf16 (out_f32 false) or f32.
void add_bias(void* out, bool out_f32, int64_t M, int64_t N, const float* bias,
              cudaStream_t stream);
/// out[r] = x[rows[r]] for rows of `row_bytes` bytes.
void gather_rows(const void* x, int64_t row_bytes, const int32_t* rows, int64_t n, void* out,
                 cudaStream_t stream);
/// Where split_columns writes: part p takes columns [begin[p], begin[p + 1]).
struct SplitParts {
  static constexpr int kMax = 8;
  int parts = 0;
  void* dst[kMax] = {};
  int64_t begin[kMax + 1] = {};
};
/// outs of x [rows, begin[parts]] (elements of elem_bytes), one pass over x.
void split_columns(const void* x, int64_t rows, int64_t elem_bytes, const SplitParts& parts,
                   cudaStream_t stream);
/// dst[i] = src[i] converted; src BanyanDType bf16/f16/f32, dst bf16 or f32.
void convert(const void* src, int32_t src_dtype, void* dst, bool dst_f32, int64_t n,
             cudaStream_t stream);
/// Fills bf16 values uniform in [-scale, scale) from a counter-based hash of (seed, i).
void fill_uniform_bf16(bf16_bits* dst, int64_t n, uint64_t seed, float scale, cudaStream_t stream);

// --- gemv.cu ------------------------------------------------------------------
/// Rows of x up to which gemv() replaces the GEMM (decode of a few sequences).
constexpr int64_t kGemvMaxRows = 4;
/// Whether gemv() takes this product: M <= kGemvMaxRows, K % 8 == 0, 16-byte aligned x, W.
bool gemv_supported(int64_t M, int64_t K, const void* x, const void* w);
/// out [M, N] (+)= x [M, K] · W^T for W [N, K] bf16, x bf16, out bf16 or f32.
/// Small N splits each row over several warps, so that every SM has rows to stream.
/// Weight vectors (16 bytes) per lane that gemv() prefetches into L2 before it waits
/// for the previous kernel (programmatic dependent launch); 0 (none) by default,
/// at most 32. For experiments: every count measured slower on the H100.
/// Blocks per SM below which gemv() splits each weight row over more warps (default
/// 4; for the A/B of the split rule).
int gemv_blocks_per_sm();
void gemv_set_blocks_per_sm(int blocks);
int gemv_prefetch();
void gemv_set_prefetch(int vectors_per_lane);
/// Bytes of each block's weight slice that gemv() prefetches into L2 with one bulk
/// copy-engine prefetch (cp.async.bulk.prefetch.L2, sm_90) before its wait; 0 (off) by
/// default, at most 1 MiB, rounded down to 16. Not measured yet.
int gemv_bulk_prefetch();
void gemv_set_bulk_prefetch(int bytes);
/// out [M, N] = act(x · Wg^T) * (x · Wu^T) for w = [Wg; Wu] ([2N, K]), with the
/// roundings of gemv() into bf16 followed by act_mul; the conditions of gemv().
void gemv_gated(const bf16_bits* x, int64_t M, const bf16_bits* w, bf16_bits* out, int64_t N,
                int64_t K, int32_t act, int num_sms, cudaStream_t stream);
void gemv(const bf16_bits* x, int64_t M, const bf16_bits* w, void* out, bool out_f32, int64_t N,
          int64_t K, bool accumulate, int num_sms, cudaStream_t stream);

// --- rotary.cu ------------------------------------------------------------------
struct RotaryArgs {
  const int32_t* positions;  ///< [T]
  const float* inv_freq;     ///< [rows, rotary_dim / 2]
  const int32_t* freq_row;   ///< [T] or null (row 0)
  float scaling;
  int32_t head_dim, rotary_dim;
  bool neox;
};
void rotary(bf16_bits* q, int32_t q_heads, bf16_bits* k, int32_t k_heads, int64_t tokens,
            const RotaryArgs& a, cudaStream_t stream);

// --- attention ------------------------------------------------------------------
/// The paged layout one attention call reads (device pointers of StepLayout).
struct PagedArgs {
  const int32_t* seq_info;      ///< [S, 4]: query_start, query_len, context_len, block_offset
  const int32_t* token_seq;     ///< [T]
  const int32_t* block_tables;
  const int32_t* slot_mapping;  ///< [T]
  int32_t num_seqs, num_tokens, max_query_len, max_context_len;
  bf16_bits* k_cache;           ///< [blocks, block_size, kv_heads, head_dim]
  bf16_bits* v_cache;
  int32_t block_size, num_heads, num_kv_heads, head_dim;
  float scale;
  int32_t sliding_window;
  int32_t block_shift;          ///< log2(block_size) when a power of two, else -1
};

/// kv_write.cu: k, v [T, kv_heads * head_dim] into the caches at slot_mapping (-1: skip).
void kv_cache_write(const bf16_bits* k, const bf16_bits* v, const PagedArgs& a,
                    cudaStream_t stream);

/// attention_decode.cu: one query token per block row, split over the keys (split-KV)
/// and GQA-aware (a block serves up to 8 query heads of one KV head). Any head_dim
/// that is a multiple of 8, up to 256. Works for every batch (decode, prefill, mixed).
struct SplitPlan {
  int32_t group;   ///< query heads per block
  int32_t chunk;   ///< keys per split
  int32_t splits;  ///< splits per query (grid z)
  int32_t warps = 4;  ///< warps per block (16: wide blocks, one split)
};
SplitPlan plan_token_attention(const PagedArgs& a, int num_sms);
/// Bytes of f32 workspace the plan needs (0 when it has one split).
size_t token_attention_workspace(const PagedArgs& a, const SplitPlan& plan);
/// token_attention: the splits of one (token, head group) are merged by a combine
/// kernel after the attention kernel. With new_k and new_v (the step's k, v [T,
/// kv_heads * head_dim]; only when every sequence has one query token), the kernel also
/// writes them into the caches (no kv_cache_write before it) and reads each token's
/// own key and value from them. With rope (and new_k), q and k are not rotated yet: the
/// kernel rotates them as it reads them and leaves them rotated in place, as rotary()
/// would have: the combine kernel does it when there are splits, else the attention
/// kernel; with one split and several blocks per KV head, rotary() runs first.
/// How decode attention runs (A/B switches; default 125, attention_decode.cu): bit 0,
/// the attention kernel writes the step's K/V (else kv_cache_write before it); bit 1
/// unused (was a last-block combine, measured slower and removed); bit 2, the rotary
/// embedding inside decode attention (attention_rotary; else the rotary kernel first);
/// bit 3, pipelined loads (the block's cache slots resolved into shared memory first,
/// eight rows per lane per batch, the first value rows issued before the softmax); bit
/// 4 (with bit 3), wide blocks (16 warps reading a short context in one split where the grid has
/// fewer blocks than SMs: no combine kernel); bit 5, the scores' lane sums by halving
/// (with bit 3: sum_heads_halving in attention_decode.cu); bit 6, the keys' slots and
/// the rotary cos/sin read before waiting for the previous kernel (with bit 3).
/// Captured graphs keep the mode they were captured with.
enum DecodeAttentionMode {
  kAttentionWritesCache = 1,
  kRopeInAttention = 4,
  kPipelinedLoads = 8,
  kWideBlocks = 16,
  kHalvingSums = 32,
  kEarlyLayout = 64
};
int decode_attention_mode();
/// Blocks per SM that the token kernel's split-KV plan aims for (default 2): more
/// splits of fewer keys each (shorter dependent load chains), combined after.
int decode_attention_split_blocks();
void set_decode_attention_split_blocks(int blocks);
/// The most query heads (sharing one KV head) one block serves (default 8; 1, 2, 4
/// or 8): fewer heads per block, more blocks (each reads the KV head's rows).
int decode_attention_max_group();
void set_decode_attention_max_group(int heads);
void set_decode_attention_mode(int mode);
void token_attention(const bf16_bits* q, const PagedArgs& a, const SplitPlan& plan,
                     float* workspace, const bf16_bits* new_k,
                     const bf16_bits* new_v, bf16_bits* out, cudaStream_t stream,
                     const RotaryArgs* rope = nullptr);

/// attention_prefill.cu: tensor-core flash attention of query tiles over the paged
/// cache (causal, windowed, chunked prefill). head_dim 64 or 128.
bool prefill_attention_supported(int32_t head_dim);
void prefill_attention(const bf16_bits* q, const PagedArgs& a, bf16_bits* out,
                       cudaStream_t stream);

}  // namespace banyan::kernels::cuda
