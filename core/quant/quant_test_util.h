// Helpers shared by the quantization tests (header-only, not part of the library).
#pragma once

#include "core/quant/quantization.h"
#include "core/runtime/greedy.h"
#include "core/runtime/runner_test_util.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace banyan::core::test {

namespace fs = std::filesystem;

inline fs::path source_dir() { return fs::path(BANYAN_SOURCE_DIR); }
inline fs::path quant_fixtures() { return source_dir() / "tests" / "fixtures" / "quant"; }
inline fs::path model_fixture(const std::string& name) {
  return source_dir() / "tests" / "fixtures" / "models" / name;
}

inline nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return nlohmann::json::parse(in);
}

struct GoldenCase {
  std::vector<int32_t> prompt, greedy;
  std::vector<std::vector<std::pair<int32_t, double>>> top;
  double min_margin = 0;
};

inline std::vector<GoldenCase> read_cases(const nlohmann::json& cases) {
  std::vector<GoldenCase> out;
  for (const auto& c : cases) {
    GoldenCase k;
    k.prompt = c.at("prompt_ids").get<std::vector<int32_t>>();
    k.greedy = c.at("greedy_ids").get<std::vector<int32_t>>();
    k.min_margin = c.value("min_margin", 0.0);
    for (const auto& step : c.at("top_logprobs")) {
      std::vector<std::pair<int32_t, double>> s;
      for (const auto& e : step) s.emplace_back(e.at(0).get<int32_t>(), e.at(1).get<double>());
      k.top.push_back(std::move(s));
    }
    out.push_back(std::move(k));
  }
  return out;
}

/// Quantization options of a golden's variant ({"method", "options"}).
inline QuantizationOptions quant_options(const nlohmann::json& golden, const fs::path& model_dir) {
  QuantizationOptions q;
  q.model_dir = model_dir;
  q.method = golden.at("method").get<std::string>();
  q.options_json = golden.value("options", nlohmann::json::object()).dump();
  return q;
}

}  // namespace banyan::core::test
