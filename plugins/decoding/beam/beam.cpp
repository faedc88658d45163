// Decoding plugin "beam": one step of beam search. For each beam (row) it returns the
// best `per_row` continuations by cumulative log-probability after the logits
// processors, as transformers' beam search ranks them; the engine merges the beams of
// a request, keeps the width best, and scores finished hypotheses with the length
// penalty.
#include <banyan/decoding.h>
#include <banyan/logits.h>

#include <vector>

namespace {

class Beam final : public banyan::DecodingStrategy {
 public:
  explicit Beam(const banyan::DecodingContext&) {}

  void decode(const banyan::Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
              std::span<BanyanDecodeChoice> out) override {
    if (logits.ndim == 2 && per_row > logits.shape[1])
      throw banyan::Error(banyan::Code::invalid_argument, "beam: more candidates than tokens");
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      std::span<const float> row = banyan::logits::row_of(logits, r, "beam");
      const BanyanDecodeParams& p = *r.params;
      work_.assign(row.begin(), row.end());
      banyan::logits::apply_processors(work_, p, {r.tokens, static_cast<size_t>(r.num_tokens)},
                                       r.prompt_len);
      banyan::logits::log_softmax(work_, logp_);
      auto best = banyan::logits::top_k(logp_, per_row);
      if (p.num_logprobs > 0) banyan::logits::log_softmax(row, raw_);
      for (int j = 0; j < per_row; ++j) {
        BanyanDecodeChoice& c = out[i * per_row + j];
        c.row = static_cast<int32_t>(i);
        c.token = best[j].first;
        c.logprob = best[j].second;
        c.score = r.cumulative_logprob + best[j].second;
        if (p.num_logprobs > 0 && c.top_ids) {
          auto top = banyan::logits::top_k(raw_, p.num_logprobs);
          for (size_t k = 0; k < top.size(); ++k) {
            c.top_ids[k] = top[k].first;
            c.top_logprobs[k] = top[k].second;
          }
        }
      }
    }
  }

 private:
  std::vector<float> work_, logp_, raw_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Beam, "beam", "0.1.0")
