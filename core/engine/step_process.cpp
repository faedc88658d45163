// After the forward pass: logits -> tokens (sampling, parallel samples, beams),
// finish checks, and the messages sent to each request's sink.
#include "core/engine/engine_impl.h"

#include "core/adapters/adapter_manager.h"
#include "core/engine/text_output.h"

#include <banyan/logits.h>
#include <banyan/rng.h>

#include <algorithm>
#include <cmath>

namespace banyan::core {
namespace {
bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
}  // namespace

void EngineImpl::process(const SchedulerOutput& out, const Tensor& logits,
                         const std::vector<int32_t>& row_of, const DecodeOps* on) {
  const int64_t V = logits.shape[1];
  const Tensor& host_logits = logits;  // host memory on every path but sampling with `on`
  std::vector<SequenceGroup*> touched;
  std::vector<std::pair<Sequence*, int32_t>> sample_rows;
  std::vector<std::pair<SequenceGroup*, std::vector<std::pair<Sequence*, int32_t>>>> beams;
  std::vector<float> lp;
  for (size_t i = 0; i < out.seqs.size(); ++i) {
    Sequence& s = *out.seqs[i].seq;
    SequenceGroup& g = *s.group;
    if (g.aborted || s.finished) continue;
    if (std::find(touched.begin(), touched.end(), &g) == touched.end()) touched.push_back(&g);
    const int32_t n = out.seqs[i].num_new;
    const int32_t start = s.num_computed - n;
    const auto& params = g.request.params;
    const bool prompt_lp = params.prompt_logprobs && start < s.prompt_len && !g.forked;
    const int32_t rows = prompt_lp ? n : (out.seqs[i].sample ? 1 : 0);
    if (prompt_lp) {
      if (start == 0) g.prompt_logprobs.push_back(std::nullopt);  // the first token has none
      for (int32_t r = 0; r < n; ++r) {
        const int32_t next = start + r + 1;
        if (next >= s.prompt_len) break;
        const float* row = logits.as<float>() + static_cast<size_t>(row_of[i] + r) * V;
        logits::log_softmax(std::span<const float>(row, static_cast<size_t>(V)), lp);
        TokenLogprob t{s.tokens[next], lp[s.tokens[next]], {}};
        t.rank = 1;
        for (float v : lp) t.rank += v > t.logprob ? 1 : 0;
        for (auto [id, v] : logits::top_k(lp, *params.prompt_logprobs)) t.top.push_back({id, v});
        g.prompt_logprobs.push_back(std::move(t));
      }
    }
    if (!out.seqs[i].sample) continue;
    const int32_t row = row_of[i] + rows - 1;
    if (g.kind == GroupKind::beam) {
      auto it = std::find_if(beams.begin(), beams.end(), [&](const auto& b) { return b.first == &g; });
      if (it == beams.end()) it = beams.insert(beams.end(), {&g, {}});
      it->second.push_back({&s, row});
      continue;
    }
    if (g.kind == GroupKind::parallel && !g.forked) {
      // best_of first tokens of the prompt's last row, each from its own stream; the
      // samples then continue as forks sharing the prompt's KV blocks.
      g.forked = true;
      auto firsts = decoders_->parallel(host_logits, &s, row, g.width);
      std::vector<Sequence*> samples = {&s};
      for (int c = 1; c < g.width; ++c) {
        auto child = scheduler_->fork(s, next_seq_id());
        samples.push_back(child.get());
        g.seqs.push_back(std::move(child));
      }
      for (int c = 0; c < g.width; ++c) {
        std::copy(firsts[c].rng, firsts[c].rng + 4, samples[c]->rng);
        append_token(*samples[c], firsts[c]);
      }
      continue;
    }
    sample_rows.push_back({&s, row});
  }
  auto tokens = decoders_->sample(logits, sample_rows, on);
  for (size_t i = 0; i < sample_rows.size(); ++i) append_token(*sample_rows[i].first, tokens[i]);
  for (auto& [g, rows] : beams) process_beam(*g, host_logits, rows);
  for (SequenceGroup* g : touched) {
    if (g->metrics.first_token == Clock::time_point{}) g->metrics.first_token = Clock::now();
    if (!g->all_finished()) emit(*g, false);
  }
}

void EngineImpl::append_token(Sequence& s, const DecodedToken& t) {
  SequenceGroup& g = *s.group;
  const auto& p = g.request.params;
  const int32_t token = t.token;
  s.tokens.push_back(token);
  s.cumulative_logprob += t.logprob;
  if (p.logprobs) s.logprobs.push_back({token, t.logprob, t.top});
  if (!s.text_out && tokenizer_)
    s.text_out = std::make_shared<TextOutput>(
        std::span<const int32_t>(s.tokens.data(), s.prompt_len), p.skip_special_tokens);

  const bool eos = !p.ignore_eos && contains(eos_, token) && s.output_len() > p.min_tokens - 1;
  const bool stop_id = contains(p.stop_token_ids, token);
  if (eos || stop_id) {
    s.finished = true;
    s.finish_reason = "stop";
    if (stop_id && !eos) s.stop_reason = std::to_string(token);
    if (p.include_stop_str_in_output && s.text_out) s.text += s.text_out->push(*tokenizer_, s.tokens);
    return;
  }
  const size_t old_len = s.text.size();
  if (s.text_out) s.text += s.text_out->push(*tokenizer_, s.tokens);
  if (!p.stop.empty() && s.text.size() > old_len) {
    if (auto hit = find_stop(s.text, old_len, p.stop)) {
      const std::string& stop = p.stop[hit->second];
      s.text.resize(hit->first + (p.include_stop_str_in_output ? stop.size() : 0));
      s.finished = true;
      s.finish_reason = "stop";
      s.stop_reason = stop;
      return;
    }
  }
  if (s.output_len() >= p.max_tokens || static_cast<int64_t>(s.tokens.size()) >= max_model_len_) {
    s.finished = true;
    s.finish_reason = "length";
  }
}

void EngineImpl::process_beam(SequenceGroup& g, const Tensor& logits,
                              const std::vector<std::pair<Sequence*, int32_t>>& rows) {
  const auto& p = g.request.params;
  const int W = g.width;
  struct Cand {
    double score;
    Sequence* beam;
    DecodedToken tok;
  };
  std::vector<Cand> cands;
  auto per_beam = decoders_->beam(logits, rows, 2 * W);
  for (size_t b = 0; b < rows.size(); ++b)
    for (auto& t : per_beam[b]) cands.push_back({t.score, rows[b].first, std::move(t)});
  std::stable_sort(cands.begin(), cands.end(),
                   [](const Cand& a, const Cand& b) { return a.score > b.score; });
  if (cands.size() > static_cast<size_t>(2 * W)) cands.resize(2 * W);
  const int32_t gen_len = rows[0].first->output_len() + 1;
  const bool at_max = gen_len >= p.max_tokens ||
                      static_cast<int64_t>(rows[0].first->tokens.size()) + 1 >= max_model_len_;
  auto norm = [&](double score, int32_t len) { return score / std::pow(len, p.length_penalty); };
  std::vector<const Cand*> next;
  for (size_t rank = 0; rank < cands.size(); ++rank) {
    const Cand& c = cands[rank];
    const bool is_eos = !p.ignore_eos && contains(eos_, c.tok.token);
    if (is_eos || at_max) {
      if (rank < static_cast<size_t>(W)) {
        SequenceGroup::BeamHypothesis h;
        h.output = c.beam->output_ids();
        h.output.push_back(c.tok.token);
        h.cumulative_logprob = c.score;
        h.score = norm(c.score, gen_len);
        g.beam_done.push_back(std::move(h));
      }
      continue;
    }
    next.push_back(&c);
    if (next.size() == static_cast<size_t>(W)) break;
  }
  std::stable_sort(g.beam_done.begin(), g.beam_done.end(),
                   [](const auto& a, const auto& b) { return a.score > b.score; });
  bool done = at_max || next.empty();
  if (!done && g.beam_done.size() >= static_cast<size_t>(W)) {
    if (p.early_stopping) {
      done = true;
    } else {
      // transformers' heuristic: can the best running beam still beat the worst kept?
      const double denom =
          std::pow(p.length_penalty > 0 ? p.max_tokens : gen_len, p.length_penalty);
      done = next.front()->score / denom <= g.beam_done[W - 1].score;
    }
  }
  if (done) {
    for (auto* s : g.live()) s->finished = true;
    return;
  }
  // Realize the next beams: a parent chosen k times is kept once and forked k-1 times.
  std::vector<std::pair<Sequence*, const Cand*>> plan;
  std::vector<Sequence*> used;
  for (const Cand* c : next) {
    if (std::find(used.begin(), used.end(), c->beam) == used.end()) {
      used.push_back(c->beam);
      plan.push_back({c->beam, c});
    } else {
      auto child = scheduler_->fork(*c->beam, next_seq_id());
      plan.push_back({child.get(), c});
      g.seqs.push_back(std::move(child));
    }
  }
  for (const auto& [s, c] : plan) {
    s->tokens.push_back(c->tok.token);
    s->cumulative_logprob = c->score;
  }
  // Beams not chosen are dropped now, their blocks freed.
  for (auto it = g.seqs.begin(); it != g.seqs.end();) {
    Sequence* s = it->get();
    bool chosen = std::any_of(plan.begin(), plan.end(), [&](const auto& x) { return x.first == s; });
    if (!chosen) {
      scheduler_->free_seq(*s);
      it = g.seqs.erase(it);
    } else {
      ++it;
    }
  }
}

void EngineImpl::emit(SequenceGroup& g, bool final_message) {
  const auto& p = g.request.params;
  const bool hold_all = g.kind == GroupKind::beam ||
                        (g.kind == GroupKind::parallel && p.best_of.value_or(p.n) > p.n);
  if (hold_all && !final_message) return;
  RequestOutput o;
  o.request_id = g.request.request_id;
  o.prompt_tokens = static_cast<int>(g.request.prompt_ids.size());
  o.finished = final_message;
  o.metrics = g.metrics;
  if (p.prompt_logprobs && !g.prompt_logprobs_sent &&
      static_cast<int32_t>(g.prompt_logprobs.size()) >= static_cast<int32_t>(g.request.prompt_ids.size())) {
    o.prompt_logprobs = g.prompt_logprobs;
    g.prompt_logprobs_sent = true;
  }
  int total = 0;
  for (size_t i = 0; i < g.seqs.size(); ++i) {
    Sequence& s = *g.seqs[i];
    if (s.index < 0) s.index = static_cast<int>(i);
    total += s.output_len();
    CompletionDelta d;
    d.index = s.index;
    const size_t out_len = static_cast<size_t>(s.output_len());
    d.token_ids.assign(s.tokens.begin() + s.prompt_len + s.tokens_sent, s.tokens.end());
    s.tokens_sent = out_len;
    size_t sendable = (s.finished || final_message) ? s.text.size() : sendable_length(s.text, p.stop);
    if (sendable > s.text_sent) {
      d.text = s.text.substr(s.text_sent, sendable - s.text_sent);
      s.text_sent = sendable;
    }
    size_t lp_sent = s.logprobs.size() - std::min(s.logprobs.size(), d.token_ids.size());
    d.logprobs.assign(s.logprobs.begin() + lp_sent, s.logprobs.end());
    d.cumulative_logprob = s.cumulative_logprob;
    const bool report_finish = (s.finished || final_message) && !s.finish_sent;
    if (report_finish) {
      d.finish_reason = s.finish_reason ? *s.finish_reason : std::string("abort");
      d.stop_reason = s.stop_reason;
      s.finish_sent = true;
    }
    if (!d.token_ids.empty() || !d.text.empty() || report_finish) o.outputs.push_back(std::move(d));
  }
  o.completion_tokens = total;
  if (!o.outputs.empty() || final_message || !o.prompt_logprobs.empty()) g.sink(std::move(o));
}

void EngineImpl::fail_group(SequenceGroup& g, const std::string& message) {
  g.error = message;
  g.aborted = true;
}

void EngineImpl::finish_group(std::unique_ptr<SequenceGroup> g) {
  const auto& p = g->request.params;
  g->metrics.finished = Clock::now();
  if (adapters_ && g->adapter_id) {  // before the sink: its caller sees the adapter released
    int64_t tokens = static_cast<int64_t>(g->request.prompt_ids.size());
    for (const auto& s : g->seqs) tokens += s->output_len();
    adapters_->end_request(g->adapter_id, g->adapter_slot >= 0, tokens);
    g->adapter_slot = -1;
  }
  if (g->error) {
    RequestOutput o;
    o.request_id = g->request.request_id;
    o.finished = true;
    o.error = g->error;
    o.prompt_tokens = static_cast<int>(g->request.prompt_ids.size());
    g->sink(std::move(o));
  } else if (g->kind == GroupKind::beam && !g->aborted) {
    RequestOutput o;
    o.request_id = g->request.request_id;
    o.finished = true;
    o.prompt_tokens = static_cast<int>(g->request.prompt_ids.size());
    o.metrics = g->metrics;
    for (int i = 0; i < g->width && i < static_cast<int>(g->beam_done.size()); ++i) {
      const auto& h = g->beam_done[i];
      CompletionDelta d;
      d.index = i;
      d.token_ids = h.output;
      std::vector<int32_t> text_ids = h.output;
      if (!text_ids.empty() && contains(eos_, text_ids.back())) text_ids.pop_back();
      if (tokenizer_) d.text = tokenizer_->decode(text_ids, p.skip_special_tokens);
      d.cumulative_logprob = h.cumulative_logprob;
      d.finish_reason = static_cast<int32_t>(h.output.size()) >= p.max_tokens ? "length" : "stop";
      o.completion_tokens += static_cast<int>(h.output.size());
      o.outputs.push_back(std::move(d));
    }
    g->sink(std::move(o));
  } else {
    if (g->aborted)
      for (auto& s : g->seqs)
        if (!s->finished) s->finish_reason = "abort", s->finished = true;
    if (g->kind == GroupKind::parallel && p.best_of.value_or(p.n) > p.n && !g->aborted) {
      // best_of: keep the n most likely samples, best first.
      std::stable_sort(g->seqs.begin(), g->seqs.end(), [](const auto& a, const auto& b) {
        return a->cumulative_logprob > b->cumulative_logprob;
      });
      g->seqs.resize(p.n);
      for (size_t i = 0; i < g->seqs.size(); ++i) g->seqs[i]->index = static_cast<int>(i);
    }
    emit(*g, true);
  }
  std::lock_guard lock(mu_);
  known_ids_.erase(g->request.request_id);
  ++stats_.requests_finished;
  for (const auto& s : g->seqs) stats_.generation_tokens += s->output_len();
}

}  // namespace banyan::core
