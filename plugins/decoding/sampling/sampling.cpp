// Decoding plugin "sampling": vLLM's sampler. Reported logprobs are those of the
// model's raw distribution; the token is drawn after the logits processors,
// temperature, top_k, top_p and min_p, from the row's own generator (argmax when
// temperature is 0). Parallel sampling (n, best_of) gives each sample its own row
// and generator; the engine forks the sequences.
#include <banyan/decoding.h>
#include <banyan/logits.h>
#include <banyan/rng.h>

#include <vector>

namespace {

class Sampling final : public banyan::DecodingStrategy {
 public:
  explicit Sampling(const banyan::DecodingContext&) {}

  void decode(const banyan::Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
              std::span<BanyanDecodeChoice> out) override {
    using banyan::Error;
    if (logits.device_type != BANYAN_CPU || logits.type() != banyan::DType::f32 || logits.ndim != 2)
      throw Error(banyan::Code::unsupported, "sampling: expects f32 [R, V] logits in host memory");
    const int64_t V = logits.shape[1];
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      if (r.logits_row < 0 || r.logits_row >= logits.shape[0])
        throw Error(banyan::Code::invalid_argument, "sampling: logits row out of range");
      std::span<const float> row(logits.as<float>() + r.logits_row * V, V);
      const BanyanDecodeParams& p = *r.params;
      banyan::logits::log_softmax(row, logp_);
      work_.assign(row.begin(), row.end());
      banyan::logits::apply_processors(work_, p, {r.tokens, static_cast<size_t>(r.num_tokens)},
                                       r.prompt_len);
      for (int j = 0; j < per_row; ++j) {
        BanyanDecodeChoice& c = out[i * per_row + j];
        c.row = static_cast<int32_t>(i);
        c.token = p.temperature <= 0.0 ? argmax() : draw(p, r.rng_state);
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
  int32_t argmax() const {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(work_.size()); ++i)
      if (work_[i] > work_[best]) best = i;
    return best;
  }

  int32_t draw(const BanyanDecodeParams& p, uint64_t* state) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    float mx = neg_inf;
    for (float v : work_) mx = std::max(mx, v);
    if (mx == neg_inf) return argmax();
    cand_.clear();
    for (int32_t i = 0; i < static_cast<int32_t>(work_.size()); ++i)
      if (work_[i] > neg_inf) cand_.push_back({static_cast<float>((work_[i] - mx) / p.temperature), i});
    size_t keep = cand_.size();
    if (p.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(p.top_k));
    // Sort by logit (ties: lower id) whenever a filter needs the order.
    auto by_logit = [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (keep < cand_.size() || p.top_p < 1.0 || p.min_p > 0.0) {
      std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
      cand_.resize(keep);
    }
    probs_.resize(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) sum += probs_[i] = std::exp(static_cast<double>(cand_[i].first));
    for (auto& q : probs_) q /= sum;
    size_t n = cand_.size();
    if (p.min_p > 0.0) {
      const double floor = p.min_p * probs_[0];
      size_t m = 0;
      while (m < n && probs_[m] >= floor) ++m;
      n = std::max<size_t>(m, 1);
    }
    if (p.top_p < 1.0) {
      double acc = 0;
      size_t m = 0;
      while (m < n) {
        acc += probs_[m++];
        if (acc >= p.top_p) break;
      }
      n = std::max<size_t>(m, 1);
    }
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += probs_[i];
    const double x = banyan::rng::uniform(state) * total;
    double acc = 0;
    for (size_t i = 0; i < n; ++i) {
      acc += probs_[i];
      if (x < acc) return cand_[i].second;
    }
    return cand_[n - 1].second;
  }

  std::vector<float> work_, logp_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<double> probs_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Sampling, "sampling", "0.1.0")
