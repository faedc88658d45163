// Decoding plugin "typical" (out-of-tree example): typical sampling (Meister et al.,
// "Locally Typical Sampling"), with the semantics of Hugging Face's
// TypicalLogitsWarper. For each row:
//   1. the logits processors of banyan/logits.h (penalties, logit_bias, min_tokens);
//   2. temperature (0: greedy, the argmax, and nothing below applies);
//   3. log p = log_softmax, entropy H = -sum p log p; tokens are ordered by
//      |-log p - H| (how far their surprisal is from the expected surprisal);
//   4. the smallest prefix of that order whose probability reaches typical_p is kept,
//      with every token tied with its last member (at least one token);
//   5. a token is drawn from the kept set, renormalized, with the row's generator.
// Reported logprobs (and top logprobs) are the model's raw distribution, as the
// in-tree sampler reports them.
//
// Option (plugin.yaml, YAML decoding.options): typical_p, float in (0, 1], default 0.9.
#include <banyan/decoding.h>
#include <banyan/logits.h>
#include <banyan/rng.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace {

using banyan::Code;
using banyan::Error;

class Typical final : public banyan::DecodingStrategy {
 public:
  explicit Typical(const banyan::DecodingContext& ctx) {
    nlohmann::json opts;
    try {
      opts = nlohmann::json::parse(ctx.options_json);
    } catch (const nlohmann::json::exception& e) {
      throw Error(Code::invalid_argument, std::string("typical: options are not JSON: ") + e.what());
    }
    if (opts.contains("typical_p")) {
      if (!opts["typical_p"].is_number())
        throw Error(Code::invalid_argument, "typical: option typical_p must be a number, got " +
                                                opts["typical_p"].dump());
      typical_p_ = opts["typical_p"].get<double>();
    }
    if (!(typical_p_ > 0.0 && typical_p_ <= 1.0))
      throw Error(Code::invalid_argument,
                  "typical: option typical_p must be in (0, 1], got " + std::to_string(typical_p_));
    ctx.log.info("typical sampling with typical_p " + std::to_string(typical_p_));
  }

  void decode(const banyan::Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
              std::span<BanyanDecodeChoice> out) override {
    if (logits.device_type != BANYAN_CPU || logits.type() != banyan::DType::f32 || logits.ndim != 2)
      throw Error(Code::unsupported, "typical: expects f32 [R, V] logits in host memory");
    const int64_t V = logits.shape[1];
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      if (r.logits_row < 0 || r.logits_row >= logits.shape[0])
        throw Error(Code::invalid_argument, "typical: logits row " + std::to_string(r.logits_row) +
                                                " out of range [0, " +
                                                std::to_string(logits.shape[0]) + ")");
      std::span<const float> row(logits.as<float>() + r.logits_row * V, V);
      const BanyanDecodeParams& p = *r.params;
      banyan::logits::log_softmax(row, logp_);
      work_.assign(row.begin(), row.end());
      banyan::logits::apply_processors(work_, p, {r.tokens, static_cast<size_t>(r.num_tokens)},
                                       r.prompt_len);
      const bool greedy = p.temperature <= 0.0;
      if (!greedy) keep_typical(p.temperature);
      for (int j = 0; j < per_row; ++j) {
        BanyanDecodeChoice& c = out[i * per_row + j];
        c.row = static_cast<int32_t>(i);
        c.token = greedy ? argmax() : draw(r.rng_state);
        std::memcpy(c.rng_state, r.rng_state, sizeof(c.rng_state));  // the stream after the draw
        c.logprob = logp_[c.token];
        c.score = r.cumulative_logprob + c.logprob;
        if (p.num_logprobs > 0 && c.top_ids) {
          auto top = banyan::logits::top_k(logp_, p.num_logprobs);
          for (size_t k = 0; k < top.size(); ++k) {
            c.top_ids[k] = top[k].first;
            c.top_logprobs[k] = top[k].second;
          }
        }
      }
    }
  }

 private:
  struct Candidate {
    int32_t id;
    double logp;   // log-probability after temperature
    double shift;  // |-logp - H|
  };

  int32_t argmax() const {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(work_.size()); ++i)
      if (work_[i] > work_[best]) best = i;
    return best;
  }

  // Fills kept_ with the typical set of work_ / temperature.
  void keep_typical(double temperature) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    cand_.clear();
    kept_.clear();
    double mx = -std::numeric_limits<double>::infinity();
    for (float v : work_)
      if (v > neg_inf) mx = std::max(mx, static_cast<double>(v) / temperature);
    if (mx == -std::numeric_limits<double>::infinity()) return;  // all masked: argmax
    double sum = 0;
    for (int32_t t = 0; t < static_cast<int32_t>(work_.size()); ++t)
      if (work_[t] > neg_inf) {
        const double z = work_[t] / temperature - mx;
        sum += std::exp(z);
        cand_.push_back({t, z, 0.0});
      }
    const double lse = std::log(sum);
    double entropy = 0;
    for (auto& c : cand_) {
      c.logp -= lse;
      entropy -= std::exp(c.logp) * c.logp;
    }
    for (auto& c : cand_) c.shift = std::abs(-c.logp - entropy);
    std::stable_sort(cand_.begin(), cand_.end(),
                     [](const Candidate& a, const Candidate& b) { return a.shift < b.shift; });
    // Hugging Face: last = #{prefixes whose cumulative probability < typical_p},
    // clamped to the last index; keep every token whose shift <= that token's.
    size_t last = 0;
    double acc = 0;
    for (size_t k = 0; k < cand_.size(); ++k) {
      acc += std::exp(cand_[k].logp);
      if (acc < typical_p_) last = k + 1;
      else break;
    }
    last = std::min(last, cand_.size() - 1);
    const double threshold = cand_[last].shift;
    for (const auto& c : cand_)
      if (c.shift <= threshold) kept_.push_back(c);
  }

  int32_t draw(uint64_t* state) const {
    if (kept_.empty()) return argmax();
    double total = 0;
    for (const auto& c : kept_) total += std::exp(c.logp);
    const double x = banyan::rng::uniform(state) * total;
    double acc = 0;
    for (const auto& c : kept_) {
      acc += std::exp(c.logp);
      if (x < acc) return c.id;
    }
    return kept_.back().id;
  }

  double typical_p_ = 0.9;
  std::vector<float> work_, logp_;
  std::vector<Candidate> cand_, kept_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Typical, "typical", "0.1.0")
