#include "core/server/sampling_fields.h"

#include "core/server/text_codec.h"

#include <charconv>

namespace banyan::core::server {

namespace {
constexpr int64_t kMaxTokensLimit = 1 << 24;

int to_int(int64_t v) { return static_cast<int>(v); }
}  // namespace

std::map<int32_t, double> read_logit_bias(const Fields& f, const TextCodec& codec) {
  std::map<int32_t, double> out;
  const json* v = f.get("logit_bias");
  if (!v) return out;
  if (!v->is_object())
    throw f.error("logit_bias", "expected an object {\"token id\": bias}, got " +
                                    json_type_name(*v));
  if (v->size() > 1024) throw f.error("logit_bias", "at most 1024 entries");
  for (const auto& [key, bias] : v->items()) {
    int64_t id = -1;
    auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || ptr != key.data() + key.size())
      throw f.error("logit_bias", "key \"" + key + "\" is not a token id");
    if (id < 0 || id >= codec.vocab_size())
      throw f.error("logit_bias", "token id " + key + " is out of range [0, " +
                                      std::to_string(codec.vocab_size() - 1) + "]");
    if (!bias.is_number())
      throw f.error("logit_bias", "bias of " + key + " must be a number, got " +
                                      json_type_name(bias));
    double b = bias.get<double>();
    if (!(b >= -100 && b <= 100))
      throw f.error("logit_bias", "bias of " + key + " is out of range [-100, 100]");
    out[static_cast<int32_t>(id)] = b;
  }
  return out;
}

SamplingParams read_sampling_fields(const Fields& f, const SamplingDefaults& d,
                                    const TextCodec& codec) {
  SamplingParams p;
  p.max_tokens = d.max_tokens;
  p.temperature = d.temperature;
  p.top_p = d.top_p;
  p.top_k = d.top_k;
  p.repetition_penalty = d.repetition_penalty;

  if (auto v = f.integer("n", 1, kMaxN)) p.n = to_int(*v);
  if (auto v = f.integer("best_of", 1, kMaxN)) p.best_of = to_int(*v);
  if (auto v = f.integer("max_tokens", 1, kMaxTokensLimit)) p.max_tokens = to_int(*v);
  if (auto v = f.integer("min_tokens", 0, kMaxTokensLimit)) p.min_tokens = to_int(*v);
  if (auto v = f.number("temperature", 0, 100)) p.temperature = *v;
  if (auto v = f.number_above("top_p", 0, 1)) p.top_p = *v;
  if (auto v = f.integer("top_k", -1, 1 << 30)) p.top_k = to_int(*v);
  if (auto v = f.number("min_p", 0, 1)) p.min_p = *v;
  if (auto v = f.integer("seed", INT64_MIN, INT64_MAX)) p.seed = static_cast<uint64_t>(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) p.presence_penalty = *v;
  if (auto v = f.number("frequency_penalty", -2, 2)) p.frequency_penalty = *v;
  if (auto v = f.number_above("repetition_penalty", 0, 100)) p.repetition_penalty = *v;
  p.stop = f.string_or_list("stop", kMaxStops);
  for (const auto& s : p.stop)
    if (s.empty()) throw f.error("stop", "stop strings must not be empty");
  for (auto id : f.int_list("stop_token_ids", 0, codec.vocab_size() - 1, 1024))
    p.stop_token_ids.push_back(static_cast<int32_t>(id));
  if (auto v = f.boolean("ignore_eos")) p.ignore_eos = *v;
  if (auto v = f.boolean("skip_special_tokens")) p.skip_special_tokens = *v;
  if (auto v = f.boolean("include_stop_str_in_output")) p.include_stop_str_in_output = *v;
  if (auto v = f.integer("prompt_logprobs", 0, kMaxLogprobs)) p.prompt_logprobs = to_int(*v);
  if (auto v = f.boolean("use_beam_search")) p.use_beam_search = *v;
  if (auto v = f.number("length_penalty", -100, 100)) p.length_penalty = *v;
  if (auto v = f.boolean("early_stopping")) p.early_stopping = *v;
  p.logit_bias = read_logit_bias(f, codec);
  return p;
}

void check_sampling(const SamplingParams& p) {
  if (p.best_of && *p.best_of < p.n)
    throw bad_field("best_of", "best_of (" + std::to_string(*p.best_of) +
                                   ") must be at least n (" + std::to_string(p.n) + ")");
  if (p.min_tokens > p.max_tokens)
    throw bad_field("min_tokens", "min_tokens (" + std::to_string(p.min_tokens) +
                                      ") must not exceed max_tokens (" +
                                      std::to_string(p.max_tokens) + ")");
  if (p.use_beam_search && p.n < 1) throw bad_field("n", "beam search needs n >= 1");
}

void check_context_length(size_t prompt_tokens, const SamplingParams& p, int64_t max_model_len) {
  if (prompt_tokens == 0) throw bad_field("prompt", "the prompt is empty");
  int64_t total = static_cast<int64_t>(prompt_tokens) + p.max_tokens;
  if (total > max_model_len)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, you requested " + std::to_string(total) + " tokens (" +
                       std::to_string(prompt_tokens) + " in the prompt, " +
                       std::to_string(p.max_tokens) +
                       " in the completion). Please reduce the prompt or max_tokens.",
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
}

}  // namespace banyan::core::server
