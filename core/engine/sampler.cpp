#include "core/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace banyan::core {

void Sampler::log_softmax(std::span<const float> logits, std::vector<float>& out) {
  out.resize(logits.size());
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<float>(logits[i] - lse);
}

std::vector<TopLogprob> Sampler::top_k(std::span<const float> values, int k) {
  k = std::min<int>(k, static_cast<int>(values.size()));
  std::vector<int32_t> idx(values.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  auto better = [&](int32_t a, int32_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  std::vector<TopLogprob> out;
  for (int i = 0; i < k; ++i) out.push_back({idx[i], values[idx[i]]});
  return out;
}

void Sampler::process(std::vector<float>& logits, const SamplingParams& p,
                      std::span<const int32_t> context, int32_t output_len,
                      std::span<const int32_t> eos_ids) {
  const int32_t V = static_cast<int32_t>(logits.size());
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (output_len < p.min_tokens) {
    for (int32_t e : eos_ids)
      if (e >= 0 && e < V && !p.ignore_eos) logits[e] = neg_inf;
    for (int32_t e : p.stop_token_ids)
      if (e >= 0 && e < V) logits[e] = neg_inf;
  }
  for (const auto& [id, bias] : p.logit_bias)
    if (id >= 0 && id < V) logits[id] += static_cast<float>(bias);
  if (p.repetition_penalty != 1.0) {
    // Each distinct token of prompt and output, once.
    std::vector<int32_t> seen(context.begin(), context.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float rp = static_cast<float>(p.repetition_penalty);
    for (int32_t t : seen) {
      if (t < 0 || t >= V) continue;
      logits[t] = logits[t] > 0 ? logits[t] / rp : logits[t] * rp;
    }
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int32_t> counts;
    for (size_t i = context.size() - output_len; i < context.size(); ++i) ++counts[context[i]];
    for (const auto& [t, c] : counts) {
      if (t < 0 || t >= V) continue;
      logits[t] -= static_cast<float>(p.frequency_penalty * c + p.presence_penalty);
    }
  }
}

SampleResult Sampler::sample(std::span<const float> logits, const SamplingParams& p,
                             std::span<const int32_t> context, int32_t output_len,
                             std::span<const int32_t> eos_ids, std::mt19937_64& rng) {
  const int32_t V = static_cast<int32_t>(logits.size());
  log_softmax(logits, logp_);
  work_.assign(logits.begin(), logits.end());
  process(work_, p, context, output_len, eos_ids);

  SampleResult r;
  if (p.temperature <= 0.0 || p.use_beam_search) {
    int32_t best = 0;
    for (int32_t i = 1; i < V; ++i)
      if (work_[i] > work_[best]) best = i;
    r.token = best;
  } else {
    // Temperature, then top_k / top_p / min_p over the sorted candidates.
    const double t = p.temperature;
    cand_.clear();
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t i = 0; i < V; ++i) mx = std::max(mx, work_[i]);
    for (int32_t i = 0; i < V; ++i)
      if (work_[i] > -std::numeric_limits<float>::infinity())
        cand_.push_back({static_cast<float>((work_[i] - mx) / t), i});
    if (cand_.empty()) cand_.push_back({0.0f, 0});
    size_t keep = cand_.size();
    if (p.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(p.top_k));
    auto by_logit = [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (keep < cand_.size() || p.top_p < 1.0 || p.min_p > 0.0) {
      std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
      cand_.resize(keep);
    }
    std::vector<double> probs(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) sum += probs[i] = std::exp(static_cast<double>(cand_[i].first));
    for (auto& q : probs) q /= sum;
    size_t n = cand_.size();
    if (p.min_p > 0.0) {  // candidates are sorted here: probs[0] is the largest
      double floor = p.min_p * probs[0];
      size_t m = 0;
      while (m < n && probs[m] >= floor) ++m;
      n = std::max<size_t>(m, 1);
    }
    if (p.top_p < 1.0) {
      double acc = 0;
      size_t m = 0;
      while (m < n) {
        acc += probs[m++];
        if (acc >= p.top_p) break;
      }
      n = std::max<size_t>(m, 1);
    }
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += probs[i];
    std::uniform_real_distribution<double> u(0.0, total);
    double x = u(rng), acc = 0;
    r.token = cand_[n - 1].second;
    for (size_t i = 0; i < n; ++i) {
      acc += probs[i];
      if (x < acc) {
        r.token = cand_[i].second;
        break;
      }
    }
  }
  r.logprob = logp_[r.token];
  if (p.logprobs && *p.logprobs > 0) r.top = top_k(logp_, *p.logprobs);
  return r;
}

}  // namespace banyan::core
