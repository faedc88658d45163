// Decoding plugin "sampling": vLLM's sampler. Reported logprobs are those of the
// model's raw distribution; the token is drawn after the logits processors,
// temperature, top_k, top_p and min_p, from the row's own generator (argmax when
// temperature is 0). Each sample of an n > 1 request is its own row after the first
// token (which the "parallel" strategy draws).
#include <banyan/decoding.h>
#include <banyan/logits.h>
#include <banyan/rng.h>

#include <cstring>
#include <vector>

namespace {

class Sampling final : public banyan::DecodingStrategy {
 public:
  explicit Sampling(const banyan::DecodingContext&) {}

  void decode(const banyan::Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
              std::span<BanyanDecodeChoice> out) override {
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      std::span<const float> row = banyan::logits::row_of(logits, r, "sampling");
      const BanyanDecodeParams& p = *r.params;
      banyan::logits::log_softmax(row, logp_);
      work_.assign(row.begin(), row.end());
      banyan::logits::apply_processors(work_, p, {r.tokens, static_cast<size_t>(r.num_tokens)},
                                       r.prompt_len);
      for (int j = 0; j < per_row; ++j) {  // several draws of one row share its stream
        BanyanDecodeChoice& c = out[i * per_row + j];
        c.row = static_cast<int32_t>(i);
        c.token = banyan::logits::sample_token(work_, p, r.rng_state);
        c.logprob = logp_[c.token];
        c.score = r.cumulative_logprob + c.logprob;
        std::memcpy(c.rng_state, r.rng_state, sizeof(c.rng_state));
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
  std::vector<float> work_, logp_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Sampling, "sampling", "0.1.0")
