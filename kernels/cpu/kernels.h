// CPU kernels behind CpuBackend: plain functions over raw pointers, multi-threaded
// with OpenMP, written as vectorizable loops with f32 accumulation. Inputs are
// trusted (StepContext validates shapes before any kernel runs).
#pragma once

#include <banyan/abi.h>

#include <cstdint>

namespace banyan::kernels::cpu {

enum class WeightType { f32, bf16 };

/// Work (in multiply-adds or elements) below which a kernel runs on the calling
/// thread: waking the OpenMP team costs more than it saves, and on a shared
/// machine a descheduled team member would stall the whole op.
inline constexpr int64_t kParallelMin = int64_t{1} << 15;

// --- matmul.cpp -----------------------------------------------------------------
/// out [M, N] (+)= x [M, K] · W^T (+ bias [N]); W [N, K], or [K, N] when transposed.
void matmul(const float* x, int64_t M, int64_t K, const void* w, WeightType wt, bool transposed,
            int64_t N, const float* bias, float* out, bool accumulate);
/// Rows up to which matmul uses the streaming kernel instead of sgemm tiles
/// (tuned with banyan_bench_cpu --matmul; a knob for that benchmark).
int64_t small_m_threshold();
void set_small_m_threshold(int64_t rows);

// --- norm.cpp -------------------------------------------------------------------
/// Per row of width n: if residual, residual += x and normalize residual.
void rms_norm(const float* x, float* residual, const float* w, float w_offset, float eps,
              int64_t rows, int64_t n, float* out);
void layer_norm(const float* x, float* residual, const float* w, const float* bias, float eps,
                int64_t rows, int64_t n, float* out);

// --- elementwise.cpp ------------------------------------------------------------
void embedding(const void* table, WeightType wt, int64_t hidden, const int32_t* ids, int64_t n,
               float* out);
void act_mul(const float* gate, const float* up, int64_t n, int32_t activation, float* out);
void activation(const float* x, int64_t n, int32_t activation, float* out);
void add(const float* a, const float* b, int64_t n, float* out);
void gather_rows(const float* x, int64_t width, const int32_t* rows, int64_t n, float* out);
/// dst[i] = convert(src[i]) for a checkpoint dtype (BanyanDType) into f32 or bf16.
void convert(const void* src, int32_t src_dtype, void* dst, WeightType dst_type, int64_t n);

// --- rotary.cpp -----------------------------------------------------------------
struct RotaryArgs {
  const int32_t* positions;
  const float* inv_freq;   ///< [rows, rotary_dim / 2]
  const int32_t* freq_row; ///< [T] or null
  float scaling;
  int32_t head_dim, rotary_dim;
  bool neox;
};
void rotary(float* q, int64_t q_heads, float* k, int64_t k_heads, int64_t tokens,
            const RotaryArgs& a);

// --- attention.cpp --------------------------------------------------------------
struct AttentionArgs {
  const int32_t* seq_info;      ///< [S, 4]: query_start, query_len, context_len, block_offset
  const int32_t* block_tables;
  const int32_t* slot_mapping;  ///< [T]
  int32_t num_seqs, num_tokens;
  float* k_cache;               ///< [blocks, block_size, kv_heads, head_dim]
  float* v_cache;
  int32_t block_size, num_heads, num_kv_heads, head_dim;
  float scale;
  int32_t sliding_window;
};
void paged_attention(const float* q, const float* k, const float* v, const AttentionArgs& a,
                     float* out);

// --- sampling.cpp ---------------------------------------------------------------
/// The sampling op (Backend::sample) over host logits [*, V]: banyan::logits::sample_row
/// per row, rows in parallel. Returns the bytes of results written (counted as copied
/// to the host).
size_t sample(const float* logits, int64_t V, const BanyanSampleRow* rows, int64_t num_rows,
              const BanyanLogitEdit* edits, BanyanSampleResult* out);

}  // namespace banyan::kernels::cpu
