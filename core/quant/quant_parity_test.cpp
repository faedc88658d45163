// Greedy parity with Hugging Face transformers running on the dequantized weights
// (tests/fixtures/quant/<variant>/golden.json, made by tools/make_quant_fixtures.py
// from the bf16 fixtures in tests/fixtures/models/): identical tokens on the CPU
// backend and top-5 log-probabilities within 1e-3, one case at a time and all cases
// batched with chunked prefill. Also checks that each module's dequantized weight
// sums to what torch computed (the formulas agree to the last bits, not only in
// the tokens they lead to).
#include "core/quant/quant_test_util.h"
#include "core/quant/quantizer.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/model_runner.h"

#include <banyan/quantizer.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

namespace banyan::core {
namespace {

using test::GoldenCase;

constexpr double kLogprobTolerance = 1e-3;

std::vector<std::string> variants() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(test::quant_fixtures(), ec))
    if (e.is_directory() && e.path().filename() != "qlora" && fs::exists(e.path() / "golden.json"))
      out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

double compare(const GoldenCase& c, const GreedyResult& r) {
  EXPECT_EQ(r.tokens, c.greedy);
  double worst = 0;
  for (size_t s = 0; s < c.top.size() && s < r.top_logprobs.size(); ++s) {
    for (const auto& [id, lp] : c.top[s]) {
      auto it = std::find_if(r.top_logprobs[s].begin(), r.top_logprobs[s].end(),
                             [&](const auto& e) { return e.first == id; });
      if (it == r.top_logprobs[s].end()) {
        ADD_FAILURE() << "step " << s << ": golden top token " << id << " is not in our top list";
        continue;
      }
      EXPECT_NEAR(it->second, lp, kLogprobTolerance) << "step " << s << ", token " << id;
      worst = std::max(worst, std::fabs(it->second - lp));
    }
    if (s < r.tokens.size() && s < c.greedy.size() && r.tokens[s] != c.greedy[s]) break;
  }
  return worst;
}

/// Runs every case alone, then all batched with prefill chunks of 5; returns the
/// largest logprob difference.
double run_cases(ModelRunner& runner, const std::vector<GoldenCase>& cases) {
  double worst = 0;
  GreedyOptions g;
  g.top_logprobs = 20;
  g.stop_at_eos = false;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    g.max_new_tokens = static_cast<int>(cases[i].greedy.size());
    worst = std::max(worst, compare(cases[i], greedy_generate_batch(runner, {cases[i].prompt}, g)[0]));
  }
  std::vector<std::vector<int32_t>> prompts;
  size_t most = 0;
  for (const auto& c : cases) {
    prompts.push_back(c.prompt);
    most = std::max(most, c.greedy.size());
  }
  g.max_new_tokens = static_cast<int>(most);
  g.prefill_chunk = 5;
  auto batched = greedy_generate_batch(runner, prompts, g);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("batched case " + std::to_string(i));
    batched[i].tokens.resize(cases[i].greedy.size());
    worst = std::max(worst, compare(cases[i], batched[i]));
  }
  return worst;
}

int64_t blocks_for(const std::vector<GoldenCase>& cases) {
  size_t longest = 0;
  for (const auto& c : cases) longest = std::max(longest, c.prompt.size() + c.greedy.size());
  return static_cast<int64_t>(cases.size() * (longest / 16 + 1) + 1);
}

TEST(QuantParity, FixturesArePresent) {
  EXPECT_GE(variants().size(), 4u) << test::quant_fixtures()
                                  << ": run tools/make_quant_fixtures.py on the GPU machine";
}

class QuantParity : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantParity, GreedyMatchesTransformersOnDequantizedWeights) {
  const auto golden = test::read_json(test::quant_fixtures() / GetParam() / "golden.json");
  for (const auto& [model, entry] : golden.at("models").items()) {
    SCOPED_TRACE(GetParam() + "/" + model);
    const fs::path dir = test::model_fixture(model);
    auto cases = test::read_cases(entry.at("cases"));
    Quantization q = make_quantization(test::plugins(), test::quant_options(golden, dir));
    ASSERT_EQ(q.method, golden.at("method").get<std::string>());
    ModelRunnerOptions o;
    o.model_dir = dir;
    o.num_blocks = blocks_for(cases);
    o.linear_factories = q.factories;
    o.linear_group_factories = q.group_factories;
    ModelRunner runner(test::plugins(), o);
    EXPECT_EQ(q.stats->modules, static_cast<int64_t>(entry.at("weight_sums").size()))
        << "every linear layer of the decoder blocks is quantized, nothing else";
    const double worst = run_cases(runner, cases);
    std::cout << "[ quant    ] " << GetParam() << "/" << model << ": " << cases.size()
              << " cases, largest |logprob - transformers| = " << worst << ", "
              << q.stats->modules << " modules, " << q.stats->device_bytes << " bytes (from "
              << q.stats->source_bytes << ")\n";
  }
}

TEST_P(QuantParity, DequantizedWeightsSumAsInTorch) {
  const auto golden = test::read_json(test::quant_fixtures() / GetParam() / "golden.json");
  QuantizationOptions qo = test::quant_options(golden, {});
  Quantizer quantizer(test::plugins(), qo.method, qo.options_json);
  // Double quantization's 8-bit code is bitsandbytes' torch.linspace construction,
  // which can differ from ours in the last bit of a few values.
  const double tolerance = golden.value("options", nlohmann::json::object()).value("double_quant", false)
                               ? 1e-8
                               : 1e-9;
  for (const auto& [model, entry] : golden.at("models").items()) {
    Checkpoint ckpt(test::model_fixture(model));
    for (const auto& [module, sums] : entry.at("weight_sums").items()) {
      const SafetensorsTensor& st = ckpt.get(module + ".weight");
      Tensor w(const_cast<std::byte*>(st.data), *st.dtype, {st.shape[0], st.shape[1]});
      const auto d = quantizer.dequantize(quantizer.quantize(module, w));
      double sum = 0, abs_sum = 0;
      for (float v : d) {
        sum += v;
        abs_sum += std::fabs(v);
      }
      // Identical weights give sums equal up to summation order (float64).
      EXPECT_NEAR(abs_sum, sums.at(1).get<double>(), tolerance * abs_sum) << model << " " << module;
      EXPECT_NEAR(sum, sums.at(0).get<double>(), tolerance * abs_sum) << model << " " << module;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, QuantParity, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace banyan::core
