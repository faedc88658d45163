// Paged attention on the CPU. A work item is (sequence, KV head, tile of up to
// kTileRows / G query tokens): its rows are those tokens times the G query heads
// that share the KV head (GQA/MQA), so every cached key and value row it reads is
// used by all of them. Keys are walked block by block through the block table;
// for tiles of 4+ rows each chunk of up to 16 keys is transposed once and
// multiplied by 4 query rows at a time (no horizontal sums), smaller tiles
// (decode with few heads per group) take plain dot products. The causal mask is
// implicit (a query at index p of its sequence reads keys 0..p); the sliding
// window trims the start. Prefill chunks, decode and mixed batches share the path.
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace banyan::kernels::cpu {
namespace {

constexpr int32_t kTileRows = 16;  // query rows (tokens x heads) per work item
constexpr int32_t kChunk = 16;     // keys per transposed chunk

struct Item {
  int32_t seq, group, first, tokens;  // tokens [first, first + tokens) of the sequence's query
};

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

// Calls f(j, count, row_ptr) for consecutive runs of keys [from, to] of one
// sequence, split at block boundaries (and at kChunk keys); row_ptr is the first
// key's row of `pool` at head offset `head_off`.
template <class F>
void for_key_runs(const AttentionArgs& a, const int32_t* table, int32_t from, int32_t to,
                  const float* pool, int64_t head_off, F&& f) {
  const int64_t kv_width = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;
  for (int32_t pos = from, j = 0; pos <= to;) {
    const int32_t off = pos % a.block_size;
    const int32_t count = std::min({a.block_size - off, to - pos + 1, kChunk});
    const int64_t slot = static_cast<int64_t>(table[pos / a.block_size]) * a.block_size + off;
    f(j, count, pool + slot * kv_width + head_off);
    pos += count;
    j += count;
  }
}

// Per-thread buffers of one work item.
struct Scratch {
  std::vector<float> scores;  // [R, n]
  std::vector<float> kt;      // keys transposed: [D, n rounded up to kChunk]
  std::vector<float> vbuf;    // values gathered: [n, D]
};

void attend(const float* q, const AttentionArgs& a, const Item& it, Scratch& sc, float* out) {
  const int32_t D = a.head_dim, Hq = a.num_heads, G = Hq / a.num_kv_heads;
  const int64_t kv_width = static_cast<int64_t>(a.num_kv_heads) * D;
  const int32_t* info = a.seq_info + it.seq * 4;
  const int32_t qstart = info[0], qlen = info[1], ctx = info[2];
  const int32_t* table = a.block_tables + info[3];
  const int64_t head_off = static_cast<int64_t>(it.group) * D;
  const int32_t R = it.tokens * G;
  const int32_t p0 = ctx - qlen + it.first;  // index of the tile's first query
  auto lo_of = [&](int32_t p) { return a.sliding_window > 0 ? std::max(0, p - a.sliding_window + 1) : 0; };
  const int32_t kb = lo_of(p0), ke = p0 + it.tokens - 1, n = ke - kb + 1;
  const int64_t ld = (n + kChunk - 1) / kChunk * kChunk;
  // Row r = token r / G, head group * G + r % G.
  auto offset = [&](int32_t r) {
    const int64_t t = qstart + it.first + r / G;
    return (t * Hq + static_cast<int64_t>(it.group) * G + r % G) * D;
  };

  // Gather the keys (transposed) and values of [kb, ke] out of the pages.
  sc.vbuf.resize(static_cast<size_t>(n) * D);
  if (R >= 4) sc.kt.assign(static_cast<size_t>(D) * ld, 0.0f);
  for_key_runs(a, table, kb, ke, a.k_cache, head_off, [&](int32_t j, int32_t count, const float* k0) {
    const float* v0 = a.v_cache + (k0 - a.k_cache);
    for (int32_t c = 0; c < count; ++c) {
      float* dst = &sc.vbuf[static_cast<size_t>(j + c) * D];
      const float* src = v0 + c * kv_width;
#pragma omp simd
      for (int32_t d = 0; d < D; ++d) dst[d] = src[d];
      if (R >= 4)
        for (int32_t d = 0; d < D; ++d) sc.kt[d * ld + j + c] = k0[c * kv_width + d];
    }
  });

  sc.scores.resize(static_cast<size_t>(R) * n);
  float* S = sc.scores.data();
  if (R >= 4) {
    float block[4][16];
    for (int32_t r0 = 0; r0 < R; r0 += 4) {
      const float* rows[4];
      for (int32_t i = 0; i < 4; ++i) rows[i] = q + offset(std::min(r0 + i, R - 1));
      for (int32_t j = 0; j < n; j += kChunk) {
        rows4_times_keys16(rows, sc.kt.data() + j, ld, D, block);
        const int32_t cnt = std::min(kChunk, n - j);
        for (int32_t i = 0; i < 4 && r0 + i < R; ++i)
          for (int32_t c = 0; c < cnt; ++c) S[(r0 + i) * static_cast<int64_t>(n) + j + c] = block[i][c] * a.scale;
      }
    }
  } else {  // few rows (decode): plain dot products
    for_key_runs(a, table, kb, ke, a.k_cache, head_off, [&](int32_t j, int32_t count, const float* k0) {
      for (int32_t c = 0; c < count; ++c)
        for (int32_t r = 0; r < R; ++r)
          S[r * static_cast<int64_t>(n) + j + c] = dot(q + offset(r), k0 + c * kv_width, D) * a.scale;
    });
  }

  // Softmax of each row over its own keys [lo(p), p]; everything else weighs 0.
  for (int32_t r = 0; r < R; ++r) {
    const int32_t p = p0 + r / G;
    const int32_t b = lo_of(p) - kb, e = p - kb;
    float* row = S + r * static_cast<int64_t>(n);
    std::fill(row, row + b, 0.0f);
    std::fill(row + e + 1, row + n, 0.0f);
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t j = b; j <= e; ++j) mx = std::max(mx, row[j]);
    const float inv = 1.0f / exp_sub_sum(row + b, e - b + 1, mx);
    for (int32_t j = b; j <= e; ++j) row[j] *= inv;
    weighted_rows(row, n, sc.vbuf.data(), D, out + offset(r));
  }
}

}  // namespace

void paged_attention(const float* q, const float* k, const float* v, const AttentionArgs& a,
                     float* out) {
  write_cache(k, v, a);
  const int32_t G = a.num_heads / a.num_kv_heads;
  const int32_t tile = std::max(1, kTileRows / G);
  std::vector<Item> items;
  int64_t work = 0;  // multiply-adds, roughly
  for (int32_t s = 0; s < a.num_seqs; ++s) {
    const int32_t qlen = a.seq_info[s * 4 + 1];
    work += int64_t{qlen} * a.seq_info[s * 4 + 2] * 2 * a.num_heads * a.head_dim;
    for (int32_t g = 0; g < a.num_kv_heads; ++g)
      for (int32_t f = 0; f < qlen; f += tile) items.push_back({s, g, f, std::min(tile, qlen - f)});
  }
  const int64_t count = static_cast<int64_t>(items.size());
#pragma omp parallel if (work > kParallelMin)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < count; ++i) attend(q, a, items[i], scratch, out);
  }
}

}  // namespace banyan::kernels::cpu
