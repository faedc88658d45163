#include "core/runtime/greedy.h"

#include "core/runtime/model_runner.h"

#include <banyan/error.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace banyan::core {

TopLogprobs top_log_softmax(std::span<const float> logits, int k) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min<int>(k, static_cast<int>(idx.size()));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  TopLogprobs out;
  for (int i = 0; i < k; ++i)
    out.emplace_back(idx[i], static_cast<float>(logits[idx[i]] - lse));
  return out;
}

std::vector<GreedyResult> greedy_generate_batch(ModelRunner& runner,
                                                const std::vector<std::vector<int32_t>>& prompts,
                                                const GreedyOptions& o) {
  const int32_t bs = runner.block_size();
  size_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("greedy_generate: empty prompt");
    longest = std::max(longest, p.size());
  }
  const int64_t max_len = static_cast<int64_t>(longest) + std::max(o.max_new_tokens, 0);
  const int32_t per_seq = static_cast<int32_t>((max_len + bs - 1) / bs);
  if (static_cast<int64_t>(per_seq) * static_cast<int64_t>(prompts.size()) > runner.num_blocks())
    throw Error("greedy_generate: " + std::to_string(prompts.size()) + " sequences of up to " +
                std::to_string(max_len) + " tokens need " +
                std::to_string(per_seq * prompts.size()) + " KV blocks; the cache has " +
                std::to_string(runner.num_blocks()));
  const auto& eos = runner.eos_token_ids();

  struct Seq {
    std::vector<int32_t> tokens;  // prompt + generated
    size_t prompt_len;
    size_t done = 0;  // tokens already in the KV cache
    bool finished = false;
  };
  std::vector<Seq> seqs;
  for (const auto& p : prompts) seqs.push_back({p, p.size()});
  std::vector<GreedyResult> results(prompts.size());
  if (o.max_new_tokens <= 0) return results;

  ForwardBatch b;
  for (;;) {
    b.clear();
    std::vector<size_t> members;
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      if (s.finished) continue;
      const size_t remaining = s.tokens.size() - s.done;
      const size_t n = o.prefill_chunk > 0 ? std::min<size_t>(remaining, o.prefill_chunk) : remaining;
      SeqSlice q;
      q.query_start = b.num_tokens();
      q.query_len = static_cast<int32_t>(n);
      q.context_len = static_cast<int32_t>(s.done + n);
      q.block_offset = static_cast<int32_t>(b.block_tables.size());
      q.num_blocks = (q.context_len + bs - 1) / bs;
      q.logits_rows = s.done + n == s.tokens.size() ? 1 : 0;
      for (int32_t j = 0; j < q.num_blocks; ++j)
        b.block_tables.push_back(static_cast<int32_t>(i) * per_seq + j);
      for (size_t j = 0; j < n; ++j) {
        const int32_t pos = static_cast<int32_t>(s.done + j);
        b.token_ids.push_back(s.tokens[s.done + j]);
        b.positions.push_back(pos);
        b.slot_mapping.push_back((static_cast<int32_t>(i) * per_seq + pos / bs) * bs + pos % bs);
      }
      b.seqs.push_back(q);
      members.push_back(i);
    }
    if (members.empty()) break;
    Tensor logits = runner.execute(b);
    std::vector<float> host = runner.to_host(logits);
    const int64_t V = logits.shape[1];
    int64_t row = 0;
    for (size_t m = 0; m < members.size(); ++m) {
      Seq& s = seqs[members[m]];
      s.done += b.seqs[m].query_len;
      if (b.seqs[m].logits_rows == 0) continue;
      std::span<const float> r(host.data() + row * V, static_cast<size_t>(V));
      ++row;
      const int32_t next = static_cast<int32_t>(std::max_element(r.begin(), r.end()) - r.begin());
      GreedyResult& out = results[members[m]];
      out.tokens.push_back(next);
      if (o.top_logprobs > 0) out.top_logprobs.push_back(top_log_softmax(r, o.top_logprobs));
      s.tokens.push_back(next);
      const bool at_eos = o.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end();
      if (at_eos || static_cast<int>(out.tokens.size()) >= o.max_new_tokens) s.finished = true;
    }
  }
  return results;
}

std::vector<int32_t> greedy_generate(ModelRunner& runner, std::span<const int32_t> prompt,
                                     int max_new_tokens, std::vector<TopLogprobs>* top) {
  GreedyOptions o;
  o.max_new_tokens = max_new_tokens;
  o.top_logprobs = top ? 5 : 0;
  auto r = greedy_generate_batch(runner, {std::vector<int32_t>(prompt.begin(), prompt.end())}, o);
  if (top) *top = std::move(r[0].top_logprobs);
  return std::move(r[0].tokens);
}

}  // namespace banyan::core
