// Helpers for decoding strategies over one row of logits (host memory): the logits
// processors with vLLM / Hugging Face / OpenAI semantics, log_softmax and top-k.
// Header-only, so a third-party decoding plugin gets the same semantics.
#pragma once

#include <banyan/abi.h>
#include <banyan/error.h>
#include <banyan/tensor.h>
#include <banyan/rng.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace banyan::logits {

/// The row of host f32 logits [R, V] that `r` points at; throws naming `who` when the
/// tensor is not host f32 [R, V] or the row is out of range.
inline std::span<const float> row_of(const Tensor& logits, const BanyanDecodeRow& r, const char* who) {
  if (logits.device_type != BANYAN_CPU || logits.type() != DType::f32 || logits.ndim != 2)
    throw Error(Code::unsupported, std::string(who) + ": expects f32 [R, V] logits in host memory");
  if (r.logits_row < 0 || r.logits_row >= logits.shape[0])
    throw Error(Code::invalid_argument, std::string(who) + ": logits row out of range");
  const int64_t V = logits.shape[1];
  return {logits.as<float>() + r.logits_row * V, static_cast<size_t>(V)};
}

/// The params' typical_p, or 1 (off) when the caller's struct predates it or leaves it
/// 0 (a zero-initialized struct: 0 is outside the valid (0, 1]).
inline double typical_p_of(const BanyanDecodeParams& p) {
  if (p.struct_size < offsetof(BanyanDecodeParams, typical_p) + sizeof(double)) return 1.0;
  return p.typical_p > 0.0 && p.typical_p < 1.0 ? p.typical_p : 1.0;
}

/// out = log_softmax(x), computed in double.
inline void log_softmax(std::span<const float> x, std::vector<float>& out) {
  out.resize(x.size());
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : x) mx = std::max(mx, v);
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(x[i] - lse);
}

/// The k largest entries, largest first; ties go to the lower id.
inline std::vector<std::pair<int32_t, float>> top_k(std::span<const float> v, int k) {
  k = std::min<int>(k, static_cast<int>(v.size()));
  std::vector<int32_t> idx(v.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(k);
  for (int i = 0; i < k; ++i) out.emplace_back(idx[i], v[idx[i]]);
  return out;
}

/// The logits processors, in vLLM's order: min_tokens masking (EOS and stop ids),
/// logit_bias, repetition penalty (Hugging Face: each distinct token of prompt and
/// output, positive logits divided, negative multiplied), presence and frequency
/// penalties (OpenAI: over the output only).
inline void apply_processors(std::vector<float>& x, const BanyanDecodeParams& p,
                             std::span<const int32_t> tokens, int32_t prompt_len) {
  const int32_t V = static_cast<int32_t>(x.size());
  const int32_t output_len = static_cast<int32_t>(tokens.size()) - prompt_len;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (output_len < p.min_tokens) {
    if (!p.ignore_eos)
      for (int32_t i = 0; i < p.num_eos; ++i)
        if (p.eos_ids[i] >= 0 && p.eos_ids[i] < V) x[p.eos_ids[i]] = neg_inf;
    for (int32_t i = 0; i < p.num_stop_token_ids; ++i)
      if (p.stop_token_ids[i] >= 0 && p.stop_token_ids[i] < V) x[p.stop_token_ids[i]] = neg_inf;
  }
  for (int32_t i = 0; i < p.num_bias; ++i)
    if (p.bias_ids[i] >= 0 && p.bias_ids[i] < V) x[p.bias_ids[i]] += p.bias_values[i];
  if (p.repetition_penalty != 1.0) {
    std::vector<int32_t> seen(tokens.begin(), tokens.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float rp = static_cast<float>(p.repetition_penalty);
    for (int32_t t : seen)
      if (t >= 0 && t < V) x[t] = x[t] > 0 ? x[t] / rp : x[t] * rp;
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int32_t> counts;
    for (size_t i = static_cast<size_t>(prompt_len); i < tokens.size(); ++i) ++counts[tokens[i]];
    for (const auto& [t, c] : counts)
      if (t >= 0 && t < V)
        x[t] -= static_cast<float>(p.frequency_penalty * c + p.presence_penalty);
  }
}

/// Draws a token from processed logits `x` (after apply_processors) with the
/// temperature, top_k, top_p and min_p of `p` (vLLM's order and semantics), using one
/// uniform in [0, 1) from `draw()`, called only when the token is drawn (temperature
/// > 0 and some logit finite); argmax (ties: the lower id) otherwise.
/// typical_p < 1 then keeps the locally typical set of what is left (Hugging Face's
/// TypicalLogitsWarper: the tokens whose surprise is closest to the entropy, up to
/// typical_p of the mass).
template <class Draw>
int32_t sample_token_with(std::span<const float> x, const BanyanDecodeParams& p, Draw&& draw) {
  auto argmax = [&] {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(x.size()); ++i)
      if (x[i] > x[best]) best = i;
    return best;
  };
  if (p.temperature <= 0.0) return argmax();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  float mx = neg_inf;
  for (float v : x) mx = std::max(mx, v);
  if (mx == neg_inf) return argmax();
  std::vector<std::pair<float, int32_t>> cand;
  for (int32_t i = 0; i < static_cast<int32_t>(x.size()); ++i)
    if (x[i] > neg_inf) cand.push_back({static_cast<float>((x[i] - mx) / p.temperature), i});
  size_t keep = cand.size();
  if (p.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(p.top_k));
  // Sorted by logit (ties: lower id) whenever a filter needs the order.
  const double typical = typical_p_of(p);
  if (keep < cand.size() || p.top_p < 1.0 || p.min_p > 0.0 || typical < 1.0) {
    std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    cand.resize(keep);
  }
  std::vector<double> probs(cand.size());
  double sum = 0;
  for (size_t i = 0; i < cand.size(); ++i) sum += probs[i] = std::exp(static_cast<double>(cand[i].first));
  for (auto& q : probs) q /= sum;
  size_t n = cand.size();
  if (p.min_p > 0.0) {
    const double floor = p.min_p * probs[0];
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
  if (typical < 1.0) {
    // Over the distribution renormalized to the n candidates left: the entropy H,
    // each token's distance |-log q - H|; the closest tokens, in that order, until
    // their mass reaches typical_p (every token as close as the last one stays).
    std::vector<double> dist(n);
    double entropy = 0;
    for (size_t i = 0; i < n; ++i) {
      const double q = probs[i] / total;
      if (q > 0) entropy -= q * std::log(q);
    }
    for (size_t i = 0; i < n; ++i) {
      const double q = probs[i] / total;
      dist[i] = q > 0 ? std::abs(-std::log(q) - entropy) : std::numeric_limits<double>::infinity();
    }
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dist[a] < dist[b]; });
    double cum = 0;
    size_t last = 0;
    for (size_t k = 0; k < n; ++k) {
      cum += probs[order[k]] / total;
      if (cum < typical) ++last;
    }
    const double bound = dist[order[std::min(last, n - 1)]];
    total = 0;
    for (size_t i = 0; i < n; ++i) {
      if (dist[i] > bound) probs[i] = 0;  // outside the typical set: never drawn
      total += probs[i];
    }
  }
  const double u = draw() * total;
  double acc = 0;
  size_t last_kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (probs[i] <= 0) continue;
    last_kept = i;
    acc += probs[i];
    if (u < acc) return cand[i].second;
  }
  return cand[last_kept].second;
}

/// sample_token_with drawing from the row's generator (xoshiro256** state).
inline int32_t sample_token(std::span<const float> x, const BanyanDecodeParams& p, uint64_t* state) {
  return sample_token_with(x, p, [state] { return banyan::rng::uniform(state); });
}

// ------------------------------------------------------------ the sampling op ---
// The logits processors as a sparse list of edits (BanyanLogitEdit, abi.h), which
// the sampling op (BanyanOpsV1.sample) applies where the logits live. Applying the
// edits of make_edits() equals apply_processors() bit for bit, except that two
// logit_bias entries for one token are added to each other first.

/// The edits of apply_processors(p, tokens, prompt_len) over a vocabulary of V,
/// sorted by token, one per token, appended to `out`.
inline void make_edits(const BanyanDecodeParams& p, std::span<const int32_t> tokens,
                       int32_t prompt_len, int32_t V, std::vector<BanyanLogitEdit>& out) {
  std::vector<BanyanLogitEdit> e;
  auto add = [&](int32_t t) -> BanyanLogitEdit& {
    e.push_back({t, 0u, 0.0f, 0.0f});
    return e.back();
  };
  const int32_t output_len = static_cast<int32_t>(tokens.size()) - prompt_len;
  if (output_len < p.min_tokens) {
    if (!p.ignore_eos)
      for (int32_t i = 0; i < p.num_eos; ++i)
        if (p.eos_ids[i] >= 0 && p.eos_ids[i] < V) add(p.eos_ids[i]).flags = BANYAN_EDIT_MASK;
    for (int32_t i = 0; i < p.num_stop_token_ids; ++i)
      if (p.stop_token_ids[i] >= 0 && p.stop_token_ids[i] < V)
        add(p.stop_token_ids[i]).flags = BANYAN_EDIT_MASK;
  }
  for (int32_t i = 0; i < p.num_bias; ++i)
    if (p.bias_ids[i] >= 0 && p.bias_ids[i] < V) add(p.bias_ids[i]).bias = p.bias_values[i];
  if (p.repetition_penalty != 1.0)
    for (int32_t t : tokens)
      if (t >= 0 && t < V) add(t).flags = BANYAN_EDIT_REPETITION;
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int32_t> counts;
    for (size_t i = static_cast<size_t>(std::max(prompt_len, 0)); i < tokens.size(); ++i) ++counts[tokens[i]];
    for (const auto& [t, c] : counts)
      if (t >= 0 && t < V)
        add(t).subtract = static_cast<float>(p.frequency_penalty * c + p.presence_penalty);
  }
  // One edit per token: the flags or-ed, biases added, the one subtraction kept.
  std::stable_sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.token < b.token; });
  for (size_t i = 0; i < e.size();) {
    BanyanLogitEdit m = e[i];
    size_t j = i + 1;
    for (; j < e.size() && e[j].token == m.token; ++j) {
      m.flags |= e[j].flags;
      m.bias += e[j].bias;
      if (e[j].subtract != 0.0f) m.subtract = e[j].subtract;
    }
    out.push_back(m);
    i = j;
  }
}

/// x[token] after one edit, in vLLM's order (mask, bias, repetition, presence and
/// frequency); the same float operations as apply_processors.
inline float apply_edit(float x, const BanyanLogitEdit& e, float repetition_penalty) {
  if (e.flags & BANYAN_EDIT_MASK) x = -std::numeric_limits<float>::infinity();
  if (e.bias != 0.0f) x += e.bias;
  if (e.flags & BANYAN_EDIT_REPETITION) x = x > 0 ? x / repetition_penalty : x * repetition_penalty;
  if (e.subtract != 0.0f) x -= e.subtract;
  return x;
}

/// The sampling op on one host row (the reference of every backend's op): `raw` is
/// the row's logits, `work` scratch. Fills `out` (its top arrays included).
inline void sample_row(std::span<const float> raw, const BanyanSampleRow& r,
                       std::span<const BanyanLogitEdit> edits, std::vector<float>& work,
                       std::vector<float>& logp, BanyanSampleResult& out) {
  const int32_t V = static_cast<int32_t>(raw.size());
  work.assign(raw.begin(), raw.end());
  for (const BanyanLogitEdit& e : edits)
    if (e.token >= 0 && e.token < V) work[e.token] = apply_edit(work[e.token], e, r.repetition_penalty);
  BanyanDecodeParams p{};
  p.struct_size = sizeof p;
  p.typical_p = 1.0;  // not an op parameter: rows with typical_p < 1 take the host path
  p.temperature = r.temperature;
  p.top_p = r.top_p;
  p.min_p = r.min_p;
  p.top_k = r.top_k;
  out.used_u = 0;
  out.token = sample_token_with(work, p, [&] {
    out.used_u = 1;
    return r.u;
  });
  log_softmax(raw, logp);
  out.logprob = logp[out.token];
  if (r.num_logprobs > 0 && out.top_ids && out.top_logprobs) {
    auto top = top_k(logp, r.num_logprobs);
    for (size_t k = 0; k < top.size(); ++k) {
      out.top_ids[k] = top[k].first;
      out.top_logprobs[k] = top[k].second;
    }
  }
}

}  // namespace banyan::logits
