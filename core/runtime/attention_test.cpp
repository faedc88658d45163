// Paged attention against a dense reference: random block tables, prefill chunks
// over cached tokens, decode, GQA/MQA/MHA, sliding windows, and chunked prefill
// giving the same outputs as a single prefill.
#include "core/runtime/kv_cache.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/step_layout.h"
#include "core/runtime/test_util.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace banyan::core {
namespace {

using test::random_floats;

struct SeqSpec {
  int32_t cached;  // tokens already in the cache
  int32_t fresh;   // new tokens this step
};

struct AttnShape {
  int32_t Hq, Hk, D, block_size, window;
};

class PagedAttention : public ::testing::Test {
 public:
  std::unique_ptr<Backend> be = make_backend("cpu");

  // Runs one step for `seqs`; keys/values of every position of sequence s are
  // keys[s][pos * Hk * D ...]; the cached ones are written into the pools first.
  std::vector<float> run(const AttnShape& st, const std::vector<SeqSpec>& seqs,
                         const std::vector<std::vector<float>>& keys,
                         const std::vector<std::vector<float>>& values,
                         const std::vector<float>& q, KvCache& kv,
                         const std::vector<std::vector<int32_t>>& tables, bool write_cached) {
    ForwardBatch b;
    const int64_t kw = int64_t{st.Hk} * st.D;
    std::vector<float> k_new, v_new;
    for (size_t s = 0; s < seqs.size(); ++s) {
      SeqSlice sl;
      sl.query_start = b.num_tokens();
      sl.query_len = seqs[s].fresh;
      sl.context_len = seqs[s].cached + seqs[s].fresh;
      sl.block_offset = static_cast<int32_t>(b.block_tables.size());
      sl.num_blocks = static_cast<int32_t>(tables[s].size());
      b.block_tables.insert(b.block_tables.end(), tables[s].begin(), tables[s].end());
      auto slot = [&](int32_t p) { return tables[s][p / st.block_size] * st.block_size + p % st.block_size; };
      if (write_cached)
        for (int32_t p = 0; p < seqs[s].cached; ++p) {
          be->upload(kv.key(0).as<float>() + int64_t{slot(p)} * kw, &keys[s][p * kw], kw * 4);
          be->upload(kv.value(0).as<float>() + int64_t{slot(p)} * kw, &values[s][p * kw], kw * 4);
        }
      for (int32_t i = 0; i < seqs[s].fresh; ++i) {
        const int32_t p = seqs[s].cached + i;
        b.token_ids.push_back(0);
        b.positions.push_back(p);
        b.slot_mapping.push_back(slot(p));
        k_new.insert(k_new.end(), &keys[s][p * kw], &keys[s][(p + 1) * kw]);
        v_new.insert(v_new.end(), &values[s][p * kw], &values[s][(p + 1) * kw]);
      }
      b.seqs.push_back(sl);
    }
    validate_batch(b, {kv.num_blocks(), st.block_size, 1});
    StepArena arena(*be);
    std::vector<int32_t> staging;
    StepLayout layout = upload_layout(b, *be, arena, staging);
    const int64_t T = b.num_tokens();
    auto dev = [&](const std::vector<float>& v, int64_t w) {
      Tensor t = arena.tensor(DType::f32, {T, w});
      be->upload(t.data, v.data(), v.size() * 4);
      return t;
    };
    Tensor out = arena.tensor(DType::f32, {T, int64_t{st.Hq} * st.D});
    AttentionParams p;
    p.layout = &layout;
    p.k_cache = kv.key(0);
    p.v_cache = kv.value(0);
    p.block_size = st.block_size;
    p.num_heads = st.Hq;
    p.num_kv_heads = st.Hk;
    p.head_dim = st.D;
    p.scale = 1.0f / std::sqrt(static_cast<float>(st.D));
    p.sliding_window = st.window;
    be->attention(dev(q, int64_t{st.Hq} * st.D), dev(k_new, kw), dev(v_new, kw), p, out);
    std::vector<float> h(static_cast<size_t>(out.numel()));
    be->download(h.data(), out.data, out.nbytes());
    return h;
  }
};

// Dense reference for query at index p of a sequence, head h.
std::vector<double> reference(const AttnShape& st, const std::vector<float>& keys,
                              const std::vector<float>& values, const float* qh, int32_t p,
                              int32_t h) {
  const int32_t g = h / (st.Hq / st.Hk);
  const int64_t kw = int64_t{st.Hk} * st.D;
  const int32_t lo = st.window > 0 ? std::max(0, p - st.window + 1) : 0;
  std::vector<double> s;
  for (int32_t j = lo; j <= p; ++j) {
    double d = 0;
    for (int32_t i = 0; i < st.D; ++i) d += double(qh[i]) * keys[j * kw + g * st.D + i];
    s.push_back(d / std::sqrt(double(st.D)));
  }
  double mx = *std::max_element(s.begin(), s.end()), sum = 0;
  for (auto& v : s) sum += (v = std::exp(v - mx));
  std::vector<double> out(st.D, 0.0);
  for (int32_t j = lo; j <= p; ++j)
    for (int32_t i = 0; i < st.D; ++i)
      out[i] += s[j - lo] / sum * values[j * kw + g * st.D + i];
  return out;
}

void check_batch(PagedAttention& fx, const AttnShape& st, const std::vector<SeqSpec>& seqs,
                 uint32_t seed) {
  const int64_t kw = int64_t{st.Hk} * st.D, qw = int64_t{st.Hq} * st.D;
  std::vector<std::vector<float>> keys, values;
  std::vector<std::vector<int32_t>> tables;
  int32_t blocks_needed = 0;
  for (const auto& s : seqs) blocks_needed += (s.cached + s.fresh + st.block_size - 1) / st.block_size;
  KvCacheConfig kc{1, st.Hk, st.D, st.block_size, blocks_needed + 5, DType::f32};
  KvCache kv(*fx.be, kc);
  std::vector<int32_t> pool(kc.num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(pool.begin(), pool.end(), rng);  // random, non-contiguous block tables
  size_t next = 0;
  std::vector<float> q;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int32_t len = seqs[s].cached + seqs[s].fresh;
    keys.push_back(random_floats(len * kw, seed + 100 + s));
    values.push_back(random_floats(len * kw, seed + 200 + s));
    tables.emplace_back(pool.begin() + next, pool.begin() + next + (len + st.block_size - 1) / st.block_size);
    next += tables.back().size();
    auto qs = random_floats(seqs[s].fresh * qw, seed + 300 + s, -2, 2);
    q.insert(q.end(), qs.begin(), qs.end());
  }
  auto out = fx.run(st, seqs, keys, values, q, kv, tables, true);
  int64_t t = 0;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int32_t i = 0; i < seqs[s].fresh; ++i, ++t)
      for (int32_t h = 0; h < st.Hq; ++h) {
        auto want = reference(st, keys[s], values[s], &q[t * qw + h * st.D], seqs[s].cached + i, h);
        for (int32_t d = 0; d < st.D; ++d)
          ASSERT_NEAR(out[t * qw + h * st.D + d], want[d], 2e-5)
              << "seq " << s << " token " << i << " head " << h;
      }
  // The new keys landed at their slots.
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int32_t p = seqs[s].cached + seqs[s].fresh - 1;
    const int64_t slot = int64_t{tables[s][p / st.block_size]} * st.block_size + p % st.block_size;
    EXPECT_EQ(kv.key(0).as<float>()[slot * kw], keys[s][p * kw]);
  }
}

TEST_F(PagedAttention, MixedPrefillChunksAndDecodesWithGqa) {
  check_batch(*this, {6, 2, 16, 4, 0}, {{0, 9}, {13, 1}, {5, 6}, {30, 1}}, 1);
}

TEST_F(PagedAttention, MultiQueryAndMultiHead) {
  check_batch(*this, {4, 1, 8, 16, 0}, {{0, 20}, {17, 1}}, 2);
  check_batch(*this, {3, 3, 32, 16, 0}, {{40, 3}, {0, 1}}, 3);
}

TEST_F(PagedAttention, SlidingWindow) {
  check_batch(*this, {4, 2, 16, 4, 5}, {{0, 14}, {11, 1}, {7, 4}}, 4);
  check_batch(*this, {2, 1, 8, 16, 1}, {{3, 4}}, 5);  // a window of one: itself only
}

TEST_F(PagedAttention, ChunkedPrefillEqualsOneShot) {
  const AttnShape st{4, 2, 16, 4, 6};
  const int32_t len = 23;
  const int64_t kw = int64_t{st.Hk} * st.D, qw = int64_t{st.Hq} * st.D;
  auto keys = random_floats(len * kw, 7), values = random_floats(len * kw, 8);
  auto q = random_floats(len * qw, 9, -2, 2);
  std::vector<int32_t> table = {5, 2, 7, 0, 3, 6};
  KvCacheConfig kc{1, st.Hk, st.D, st.block_size, 8, DType::f32};
  KvCache one(*be, kc), chunked(*be, kc);
  auto whole = run(st, {{0, len}}, {keys}, {values}, q, one, {table}, false);
  std::vector<float> pieces;
  for (int32_t start = 0; start < len; start += 7) {
    const int32_t n = std::min(7, len - start);
    std::vector<float> qc(q.begin() + start * qw, q.begin() + (start + n) * qw);
    auto part = run(st, {{start, n}}, {keys}, {values}, qc, chunked, {table}, false);
    pieces.insert(pieces.end(), part.begin(), part.end());
  }
  ASSERT_EQ(whole.size(), pieces.size());
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(whole[i], pieces[i], 1e-6) << i;
}

TEST(StepLayout, RefusesInconsistentBatches) {
  auto ok = [] {
    ForwardBatch b;
    b.token_ids = {1, 2, 3};
    b.positions = {0, 1, 2};
    b.slot_mapping = {8, 9, 10};
    b.block_tables = {2};
    b.seqs = {SeqSlice{0, 3, 3, 0, 1, 1, -1}};
    return b;
  };
  const StepLimits lim{4, 4, 100};
  EXPECT_NO_THROW(validate_batch(ok(), lim));
  auto bad = [&](auto edit, std::initializer_list<std::string> frags) {
    ForwardBatch b = ok();
    edit(b);
    test::expect_error([&] { validate_batch(b, lim); }, frags);
  };
  bad([](ForwardBatch& b) { b.positions.pop_back(); }, {"positions 2"});
  bad([](ForwardBatch& b) { b.slot_mapping[1] = 3; }, {"token 1", "slot_mapping 3", "slot 9"});
  bad([](ForwardBatch& b) { b.block_tables[0] = 4; }, {"block id 4", "4 blocks"});
  bad([](ForwardBatch& b) { b.token_ids[2] = 100; }, {"token id 100"});
  bad([](ForwardBatch& b) { b.seqs[0].context_len = 2; }, {"context_len 2"});
  bad([](ForwardBatch& b) { b.seqs[0].context_len = 5; }, {"context_len 5", "blocks"});
  bad([](ForwardBatch& b) { b.seqs[0].logits_rows = 4; }, {"logits_rows 4"});
  bad([](ForwardBatch& b) { b.seqs[0].query_start = 1; }, {"query_start 1"});
  bad([](ForwardBatch& b) { b.seqs[0].num_blocks = 2; }, {"outside block_tables"});
  bad([](ForwardBatch& b) { b.seqs.clear(); }, {"no sequences"});
}

}  // namespace
}  // namespace banyan::core
