// Paged attention of the CUDA backend against the CPU backend: decode batches
// (split-KV, GQA, MQA), prefill on tensor cores, chunked prefill over cached
// context, mixed batches, sliding windows, odd head sizes, shuffled block tables.
// The KV cache after the op must equal the CPU's exactly (a copy of bf16 values).
#include "kernels/cuda/cuda_test_util.h"
#include "kernels/cuda/kernels.h"

#include <algorithm>
#include <numeric>
#include <tuple>

namespace banyan::kernels::cuda::test {
namespace {

struct Seq {
  int32_t cached, query_len;
};

struct Scenario {
  std::string name;
  int32_t heads, kv_heads, head_dim;
  std::vector<Seq> seqs;
  int32_t window = 0;
  int32_t block_size = 16;
  int32_t rotary_dim = 0;  // > 0: a rotary embedding first (the GPU applies it inside decode attention)
  bool neox = true;
};

// Everything one backend needs for one attention call.
struct Side {
  Dev k_cache, v_cache, q, k, v, out, layout_buf, inv_freq;
  core::StepLayout layout;
};

void run(const Scenario& s, Backends& be, uint32_t seed) {
  SCOPED_TRACE(s.name);
  const int32_t bs = s.block_size, D = s.head_dim, Hq = s.heads, Hk = s.kv_heads;
  // Host layout: shuffled blocks, one table per sequence.
  std::vector<int32_t> seq_info, tables, positions, slots, token_seq;
  int32_t total_blocks = 0, T = 0, max_q = 0, max_ctx = 0;
  for (const Seq& q : s.seqs) total_blocks += (q.cached + q.query_len + bs - 1) / bs;
  const int32_t num_blocks = total_blocks + 3;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  int32_t next_block = 0;
  for (size_t i = 0; i < s.seqs.size(); ++i) {
    const Seq& q = s.seqs[i];
    const int32_t ctx = q.cached + q.query_len, nb = (ctx + bs - 1) / bs;
    seq_info.insert(seq_info.end(), {T, q.query_len, ctx, static_cast<int32_t>(tables.size())});
    for (int32_t b = 0; b < nb; ++b) tables.push_back(perm[next_block++]);
    for (int32_t j = 0; j < q.query_len; ++j) {
      const int32_t p = q.cached + j;
      positions.push_back(p);
      slots.push_back(tables[seq_info.back() + p / bs] * bs + p % bs);
      token_seq.push_back(static_cast<int32_t>(i));
    }
    T += q.query_len;
    max_q = std::max(max_q, q.query_len);
    max_ctx = std::max(max_ctx, ctx);
  }
  const int32_t S = static_cast<int32_t>(s.seqs.size()), B = static_cast<int32_t>(tables.size());
  std::vector<int32_t> packed;
  for (auto* part : {&positions, &slots, &token_seq, &seq_info, &tables})
    packed.insert(packed.end(), part->begin(), part->end());

  const int64_t cache_n = int64_t{num_blocks} * bs * Hk * D;
  auto kc = random_bf16(cache_n, seed + 1), vc = random_bf16(cache_n, seed + 2);
  auto q = random_bf16(int64_t{T} * Hq * D, seed + 3, -2, 2);
  auto k = random_bf16(int64_t{T} * Hk * D, seed + 4), v = random_bf16(int64_t{T} * Hk * D, seed + 5);

  // With a rotary embedding, a third side: the GPU's rotary() then attention(), which
  // the one pass must equal exactly (the CPU's sin/cos differ in the last bf16 bit).
  Side side[3];
  core::Backend* bes[3] = {be.cpu.get(), be.gpu.get(), be.gpu.get()};
  for (int i = 0; i < (s.rotary_dim > 0 ? 3 : 2); ++i) {
    core::Backend& b = *bes[i];
    Side& x = side[i];
    const DType act = i ? DType::bf16 : DType::f32;  // the CPU computes in f32
    x.k_cache = make(b, act, {num_blocks, bs, Hk, D});
    x.v_cache = make(b, act, {num_blocks, bs, Hk, D});
    x.q = make(b, act, {T, Hq * D});
    x.k = make(b, act, {T, Hk * D});
    x.v = make(b, act, {T, Hk * D});
    x.out = make(b, act, {T, Hq * D});
    x.layout_buf = make(b, DType::i32, {static_cast<int64_t>(packed.size())});
    put(b, x.k_cache.t, kc), put(b, x.v_cache.t, vc), put(b, x.q.t, q), put(b, x.k.t, k),
        put(b, x.v.t, v);
    poison(b, x.out.t);
    put_i32(b, x.layout_buf.t, packed);
    int32_t* base = x.layout_buf.t.as<int32_t>();
    const Device dev = b.device();
    x.layout.positions = Tensor(base, DType::i32, {T}, dev);
    x.layout.slot_mapping = Tensor(base + T, DType::i32, {T}, dev);
    x.layout.token_seq = Tensor(base + 2 * T, DType::i32, {T}, dev);
    x.layout.seq_info = Tensor(base + 3 * T, DType::i32, {S, 4}, dev);
    x.layout.block_tables = Tensor(base + 3 * T + 4 * S, DType::i32, {B}, dev);
    x.layout.num_tokens = T;
    x.layout.num_seqs = S;
    x.layout.max_query_len = max_q;
    x.layout.max_context_len = max_ctx;
    core::AttentionParams p;
    p.layout = &x.layout;
    p.k_cache = x.k_cache.t;
    p.v_cache = x.v_cache.t;
    p.block_size = bs;
    p.num_heads = Hq;
    p.num_kv_heads = Hk;
    p.head_dim = D;
    p.scale = 1.0f / std::sqrt(static_cast<float>(D));
    p.sliding_window = s.window;
    if (s.rotary_dim > 0) {
      const int32_t half = s.rotary_dim / 2;
      std::vector<float> f(static_cast<size_t>(half));
      for (int32_t i = 0; i < half; ++i) f[i] = std::pow(10000.0f, -2.0f * i / s.rotary_dim);
      x.inv_freq = make(b, DType::f32, {1, half});
      b.upload(x.inv_freq.t.data, f.data(), f.size() * sizeof(float));
      core::RotaryParams r;
      r.positions = x.layout.positions;
      r.inv_freq = x.inv_freq.t;
      r.attention_scaling = 1.0f;
      r.head_dim = D;
      r.rotary_dim = s.rotary_dim;
      r.neox = s.neox;
      if (i == 1 && max_q == 1) {
        ASSERT_TRUE(b.attention_rotary(x.q.t, x.k.t, x.v.t, r, p, x.out.t)) << "decode: one pass";
        continue;
      }
      if (i == 1) {
        EXPECT_FALSE(b.attention_rotary(x.q.t, x.k.t, x.v.t, r, p, x.out.t));
      }
      b.rotary(x.q.t, x.k.t, r);
    }
    b.attention(x.q.t, x.k.t, x.v.t, p, x.out.t);
  }
  EXPECT_TRUE(close(get(*bes[0], side[0].out.t), get(*bes[1], side[1].out.t), kBf16Rel, "out"));
  EXPECT_EQ(get(*bes[0], side[0].v_cache.t), get(*bes[1], side[1].v_cache.t)) << "V cache";
  if (s.rotary_dim > 0) {  // q and k are left rotated, as rotary() leaves them
    for (auto [a, b, what] : {std::tuple{&Side::q, &Side::q, "rotated q"}, {&Side::k, &Side::k, "rotated k"},
                              {&Side::k_cache, &Side::k_cache, "K cache"}}) {
      EXPECT_EQ(get(*bes[1], (side[1].*a).t), get(*bes[2], (side[2].*b).t)) << what << ": one pass vs GPU ops";
      EXPECT_TRUE(close(get(*bes[0], (side[0].*a).t), get(*bes[1], (side[1].*a).t), kBf16Rel, what));
    }
    EXPECT_EQ(get(*bes[1], side[1].out.t), get(*bes[2], side[2].out.t)) << "out: one pass vs GPU ops";
  } else {
    EXPECT_EQ(get(*bes[0], side[0].k_cache.t), get(*bes[1], side[1].k_cache.t)) << "K cache";
  }
}

class CudaAttention : public ::testing::Test {
 protected:
  void SetUp() override { BANYAN_REQUIRE_GPU(); }
};

TEST_F(CudaAttention, DecodeBatchGqaWithSplitKv) {
  Backends be;
  const int mode = decode_attention_mode();
  // Decode attention modes: the kernel writes the cache or kv_cache_write does; loads
  // pipelined or not; wide blocks or not (short contexts of a few sequences); lane
  // sums by halving; the layout read before the wait.
  for (int m : {0, 1, 8, 9, 25, 41, 57, 105, 121}) {
    SCOPED_TRACE("mode " + std::to_string(m));
    set_decode_attention_mode(m);
    run({"decode gqa 32/8 d128", 32, 8, 128, {{0, 1}, {16, 1}, {99, 1}, {300, 1}, {1000, 1}}}, be, 11);
    run({"decode gqa 32/8 d128, short contexts", 32, 8, 128, {{0, 1}, {70, 1}, {255, 1}}}, be, 16);
    run({"decode mqa 8/1 d64, one long sequence", 8, 1, 64, {{2500, 1}}}, be, 12);
    run({"decode 12/2 d128 (groups of 2)", 12, 2, 128, {{40, 1}, {0, 1}, {257, 1}}}, be, 13);
    run({"decode 6/2 d80, block 8", 6, 2, 80, {{40, 1}, {0, 1}, {77, 1}}, 0, 8}, be, 14);
    run({"decode 32/2 d64 (16 heads per KV head)", 32, 2, 64, {{5, 1}, {130, 1}}}, be, 15);
  }
  set_decode_attention_mode(mode);
}

// Decode attention with the rotary embedding applied inside (Backend::attention_rotary)
// against the CPU's rotary then attention: out, caches, and q and k left rotated.
TEST_F(CudaAttention, DecodeWithRotaryInside) {
  Backends be;
  const int mode = decode_attention_mode();
  for (int m : {5, 13, 29, 61, 125}) {  // pipelined loads, wide blocks, halving sums, early layout
    SCOPED_TRACE("mode " + std::to_string(m));
    set_decode_attention_mode(m);
    Scenario a{"decode rope neox 32/8 d128", 32, 8, 128, {{0, 1}, {16, 1}, {99, 1}, {300, 1}}};
    a.rotary_dim = 128;
    run(a, be, 61);
    Scenario b{"decode rope interleaved, partial 64 of d128, 8/2", 8, 2, 128, {{5, 1}, {1000, 1}}};
    b.rotary_dim = 64;
    b.neox = false;
    run(b, be, 62);
    Scenario c{"decode rope 12/2 d64, one split", 12, 2, 64, {{3, 1}}};
    c.rotary_dim = 64;
    run(c, be, 63);
    // One split and one block per KV head: the attention kernel leaves q and k rotated
    // itself (wide blocks for a few short sequences; many sequences: no split at all).
    Scenario d{"decode rope 32/8 d128, short contexts", 32, 8, 128, {{7, 1}, {150, 1}, {60, 1}}};
    d.rotary_dim = 128;
    run(d, be, 64);
    // Eight sequences: wide blocks of four query heads (with fewer sequences the plan
    // takes one query head per block, and the rotary kernel runs first).
    Scenario w{"decode rope 32/8 d128, 8 short contexts", 32, 8, 128, {}};
    for (int i = 0; i < 8; ++i) w.seqs.push_back({30 * i + 5, 1});
    w.rotary_dim = 128;
    run(w, be, 66);
    Scenario e{"decode rope 32/8 d128, 40 sequences", 32, 8, 128, {}};
    for (int i = 0; i < 40; ++i) e.seqs.push_back({3 * i, 1});
    e.rotary_dim = 128;
    run(e, be, 65);
  }
  set_decode_attention_mode(mode);
}

TEST_F(CudaAttention, PrefillOnTensorCores) {
  Backends be;
  run({"prefill 8/2 d128 mixed with decode", 8, 2, 128, {{0, 100}, {0, 64}, {0, 1}}}, be, 21);
  run({"prefill 4/4 d64 long", 4, 4, 64, {{0, 300}}}, be, 22);
  run({"prefill 32/8 d128 block 32", 32, 8, 128, {{0, 129}, {0, 17}}, 0, 32}, be, 23);
}

TEST_F(CudaAttention, ChunkedPrefillOverCachedContext) {
  Backends be;
  run({"chunked 4/4 d64", 4, 4, 64, {{50, 70}, {130, 33}, {7, 1}}}, be, 31);
  run({"chunked 8/2 d128", 8, 2, 128, {{500, 64}, {63, 65}}}, be, 32);
}

TEST_F(CudaAttention, SlidingWindow) {
  Backends be;
  run({"window prefill d128", 8, 2, 128, {{20, 90}, {0, 40}}, 37}, be, 41);
  run({"window decode d128", 8, 2, 128, {{100, 1}, {10, 1}, {700, 1}}, 37}, be, 42);
  run({"window few rows d32", 4, 2, 32, {{60, 5}}, 9}, be, 43);
}

TEST_F(CudaAttention, SmallHeadsAndShortQueriesTakeTheTokenKernel) {
  Backends be;
  run({"prefill d32 (fixture size)", 4, 2, 32, {{0, 20}, {5, 3}}}, be, 51);
  run({"prefill d16", 4, 4, 16, {{0, 33}}}, be, 52);
  run({"speculative rows d128", 8, 2, 128, {{90, 4}, {3, 2}}}, be, 53);
  run({"decode, block size 12 (no shift)", 8, 2, 128, {{100, 1}, {30, 1}}, 0, 12}, be, 54);
  run({"prefill, block size 12 (no shift)", 8, 2, 128, {{10, 40}}, 0, 12}, be, 55);
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
