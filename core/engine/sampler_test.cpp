#include "core/engine/sampler.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace banyan::core {
namespace {

TEST(Sampler, GreedyPicksTheArgmaxAndReportsRawLogprobs) {
  Sampler s;
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f};
  SamplingParams p{.temperature = 0.0, .logprobs = 2};
  std::mt19937_64 rng(1);
  std::vector<int32_t> ctx = {0};
  auto r = s.sample(logits, p, ctx, 0, {}, rng);
  EXPECT_EQ(r.token, 1);
  double lse = std::log(std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.5));
  EXPECT_NEAR(r.logprob, 2.0 - lse, 1e-6);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].id, 1);
  EXPECT_EQ(r.top[1].id, 3);
}

TEST(Sampler, RepetitionPenaltyFollowsHuggingFace) {
  // Positive logits are divided, negative multiplied, each seen token once.
  std::vector<float> logits = {2.0f, -1.0f, 3.0f};
  SamplingParams p{.repetition_penalty = 2.0};
  std::vector<int32_t> ctx = {0, 1, 0};
  Sampler::process(logits, p, ctx, 1, {});
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
}

TEST(Sampler, PresenceAndFrequencyCountOnlyTheOutput) {
  std::vector<float> logits = {0.0f, 0.0f, 0.0f};
  SamplingParams p{.presence_penalty = 0.5, .frequency_penalty = 0.25};
  std::vector<int32_t> ctx = {2, 2, 0, 0, 1};  // prompt {2, 2}, output {0, 0, 1}
  Sampler::process(logits, p, ctx, 3, {});
  EXPECT_FLOAT_EQ(logits[0], -(0.25f * 2 + 0.5f));
  EXPECT_FLOAT_EQ(logits[1], -(0.25f + 0.5f));
  EXPECT_FLOAT_EQ(logits[2], 0.0f);
}

TEST(Sampler, MinTokensMasksEosAndLogitBiasApplies) {
  std::vector<float> logits = {5.0f, 0.0f, 0.0f};
  SamplingParams p{.logit_bias = {{2, 10.0}}, .min_tokens = 2, .stop_token_ids = {1}};
  std::vector<int32_t> eos = {0};
  std::vector<int32_t> ctx = {1};
  Sampler::process(logits, p, ctx, 0, eos);
  EXPECT_TRUE(std::isinf(logits[0]) && logits[0] < 0);
  EXPECT_TRUE(std::isinf(logits[1]) && logits[1] < 0);
  EXPECT_FLOAT_EQ(logits[2], 10.0f);
}

TEST(Sampler, SeededSamplingIsReproducibleAndFollowsTheDistribution) {
  Sampler s;
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p{.temperature = 1.0};
  std::vector<int32_t> ctx = {0};
  std::map<int32_t, int> counts;
  std::mt19937_64 a(42), b(42);
  for (int i = 0; i < 20000; ++i) {
    int32_t x = s.sample(logits, p, ctx, 0, {}, a).token;
    EXPECT_EQ(x, s.sample(logits, p, ctx, 0, {}, b).token);
    ++counts[x];
  }
  EXPECT_NEAR(counts[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts[2] / 20000.0, 0.2, 0.02);
}

TEST(Sampler, TopKTopPMinPRestrictTheCandidates) {
  Sampler s;
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  std::vector<int32_t> ctx = {0};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_LT(s.sample(logits, {.top_k = 2}, ctx, 0, {}, rng).token, 2);
    EXPECT_LT(s.sample(logits, {.top_p = 0.75}, ctx, 0, {}, rng).token, 2);  // 0.5 + 0.3 >= 0.75
    EXPECT_LT(s.sample(logits, {.min_p = 0.5}, ctx, 0, {}, rng).token, 2);   // p >= 0.25
  }
}

TEST(SamplingParams, ValidationNamesTheField) {
  auto msg = [](SamplingParams p) {
    try {
      p.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg({}), "");
  EXPECT_EQ(msg({.temperature = -1}), "temperature: must be in [0, 100], got -1");
  EXPECT_NE(msg({.top_p = 0}).find("top_p"), std::string::npos);
  EXPECT_NE(msg({.n = 2, .best_of = 1}).find("best_of"), std::string::npos);
  EXPECT_NE(msg({.max_tokens = 0}).find("max_tokens"), std::string::npos);
  EXPECT_NE(msg({.logprobs = 21}).find("logprobs"), std::string::npos);
  EXPECT_NE(msg({.stop = {""}}).find("stop"), std::string::npos);
}

}  // namespace
}  // namespace banyan::core
