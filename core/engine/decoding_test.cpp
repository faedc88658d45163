// The in-tree decoding plugins (sampling, beam), loaded from the build tree through
// the plugin host, against reference computations written here.
#include "core/engine/decoding.h"
#include "core/runtime/backend.h"

#include <banyan/error.h>
#include <banyan/logits.h>
#include <banyan/rng.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>

namespace banyan::core {
namespace {

struct Fixture {
  PluginHost host;
  std::unique_ptr<Decoders> dec;
  SequenceGroup group;
  Fixture() {
    host.scan({std::filesystem::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
    dec = std::make_unique<Decoders>(host, "sampling", "beam");
  }
  Sequence& seq(const SamplingParams& p, std::vector<int32_t> tokens, int32_t prompt_len,
                uint64_t seed = 1, std::vector<int32_t> eos = {}) {
    group.request.params = p;
    group.decode_params = std::make_unique<DecodeParams>(group.request.params, eos);
    auto s = std::make_unique<Sequence>();
    s->group = &group;
    s->tokens = std::move(tokens);
    s->prompt_len = prompt_len;
    rng::seed(s->rng, seed);
    group.seqs.push_back(std::move(s));
    return *group.seqs.back();
  }
};

Tensor view(std::vector<float>& v, int64_t rows) {
  return Tensor(v.data(), DType::f32, {rows, static_cast<int64_t>(v.size()) / rows});
}

TEST(Decoding, GreedyPicksTheArgmaxAndReportsRawLogprobs) {
  Fixture f;
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f};
  Sequence& s = f.seq({.temperature = 0.0, .logprobs = 2}, {0}, 1);
  auto out = f.dec->sample(view(logits, 1), {{&s, 0}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, 1);
  double lse = std::log(std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.5));
  EXPECT_NEAR(out[0].logprob, 2.0 - lse, 1e-6);
  ASSERT_EQ(out[0].top.size(), 2u);
  EXPECT_EQ(out[0].top[0].id, 1);
  EXPECT_EQ(out[0].top[1].id, 3);
}

TEST(Decoding, RepetitionPenaltyFollowsHuggingFace) {
  Fixture f;
  // Token 0 (logit 3) was seen: 3/2 = 1.5 < 2.0 of token 1 → greedy flips to 1.
  std::vector<float> logits = {3.0f, 2.0f, -1.0f};
  Sequence& s = f.seq({.temperature = 0.0, .repetition_penalty = 2.0}, {0, 2}, 1);
  EXPECT_EQ(f.dec->sample(view(logits, 1), {{&s, 0}})[0].token, 1);
}

TEST(Decoding, PresenceAndFrequencyCountOnlyTheOutput) {
  Fixture f;
  // Prompt {1, 1}, output {0}: only token 0 is penalized (0.9 below 1 and 2).
  std::vector<float> logits = {1.5f, 1.0f, 0.9f};
  Sequence& s = f.seq({.temperature = 0.0, .presence_penalty = 0.5, .frequency_penalty = 0.25},
                      {1, 1, 0}, 2);
  EXPECT_EQ(f.dec->sample(view(logits, 1), {{&s, 0}})[0].token, 1);
}

TEST(Decoding, MinTokensMasksEosAndLogitBiasApplies) {
  Fixture f;
  std::vector<float> logits = {5.0f, 4.0f, 0.0f};
  Sequence& s = f.seq({.temperature = 0.0, .logit_bias = {{2, 3.0}}, .min_tokens = 2,
                       .stop_token_ids = {1}},
                      {1}, 1, 1, {0});
  EXPECT_EQ(f.dec->sample(view(logits, 1), {{&s, 0}})[0].token, 2);
}

TEST(Decoding, SeededSamplingIsReproducibleAndFollowsTheDistribution) {
  Fixture f;
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sequence& a = f.seq({.temperature = 1.0}, {0}, 1, 42);
  Sequence& b = f.seq({.temperature = 1.0}, {0}, 1, 42);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 20000; ++i) {
    auto out = f.dec->sample(view(logits, 1), {{&a, 0}, {&b, 0}});
    EXPECT_EQ(out[0].token, out[1].token);
    ++counts[out[0].token];
  }
  EXPECT_NEAR(counts[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts[2] / 20000.0, 0.2, 0.02);
}

TEST(Decoding, TopKTopPMinPRestrictTheCandidates) {
  Fixture f;
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sequence& k = f.seq({.top_k = 2}, {0}, 1, 7);
  Sequence& p = f.seq({.top_p = 0.75}, {0}, 1, 8);  // 0.5 + 0.3 >= 0.75
  Sequence& m = f.seq({.min_p = 0.5}, {0}, 1, 9);   // p >= 0.25
  for (int i = 0; i < 2000; ++i)
    for (const auto& t : f.dec->sample(view(logits, 1), {{&k, 0}, {&p, 0}, {&m, 0}}))
      EXPECT_LT(t.token, 2);
}

TEST(Decoding, BeamReturnsTheBestContinuationsByCumulativeLogprob) {
  Fixture f;
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f, /* row 1 */ 3.0f, 0.0f, 0.0f, 0.0f};
  Sequence& a = f.seq({.n = 2, .use_beam_search = true}, {0}, 1);
  Sequence& b = f.seq({.n = 2, .use_beam_search = true}, {1}, 1);
  a.cumulative_logprob = -1.0;
  b.cumulative_logprob = -0.5;
  auto out = f.dec->beam(view(logits, 2), {{&a, 0}, {&b, 1}}, 3);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].size(), 3u);
  EXPECT_EQ(out[0][0].token, 3);
  EXPECT_EQ(out[0][1].token, 2);
  EXPECT_EQ(out[1][0].token, 0);
  double lse0 = std::log(1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(out[0][0].score, -1.0 + 3.0 - lse0, 1e-6);
}

TEST(Decoding, UnknownPluginIsRefusedByName) {
  PluginHost host;
  host.scan({std::filesystem::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
  try {
    Decoders d(host, "samplng", "beam");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean \"sampling\""), std::string::npos) << e.what();
  }
}

TEST(Decoding, StrategyOptionsAreCheckedAgainstTheManifest) {
  PluginHost host;
  host.scan({std::filesystem::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
  try {
    Decoders d(host, "sampling", "beam", R"({"typical_p": 0.5})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option \"typical_p\" for decoding plugin \"sampling\""),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(Decoders(host, "sampling", "beam", "{typical_p"), Error);
  EXPECT_NO_THROW(Decoders(host, "sampling", "beam", "{}"));
}

// Hugging Face's TypicalLogitsWarper on one row, written after its code: the tokens
// kept for logits / temperature and mass typical_p (min_tokens_to_keep 1).
std::vector<int32_t> typical_reference(const std::vector<float>& logits, double temperature,
                                       double mass) {
  const size_t n = logits.size();
  std::vector<double> scores(n), normalized(n), shifted(n);
  for (size_t i = 0; i < n; ++i) scores[i] = logits[i] / temperature;
  double mx = *std::max_element(scores.begin(), scores.end()), z = 0;
  for (double v : scores) z += std::exp(v - mx);
  double ent = 0;
  for (size_t i = 0; i < n; ++i) {
    normalized[i] = scores[i] - mx - std::log(z);
    ent -= normalized[i] * std::exp(normalized[i]);
  }
  for (size_t i = 0; i < n; ++i) shifted[i] = std::abs(-normalized[i] - ent);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shifted[a] < shifted[b]; });
  double cum = 0;
  size_t last_ind = 0;
  for (size_t k = 0; k < n; ++k) {
    cum += std::exp(normalized[order[k]]);
    if (cum < mass) ++last_ind;
  }
  last_ind = std::min(last_ind, n - 1);
  std::vector<int32_t> kept;
  for (size_t i = 0; i < n; ++i)
    if (!(shifted[i] > shifted[order[last_ind]])) kept.push_back(static_cast<int32_t>(i));
  return kept;
}

// typical_p per request (TGI's), in the in-tree sampling plugin: the draws cover exactly
// the reference's typical set with the renormalized probabilities, also after top_k
// (the set is then taken over the top_k candidates, as Hugging Face's warpers chain).
TEST(Decoding, TypicalPSamplesHuggingFacesTypicalSet) {
  const std::vector<float> dist = {1.0f, 0.0f, 0.1f, 0.2f, -0.1f, -0.2f, 0.05f, -3.0f};
  struct Case { double temperature, typical_p; int top_k; };
  for (Case c : {Case{1.0, 0.5, 0}, Case{0.7, 0.9, 0}, Case{1.0, 0.6, 5}}) {
    SCOPED_TRACE("temperature " + std::to_string(c.temperature) + ", typical_p " +
                 std::to_string(c.typical_p) + ", top_k " + std::to_string(c.top_k));
    // The candidates top_k leaves (ids in order), and the reference set over them.
    std::vector<int32_t> ids(dist.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    if (c.top_k > 0) {
      std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return dist[a] > dist[b]; });
      ids.resize(static_cast<size_t>(c.top_k));
      std::sort(ids.begin(), ids.end());
    }
    std::vector<float> sub;
    for (int32_t t : ids) sub.push_back(dist[t]);
    std::vector<int32_t> want;
    for (int32_t k : typical_reference(sub, c.temperature, c.typical_p)) want.push_back(ids[k]);
    ASSERT_LT(want.size(), ids.size());  // the filter bites
    std::vector<double> p(dist.size());
    double total = 0;
    for (int32_t t : want) total += p[t] = std::exp(dist[t] / c.temperature);
    for (auto& v : p) v /= total;

    Fixture f;
    Sequence& s = f.seq({.temperature = c.temperature, .top_k = c.top_k > 0 ? c.top_k : -1,
                         .typical_p = c.typical_p},
                        {0}, 1, 11);
    constexpr int kDraws = 6000;
    std::map<int32_t, int> counts;
    for (int i = 0; i < kDraws; ++i) {
      std::vector<float> logits = dist;
      ++counts[f.dec->sample(view(logits, 1), {{&s, 0}})[0].token];
    }
    std::vector<int32_t> got;
    for (const auto& [t, n] : counts) got.push_back(t);
    EXPECT_EQ(got, want);
    for (int32_t t : want) EXPECT_NEAR(counts[t] / double(kDraws), p[t], 0.025) << "token " << t;
  }
  // typical_p 1 is off: the same draws as without it.
  Fixture a, b;
  Sequence& sa = a.seq({.temperature = 0.8}, {0}, 1, 3);
  Sequence& sb = b.seq({.temperature = 0.8, .typical_p = 1.0}, {0}, 1, 3);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> la = dist, lb = dist;
    EXPECT_EQ(a.dec->sample(view(la, 1), {{&sa, 0}})[0].token, b.dec->sample(view(lb, 1), {{&sb, 0}})[0].token);
  }
  SamplingParams bad;
  bad.typical_p = 0;
  EXPECT_THROW(bad.validate(), Error);
  bad.typical_p = 1.5;
  EXPECT_THROW(bad.validate(), Error);
}

// The out-of-tree example examples/typical_decoding, when BANYAN_TEST_PLUGIN_PATH
// (DIR[:DIR...]) holds its build (tests/examples/typical_decoding_test.sh sets it):
// its draws cover exactly the reference's typical set, with the renormalized
// probabilities, and typical_p comes from the strategy options.
TEST(Decoding, OutOfTreeTypicalSamplesHuggingFacesTypicalSet) {
  const char* extra = std::getenv("BANYAN_TEST_PLUGIN_PATH");
  if (!extra || !*extra) GTEST_SKIP() << "BANYAN_TEST_PLUGIN_PATH is not set";
  std::vector<std::filesystem::path> dirs = {std::filesystem::path(BANYAN_BINARY_DIR) / "lib" /
                                             "banyan" / "plugins"};
  std::string rest = extra;
  for (size_t at; (at = rest.find(':')) != std::string::npos; rest = rest.substr(at + 1))
    dirs.emplace_back(rest.substr(0, at));
  dirs.emplace_back(rest);
  PluginHost host;
  host.scan(dirs);
  ASSERT_NE(host.find("decoding", "typical"), nullptr) << "no typical plugin under " << extra;

  // The argmax (p 0.31) lies far below the entropy: typical_p 0.5 leaves it out.
  const std::vector<float> dist = {1.0f, 0.0f, 0.1f, 0.2f, -0.1f, -0.2f, 0.05f, -3.0f};
  struct Case { double temperature, typical_p; };
  for (Case c : {Case{1.0, 0.5}, Case{0.7, 0.9}, Case{1.0, 1.0}}) {
    SCOPED_TRACE("temperature " + std::to_string(c.temperature) + ", typical_p " +
                 std::to_string(c.typical_p));
    const auto want = typical_reference(dist, c.temperature, c.typical_p);
    if (c.typical_p < 1.0) {
      ASSERT_LT(want.size(), dist.size() - 1);  // the filter bites
    }
    std::vector<double> p(dist.size());
    double total = 0;
    for (int32_t t : want) total += p[t] = std::exp(dist[t] / c.temperature);
    for (auto& v : p) v /= total;

    Decoders dec(host, "typical", "beam", "{\"typical_p\": " + std::to_string(c.typical_p) + "}");
    SequenceGroup group;
    group.request.params = {.temperature = c.temperature};
    group.decode_params = std::make_unique<DecodeParams>(group.request.params, std::vector<int32_t>{});
    Sequence s;
    s.group = &group;
    s.tokens = {0};
    s.prompt_len = 1;
    rng::seed(s.rng, 11);
    std::vector<float> logits = dist;
    constexpr int kDraws = 6000;
    std::map<int32_t, int> counts;
    for (int i = 0; i < kDraws; ++i) ++counts[dec.sample(view(logits, 1), {{&s, 0}})[0].token];
    std::vector<int32_t> got;
    for (const auto& [t, n] : counts) got.push_back(t);
    EXPECT_EQ(got, want);
    for (int32_t t : want) EXPECT_NEAR(counts[t] / double(kDraws), p[t], 0.025) << "token " << t;
  }

  // Temperature 0 is greedy (the argmax, as transformers without do_sample); a
  // typical_p outside (0, 1] is refused.
  Decoders greedy(host, "typical", "beam", R"({"typical_p": 0.5})");
  Fixture f;
  Sequence& g = f.seq({.temperature = 0.0}, {0}, 1);
  std::vector<float> logits = dist;
  EXPECT_EQ(greedy.sample(view(logits, 1), {{&g, 0}})[0].token, 0);
  EXPECT_THROW(Decoders(host, "typical", "beam", R"({"typical_p": 0})"), Error);
  EXPECT_THROW(Decoders(host, "typical", "beam", R"({"typical_p": 1.5})"), Error);
}

}  // namespace
}  // namespace banyan::core

namespace banyan::core {
namespace {

TEST(Decoding, ParallelDrawsOneSamplePerForkedStream) {
  Fixture f;
  std::vector<float> logits(64, 0.0f);  // flat: samples should spread
  Sequence& s = f.seq({.n = 8, .temperature = 1.0}, {0}, 1, 99);
  uint64_t start[4];
  std::copy(s.rng, s.rng + 4, start);
  auto a = f.dec->parallel(view(logits, 1), &s, 0, 8);
  ASSERT_EQ(a.size(), 8u);
  std::set<int32_t> distinct;
  for (int j = 0; j < 8; ++j) {
    distinct.insert(a[j].token);
    // Sample j came from stream j forked from the row's generator: redraw it here.
    uint64_t st[4];
    rng::fork(start, static_cast<uint64_t>(j), st);
    double u = rng::uniform(st) * 1.0;
    EXPECT_EQ(a[j].token, static_cast<int32_t>(u * 64)) << "sample " << j;
    EXPECT_TRUE(std::equal(st, st + 4, a[j].rng)) << "sample " << j;
  }
  EXPECT_GT(distinct.size(), 4u);
  // The same seed gives the same samples.
  Sequence& t = f.seq({.n = 8, .temperature = 1.0}, {0}, 1, 99);
  auto b = f.dec->parallel(view(logits, 1), &t, 0, 8);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(a[j].token, b[j].token);
}

}  // namespace
}  // namespace banyan::core

// The sampling op's path (decode_on with ops.sample) against the host path of the
// same plugin: the op here is the CPU backend's (banyan::logits::sample_row), so the
// two must agree exactly: tokens, logprobs, top logprobs and generator states.
namespace banyan::core {
namespace {

core::Backend& cpu_backend() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

int32_t cpu_sample_op(BanyanStepContext*, const BanyanTensor* logits, const BanyanSampleRow* rows,
                      int32_t n, const BanyanLogitEdit* edits, int32_t ne, BanyanSampleResult* out,
                      BanyanError* err) {
  return guard(err, [&] {
    cpu_backend().sample(Tensor(*logits), {rows, static_cast<size_t>(n)}, {edits, static_cast<size_t>(ne)},
                         {out, static_cast<size_t>(n)});
  });
}

std::vector<SamplingParams> op_cases() {
  return {{.temperature = 0.0},
          {.temperature = 0.0, .logprobs = 3},
          {.temperature = 0.7},
          {.temperature = 1.0, .top_k = 5},
          {.temperature = 0.8, .top_p = 0.9},
          {.temperature = 1.0, .min_p = 0.1},
          {.temperature = 0.9, .top_p = 0.8, .top_k = 20, .min_p = 0.01, .presence_penalty = 0.5,
           .frequency_penalty = 0.3, .repetition_penalty = 1.4, .logprobs = 5},
          {.temperature = 1.0, .logit_bias = {{3, 4.0}, {10, -100.0}}, .min_tokens = 50},
          {.temperature = 0.0, .repetition_penalty = 1.3}};
}

TEST(Decoding, EditsEqualTheLogitsProcessors) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int32_t> tok(0, 99);
  const std::vector<int32_t> eos = {0, 7};
  for (const SamplingParams& sp : op_cases()) {
    DecodeParams dp(sp, eos);
    std::vector<float> x(100);
    for (auto& v : x) v = normal(rng);
    std::vector<int32_t> tokens(40);
    for (auto& t : tokens) t = tok(rng);
    std::vector<float> want = x, got = x;
    logits::apply_processors(want, dp.c, tokens, 25);
    std::vector<BanyanLogitEdit> edits;
    logits::make_edits(dp.c, tokens, 25, 100, edits);
    for (size_t i = 1; i < edits.size(); ++i) EXPECT_LT(edits[i - 1].token, edits[i].token);
    for (const auto& e : edits) got[e.token] = logits::apply_edit(got[e.token], e, static_cast<float>(dp.c.repetition_penalty));
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)));
  }
}

TEST(Decoding, SamplingOnTheOpEqualsTheHostPath) {
  PluginHost host;
  host.scan({std::filesystem::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
  Decoders dec(host, "sampling", "beam");
  ASSERT_TRUE(dec.sampling_on_device());
  Decoders host_only(host, "parallel", "beam");  // parallel: no decode_on
  EXPECT_FALSE(host_only.sampling_on_device());
  BanyanOpsV1 ops{};
  ops.struct_size = sizeof ops;
  ops.sample = &cpu_sample_op;
  const DecodeOps on{&ops, nullptr};
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t V = 500;
  const auto cases = op_cases();
  std::vector<float> logits(cases.size() * V);
  // Two copies of each sequence, same seed: one decoded on the host, one by the op.
  std::vector<std::unique_ptr<SequenceGroup>> groups;
  std::vector<std::pair<Sequence*, int32_t>> a, b;
  for (size_t i = 0; i < cases.size(); ++i) {
    for (int64_t v = 0; v < V; ++v) logits[i * V + v] = normal(rng);
    for (auto* rows : {&a, &b}) {
      auto g = std::make_unique<SequenceGroup>();
      g->request.params = cases[i];
      g->decode_params = std::make_unique<DecodeParams>(g->request.params, std::vector<int32_t>{1, 2});
      auto s = std::make_unique<Sequence>();
      s->group = g.get();
      s->tokens = {5, 6, 7, 5, 9, 9, 12};
      s->prompt_len = 4;
      rng::seed(s->rng, 1000 + i);
      rows->push_back({s.get(), static_cast<int32_t>(i)});
      g->seqs.push_back(std::move(s));
      groups.push_back(std::move(g));
    }
  }
  Tensor t(logits.data(), DType::f32, {static_cast<int64_t>(cases.size()), V});
  for (int step = 0; step < 20; ++step) {
    auto want = dec.sample(t, a);
    auto got = dec.sample(t, b, &on);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].token, want[i].token) << "case " << i << " step " << step;
      EXPECT_EQ(got[i].logprob, want[i].logprob) << "case " << i;
      EXPECT_EQ(got[i].score, want[i].score) << "case " << i;
      ASSERT_EQ(got[i].top.size(), want[i].top.size());
      for (size_t k = 0; k < want[i].top.size(); ++k) {
        EXPECT_EQ(got[i].top[k].id, want[i].top[k].id);
        EXPECT_EQ(got[i].top[k].logprob, want[i].top[k].logprob);
      }
      EXPECT_TRUE(std::equal(a[i].first->rng, a[i].first->rng + 4, b[i].first->rng)) << "case " << i;
      EXPECT_TRUE(std::equal(want[i].rng, want[i].rng + 4, got[i].rng)) << "case " << i;
      // The outputs grow, so the penalties see new tokens each step.
      a[i].first->tokens.push_back(want[i].token);
      b[i].first->tokens.push_back(got[i].token);
    }
  }
  // Host-only plugins refuse device logits rather than read them as host memory.
  Tensor dev = t;
  dev.device_type = BANYAN_CUDA;
  EXPECT_THROW(host_only.sample(dev, a), Error);
}

TEST(Decoding, SampleOpKeepsTheStreamWhenEveryLogitIsMasked) {
  PluginHost host;
  host.scan({std::filesystem::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
  Decoders dec(host, "sampling", "beam");
  BanyanOpsV1 ops{};
  ops.struct_size = sizeof ops;
  ops.sample = &cpu_sample_op;
  const DecodeOps on{&ops, nullptr};
  std::vector<float> logits = {-INFINITY, -INFINITY, -INFINITY};
  SequenceGroup g;
  g.request.params = {.temperature = 1.0};
  g.decode_params = std::make_unique<DecodeParams>(g.request.params, std::vector<int32_t>{});
  Sequence s;
  s.group = &g;
  s.tokens = {0};
  s.prompt_len = 1;
  rng::seed(s.rng, 5);
  uint64_t before[4];
  std::copy(s.rng, s.rng + 4, before);
  auto out = dec.sample(view(logits, 1), {{&s, 0}}, &on);
  EXPECT_EQ(out[0].token, 0);
  EXPECT_TRUE(std::equal(before, before + 4, s.rng)) << "no draw, as on the host path";
}

}  // namespace
}  // namespace banyan::core
