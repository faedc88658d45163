// Paged attention on the CPU: one work item per (sequence, query token, KV head),
// which serves the whole group of query heads sharing that KV head (GQA/MQA), so
// each cached key and value row is read once per group. Prefill chunks, decode and
// mixed batches take the same path; the causal mask is implicit (a query at index
// p of its sequence reads keys 0..p), the sliding window trims the start.
#include "kernels/cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace banyan::kernels::cpu {
namespace {

inline float dot(const float* a, const float* b, int32_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int32_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

void write_cache(const float* k, const float* v, const AttentionArgs& a) {
  const int64_t width = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;
#pragma omp parallel for schedule(static) if (a.num_tokens * width > kParallelMin)
  for (int32_t t = 0; t < a.num_tokens; ++t) {
    const int64_t slot = a.slot_mapping[t];
    if (slot < 0) continue;
    std::memcpy(a.k_cache + slot * width, k + t * width, width * sizeof(float));
    std::memcpy(a.v_cache + slot * width, v + t * width, width * sizeof(float));
  }
}

}  // namespace

void paged_attention(const float* q, const float* k, const float* v, const AttentionArgs& a,
                     float* out) {
  write_cache(k, v, a);

  const int32_t D = a.head_dim, Hq = a.num_heads, Hk = a.num_kv_heads, G = Hq / Hk;
  const int64_t kv_width = static_cast<int64_t>(Hk) * D;
  // Work items: sum over sequences of query_len * Hk; prefix sums find the sequence.
  std::vector<int64_t> first(a.num_seqs + 1, 0);
  int32_t max_ctx = 0;
  int64_t work = 0;  // multiply-adds, roughly
  for (int32_t s = 0; s < a.num_seqs; ++s) {
    first[s + 1] = first[s] + static_cast<int64_t>(a.seq_info[s * 4 + 1]) * Hk;
    max_ctx = std::max(max_ctx, a.seq_info[s * 4 + 2]);
    work += int64_t{a.seq_info[s * 4 + 1]} * a.seq_info[s * 4 + 2] * 2 * Hq * D;
  }
  const int64_t items = first[a.num_seqs];

#pragma omp parallel if (work > kParallelMin)
  {
    std::vector<float> scores(static_cast<size_t>(G) * std::max(max_ctx, 1));
#pragma omp for schedule(dynamic, 4)
    for (int64_t item = 0; item < items; ++item) {
      const int32_t s = static_cast<int32_t>(
          std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
      const int32_t* info = a.seq_info + s * 4;
      const int64_t local = item - first[s];
      const int32_t i = static_cast<int32_t>(local / Hk), g = static_cast<int32_t>(local % Hk);
      const int32_t qstart = info[0], qlen = info[1], ctx = info[2];
      const int32_t* table = a.block_tables + info[3];
      const int64_t t = qstart + i;
      const int32_t p = ctx - qlen + i;  // index of this query in its sequence
      const int32_t lo = a.sliding_window > 0 ? std::max(0, p - a.sliding_window + 1) : 0;
      const int32_t n = p - lo + 1;

      const float* qg = q + (t * Hq + static_cast<int64_t>(g) * G) * D;
      for (int32_t j = 0; j < n; ++j) {
        const int32_t pos = lo + j;
        const int64_t slot = static_cast<int64_t>(table[pos / a.block_size]) * a.block_size +
                             pos % a.block_size;
        const float* krow = a.k_cache + slot * kv_width + static_cast<int64_t>(g) * D;
        for (int32_t h = 0; h < G; ++h) scores[h * n + j] = dot(qg + h * D, krow, D) * a.scale;
      }
      for (int32_t h = 0; h < G; ++h) {
        float* sc = scores.data() + h * n;
        float mx = -std::numeric_limits<float>::infinity();
        for (int32_t j = 0; j < n; ++j) mx = std::max(mx, sc[j]);
        float sum = 0.0f;
        for (int32_t j = 0; j < n; ++j) {
          sc[j] = std::exp(sc[j] - mx);
          sum += sc[j];
        }
        const float inv = 1.0f / sum;
        for (int32_t j = 0; j < n; ++j) sc[j] *= inv;
      }
      float* og = out + (t * Hq + static_cast<int64_t>(g) * G) * D;
      std::fill(og, og + static_cast<int64_t>(G) * D, 0.0f);
      for (int32_t j = 0; j < n; ++j) {
        const int32_t pos = lo + j;
        const int64_t slot = static_cast<int64_t>(table[pos / a.block_size]) * a.block_size +
                             pos % a.block_size;
        const float* vrow = a.v_cache + slot * kv_width + static_cast<int64_t>(g) * D;
        for (int32_t h = 0; h < G; ++h) {
          const float w = scores[h * n + j];
          float* o = og + h * D;
#pragma omp simd
          for (int32_t d = 0; d < D; ++d) o[d] += w * vrow[d];
        }
      }
    }
  }
}

}  // namespace banyan::kernels::cpu
