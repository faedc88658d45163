#include "core/engine/request.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

namespace banyan::core {
namespace {

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
  EXPECT_NE(msg({.max_tokens = 10, .min_tokens = 20}).find("min_tokens"), std::string::npos);
  EXPECT_NE(msg({.logit_bias = {{3, 500.0}}}).find("logit_bias"), std::string::npos);
}

}  // namespace
}  // namespace banyan::core
