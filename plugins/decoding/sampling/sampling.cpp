// Decoding plugin "sampling": vLLM's sampler. Reported logprobs are those of the
// model's raw distribution; the token is drawn after the logits processors,
// temperature, top_k, top_p, min_p and typical_p (TGI's), from the row's own
// generator (argmax when temperature is 0). Each sample of an n > 1 request is its own row after the first
// token (which the "parallel" strategy draws).
//
// decode_on (logits where the step left them, e.g. on the GPU) does the same through
// the host's sampling op: the logits processors become a sparse list of edits, the
// uniform is drawn here from the row's stream (and given back when the op says the
// row drew none), so the op returns the token the host path would have drawn.
#include <banyan/decoding.h>
#include <banyan/logits.h>
#include <banyan/ops.h>
#include <banyan/rng.h>

#include <cstring>
#include <vector>

namespace {

class Sampling final : public banyan::DecodingStrategy {
 public:
  static constexpr bool kAcceptsDeviceLogits = true;
  explicit Sampling(const banyan::DecodingContext&) {}

  void decode_on(const BanyanOpsV1& ops, BanyanStepContext* ctx, const banyan::Tensor& logits,
                 std::span<const BanyanDecodeRow> rows, int per_row,
                 std::span<BanyanDecodeChoice> out) override {
    if (logits.ndim != 2) throw banyan::Error(banyan::Code::invalid_argument, "sampling: logits must be [R, V]");
    const int32_t V = static_cast<int32_t>(logits.shape[1]);
    const size_t n = rows.size() * static_cast<size_t>(per_row);
    sample_rows_.resize(n);
    results_.resize(n);
    states_.resize(n * 4);
    edits_.clear();
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      const BanyanDecodeParams& p = *r.params;
      if (banyan::logits::typical_p_of(p) < 1.0)
        throw banyan::Error(banyan::Code::unsupported,
                            "sampling: typical_p needs host logits (the sampling op has no typical filter)");
      const int32_t first = static_cast<int32_t>(edits_.size());
      banyan::logits::make_edits(p, {r.tokens, static_cast<size_t>(r.num_tokens)}, r.prompt_len, V, edits_);
      std::memcpy(&states_[i * per_row * 4], r.rng_state, 4 * sizeof(uint64_t));  // before the draws
      for (int j = 0; j < per_row; ++j) {
        const size_t k = i * per_row + j;
        BanyanDecodeChoice& c = out[k];
        BanyanSampleRow& s = sample_rows_[k];
        s = {};
        s.logits_row = r.logits_row;
        s.top_k = p.top_k;
        s.temperature = p.temperature;
        s.top_p = p.top_p;
        s.min_p = p.min_p;
        s.u = p.temperature > 0.0 ? banyan::rng::uniform(r.rng_state) : 0.0;
        s.repetition_penalty = static_cast<float>(p.repetition_penalty);
        s.num_logprobs = c.top_ids && c.top_logprobs ? p.num_logprobs : 0;
        s.first_edit = first;
        s.num_edits = static_cast<int32_t>(edits_.size()) - first;
        results_[k] = {0, 0.0f, 0, c.top_ids, c.top_logprobs};
        std::memcpy(c.rng_state, r.rng_state, sizeof(c.rng_state));  // after draw j
      }
    }
    banyan::Ops(&ops, ctx).sample(logits, sample_rows_, edits_, results_);
    for (size_t i = 0; i < rows.size(); ++i) {
      const BanyanDecodeRow& r = rows[i];
      if (r.params->temperature > 0.0 && !results_[i * per_row].used_u) {
        // Every logit was -inf: the host path takes the argmax without a draw.
        std::memcpy(r.rng_state, &states_[i * per_row * 4], 4 * sizeof(uint64_t));
        for (int j = 0; j < per_row; ++j) std::memcpy(out[i * per_row + j].rng_state, r.rng_state, 4 * sizeof(uint64_t));
      }
      for (int j = 0; j < per_row; ++j) {
        const size_t k = i * per_row + j;
        BanyanDecodeChoice& c = out[k];
        c.row = static_cast<int32_t>(i);
        c.token = results_[k].token;
        c.logprob = results_[k].logprob;
        c.score = r.cumulative_logprob + c.logprob;
      }
    }
  }

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
  std::vector<BanyanSampleRow> sample_rows_;
  std::vector<BanyanSampleResult> results_;
  std::vector<BanyanLogitEdit> edits_;
  std::vector<uint64_t> states_;
};

}  // namespace

BANYAN_DECODING_PLUGIN(Sampling, "sampling", "0.1.0")
