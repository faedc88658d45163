#include "core/server/openai_common.h"

#include "core/server/text_codec.h"

#include <algorithm>
#include <cmath>

namespace banyan::core::server {

OutputOptions read_output_options(const Fields& f) {
  OutputOptions o;
  o.stream = f.boolean("stream").value_or(false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object())
      throw f.error("stream_options", "expected an object, got " + json_type_name(*so));
    Fields sf(*so, f.name("stream_options") + ".");
    o.include_usage = sf.boolean("include_usage").value_or(false);
    if (!o.stream && o.include_usage)
      throw f.error("stream_options", "stream_options is only allowed when stream is true");
  }
  o.return_token_ids = f.boolean("return_token_ids").value_or(false);
  o.tokens_as_ids = f.boolean("return_tokens_as_token_ids").value_or(false);
  return o;
}

json usage_json(const JobResult& r) {
  int p = r.prompt_tokens(), c = r.completion_tokens();
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
}

std::string token_string(const TextCodec& codec, int32_t id, bool as_ids) {
  if (as_ids) return "token_id:" + std::to_string(id);
  return codec.token_text(id);
}

namespace {
json logprob_entry(const TextCodec& codec, int32_t id, float logprob, json rank) {
  // JSON has no infinities: vLLM's clamp_prompt_logprobs writes -inf as -9999.0.
  double lp = std::isinf(logprob) && logprob < 0 ? -9999.0 : static_cast<double>(logprob);
  return {{"logprob", lp}, {"rank", std::move(rank)}, {"decoded_token", codec.token_text(id)}};
}
}  // namespace

json prompt_logprobs_json(const TextCodec& codec, const std::vector<int32_t>& prompt_ids,
                          const std::vector<std::optional<TokenLogprob>>& lps) {
  if (lps.empty()) return nullptr;
  json out = json::array();
  for (size_t k = 0; k < prompt_ids.size(); ++k) {
    if (k == 0 || k >= lps.size() || !lps[k]) {
      out.push_back(nullptr);
      continue;
    }
    const TokenLogprob& t = *lps[k];
    json entry = json::object();
    // The alternatives rank 1..k in the engine's order (most likely first); the prompt
    // token, when not among them, keeps the rank the engine computed for it.
    for (size_t i = 0; i < t.top.size(); ++i)
      entry[std::to_string(t.top[i].id)] =
          logprob_entry(codec, t.top[i].id, t.top[i].logprob, static_cast<int64_t>(i + 1));
    std::string key = std::to_string(t.id);
    if (!entry.contains(key))
      entry[key] = logprob_entry(codec, t.id, t.logprob, t.rank > 0 ? json(t.rank) : json());
    out.push_back(std::move(entry));
  }
  return out;
}

json stop_reason_json(const ChoiceState& c, const SamplingParams& p) {
  if (!c.stop_reason) return nullptr;
  const std::string& s = *c.stop_reason;
  if (std::find(p.stop.begin(), p.stop.end(), s) != p.stop.end()) return s;
  try {
    size_t used = 0;
    long id = std::stol(s, &used);
    if (used == s.size() && std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(),
                                      static_cast<int32_t>(id)) != p.stop_token_ids.end())
      return id;
  } catch (const std::exception&) {
  }
  return s;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++n;
  return n;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::string& prompt_text(const JobResult& r, size_t prompt) {
  return r.job().prompts.at(prompt).text;
}

}  // namespace banyan::core::server
