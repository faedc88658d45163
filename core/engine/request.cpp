#include "core/engine/request.h"

#include <banyan/error.h>

#include <cmath>

namespace banyan::core {
namespace {
void require(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw Error(Code::invalid_argument, field + ": " + what);
}
std::string num(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

void SamplingParams::validate() const {
  require(n >= 1 && n <= 256, "n", "must be in [1, 256], got " + std::to_string(n));
  if (best_of) {
    require(*best_of >= n && *best_of <= 256, "best_of",
            "must be in [n, 256], got " + std::to_string(*best_of) + " with n=" + std::to_string(n));
  }
  require(std::isfinite(temperature) && temperature >= 0 && temperature <= 100, "temperature",
          "must be in [0, 100], got " + num(temperature));
  require(std::isfinite(top_p) && top_p > 0 && top_p <= 1, "top_p",
          "must be in (0, 1], got " + num(top_p));
  require(std::isfinite(typical_p) && typical_p > 0 && typical_p <= 1, "typical_p",
          "must be in (0, 1], got " + num(typical_p));
  require(top_k >= -1, "top_k", "must be -1 (off) or positive, got " + std::to_string(top_k));
  require(std::isfinite(min_p) && min_p >= 0 && min_p <= 1, "min_p",
          "must be in [0, 1], got " + num(min_p));
  require(std::isfinite(presence_penalty) && presence_penalty >= -2 && presence_penalty <= 2,
          "presence_penalty", "must be in [-2, 2], got " + num(presence_penalty));
  require(std::isfinite(frequency_penalty) && frequency_penalty >= -2 && frequency_penalty <= 2,
          "frequency_penalty", "must be in [-2, 2], got " + num(frequency_penalty));
  require(std::isfinite(repetition_penalty) && repetition_penalty > 0 && repetition_penalty <= 100,
          "repetition_penalty", "must be in (0, 100], got " + num(repetition_penalty));
  require(max_tokens >= 1, "max_tokens", "must be at least 1, got " + std::to_string(max_tokens));
  require(min_tokens >= 0 && min_tokens <= max_tokens, "min_tokens",
          "must be in [0, max_tokens], got " + std::to_string(min_tokens));
  if (logprobs) require(*logprobs >= 0 && *logprobs <= 20, "logprobs", "must be in [0, 20], got " + std::to_string(*logprobs));
  if (prompt_logprobs)
    require(*prompt_logprobs >= 0 && *prompt_logprobs <= 20, "prompt_logprobs",
            "must be in [0, 20], got " + std::to_string(*prompt_logprobs));
  for (const auto& s : stop) require(!s.empty(), "stop", "stop strings must not be empty");
  require(stop.size() <= 64, "stop", "at most 64 stop strings");
  for (const auto& [id, b] : logit_bias)
    require(std::isfinite(b) && b >= -100 && b <= 100, "logit_bias",
            "bias of token " + std::to_string(id) + " must be in [-100, 100], got " + num(b));
  require(std::isfinite(length_penalty), "length_penalty", "must be finite");
  if (use_beam_search) {
    require(temperature == 0 || temperature == 1, "temperature",
            "beam search is deterministic; use temperature 0 (or leave it unset)");
    require(n >= 1, "n", "beam width must be at least 1");
  }
}

}  // namespace banyan::core
