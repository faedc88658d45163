// Decoding plugin "parallel": the first token of an n > 1 (or best_of) request. It
// draws per_row samples of the prompt's last row, sample j from stream j forked from
// the row's generator (banyan::rng::fork: stream 0 is the row's own), and returns
// each stream's state so the engine continues sample j from it. The same seed gives
// the same n samples in any batch; distinct streams make the samples differ.
#include <banyan/decoding.h>
#include <banyan/logits.h>
#include <banyan/rng.h>

#include <cstring>
#include <vector>

namespace {

class Parallel final : public banyan::DecodingStrategy {
 public:
  explicit Parallel(const banyan::DecodingContext&) {}

  void decode(const banyan::Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
              std::span<BanyanDecodeChoice> out) override {
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      std::span<const float> row = banyan::logits::row_of(logits, r, "parallel");
      const BanyanDecodeParams& p = *r.params;
      banyan::logits::log_softmax(row, logp_);
      work_.assign(row.begin(), row.end());
      banyan::logits::apply_processors(work_, p, {r.tokens, static_cast<size_t>(r.num_tokens)},
                                       r.prompt_len);
      uint64_t parent[4];
      std::memcpy(parent, r.rng_state, sizeof(parent));
      for (int j = 0; j < per_row; ++j) {
        BanyanDecodeChoice& c = out[i * per_row + j];
        banyan::rng::fork(parent, static_cast<uint64_t>(j), c.rng_state);
        c.row = static_cast<int32_t>(i);
        c.token = banyan::logits::sample_token(work_, p, c.rng_state);
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
      std::memcpy(r.rng_state, out[i * per_row].rng_state, sizeof(parent));  // stream 0
    }
  }

 private:
  std::vector<float> work_, logp_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Parallel, "parallel", "0.1.0")
