#include "core/server/tgi_api.h"

#include "core/engine/engine.h"
#include "core/server/adapter_routes.h"
#include "core/server/openai_common.h"
#include "core/server/prompts.h"
#include "core/server/sampling_fields.h"
#include "core/server/server_context.h"
#include "core/server/text_codec.h"

namespace banyan::core::server {

namespace {

constexpr int kTgiMaxTopN = 5;
constexpr int kTgiMaxBestOf = 16;

struct TgiOptions {
  bool details = false;
  bool decoder_input_details = false;
  bool return_full_text = false;
  int top_n_tokens = 0;
  std::optional<uint64_t> seed;
};

std::string tgi_finish_reason(const ChoiceState& c, const SamplingParams& p) {
  const std::string reason = c.finish_reason.value_or("length");
  if (reason == "length") return "length";
  if (reason == "stop" && c.stop_reason &&
      std::find(p.stop.begin(), p.stop.end(), *c.stop_reason) != p.stop.end())
    return "stop_sequence";
  if (reason == "stop") return "eos_token";
  return reason;
}

class TgiPresenter : public Presenter {
 public:
  TgiPresenter(const TextCodec& codec, TgiOptions opts, bool list_body)
      : codec_(codec), opts_(opts), list_body_(list_body) {}

  ErrorShape error_shape() const override { return ErrorShape::tgi; }

  std::string stream_update(const JobResult& r, size_t, const RequestOutput& out) override {
    std::string frames;
    for (const auto& d : out.outputs) {
      if (d.index != 0) continue;
      for (size_t k = 0; k < d.token_ids.size(); ++k) {
        bool last = k + 1 == d.token_ids.size() && d.finish_reason.has_value();
        const TokenLogprob* lp = k < d.logprobs.size() ? &d.logprobs[k] : nullptr;
        frames += event(r, token_json(d.token_ids[k], lp), lp, last);
      }
      if (d.finish_reason && d.token_ids.empty()) {
        json tok = {{"id", codec_.eos_token_id().value_or(0)}, {"text", ""},
                    {"logprob", 0.0}, {"special", true}};
        frames += event(r, std::move(tok), nullptr, true);
      }
    }
    return frames;
  }

  std::string stream_end(const JobResult&) override { return {}; }

  std::string full_body(const JobResult& r) override {
    const auto& state = r.prompts().at(0);
    size_t best = best_index(state);
    json out = {{"generated_text", generated_text(r, state.choices[best])}};
    if (opts_.details) {
      json details = sequence_details(r, state.choices[best]);
      if (opts_.decoder_input_details) details["prefill"] = prefill(r);
      if (state.choices.size() > 1) {
        json others = json::array();
        for (size_t i = 0; i < state.choices.size(); ++i) {
          if (i == best) continue;
          json s = sequence_details(r, state.choices[i]);
          s["generated_text"] = generated_text(r, state.choices[i]);
          if (opts_.decoder_input_details) s["prefill"] = prefill(r);
          others.push_back(std::move(s));
        }
        details["best_of_sequences"] = std::move(others);
      }
      out["details"] = std::move(details);
    }
    return dump(list_body_ ? json::array({out}) : out);
  }

 private:
  json token_json(int32_t id, const TokenLogprob* lp) const {
    return {{"id", id},
            {"text", codec_.token_text(id)},
            {"logprob", lp ? json(lp->logprob) : json()},
            {"special", codec_.is_special(id)}};
  }

  json top_tokens(const TokenLogprob* lp) const {
    json top = json::array();
    if (!lp) return top;
    for (const auto& alt : lp->top) {
      if (static_cast<int>(top.size()) >= opts_.top_n_tokens) break;
      top.push_back({{"id", alt.id},
                     {"text", codec_.token_text(alt.id)},
                     {"logprob", alt.logprob},
                     {"special", codec_.is_special(alt.id)}});
    }
    return top;
  }

  std::string event(const JobResult& r, json token, const TokenLogprob* lp, bool last) {
    json e = {{"index", ++count_},
              {"token", std::move(token)},
              {"top_tokens", opts_.top_n_tokens > 0 ? top_tokens(lp) : json()},
              {"generated_text", nullptr},
              {"details", nullptr}};
    if (last) {
      const auto& c = r.prompts().at(0).choices.at(0);
      e["generated_text"] = generated_text(r, c);
      if (opts_.details)
        e["details"] = {{"finish_reason", tgi_finish_reason(c, r.job().params)},
                        {"generated_tokens", c.token_ids.size()},
                        {"seed", opts_.seed ? json(*opts_.seed) : json()}};
    }
    return sse_frame(dump(e));
  }

  std::string generated_text(const JobResult& r, const ChoiceState& c) const {
    return opts_.return_full_text ? prompt_text(r, 0) + c.text : c.text;
  }

  static size_t best_index(const PromptState& s) {
    size_t best = 0;
    for (size_t i = 1; i < s.choices.size(); ++i)
      if (s.choices[i].cumulative_logprob > s.choices[best].cumulative_logprob) best = i;
    return best;
  }

  json sequence_details(const JobResult& r, const ChoiceState& c) const {
    json tokens = json::array(), tops = json::array();
    for (size_t k = 0; k < c.token_ids.size(); ++k) {
      const TokenLogprob* lp = k < c.logprobs.size() ? &c.logprobs[k] : nullptr;
      tokens.push_back(token_json(c.token_ids[k], lp));
      if (opts_.top_n_tokens > 0) tops.push_back(top_tokens(lp));
    }
    json d = {{"finish_reason", tgi_finish_reason(c, r.job().params)},
              {"generated_tokens", c.token_ids.size()},
              {"seed", opts_.seed ? json(*opts_.seed) : json()},
              {"prefill", json::array()},
              {"tokens", std::move(tokens)}};
    if (opts_.top_n_tokens > 0) d["top_tokens"] = std::move(tops);
    return d;
  }

  json prefill(const JobResult& r) const {
    json out = json::array();
    const auto& ids = r.job().prompts[0].ids;
    const auto& plp = r.prompts()[0].prompt_logprobs;
    for (size_t k = 0; k < ids.size(); ++k) {
      json lp = k < plp.size() && plp[k] ? json(plp[k]->logprob) : json();
      out.push_back({{"id", ids[k]}, {"text", codec_.token_text(ids[k])}, {"logprob", lp}});
    }
    return out;
  }

  const TextCodec& codec_;
  TgiOptions opts_;
  bool list_body_;
  int count_ = 0;
};

std::string resolve_tgi_adapter(ServerContext& ctx, const Fields& p) {
  auto id = p.string("adapter_id");
  auto source = p.string("adapter_source");
  if (p.has("adapter_parameters"))
    throw p.error("adapter_parameters", "merging adapters is not supported");
  if (!id || id->empty()) return "";
  if (source && *source == "local") return local_adapter(ctx, *id, p.name("adapter_id"));
  if (source && *source != "hub")
    throw p.error("adapter_source", "\"" + *source + "\" is not supported (use \"local\")");
  if (*id == ctx.model_name) return "";
  if (!ctx.options.adapters_enabled || !ctx.has_adapter(*id))
    throw ApiError(404, "adapter `" + *id + "` is not loaded", "not_found_error",
                   p.name("adapter_id"), "adapter_not_found");
  return *id;
}

}  // namespace

RouteResult tgi_generate(ServerContext& ctx, const json& body, TgiMode mode) {
  try {
    Fields f(body);
    auto inputs = f.string("inputs");
    if (!inputs) throw bad_field("inputs", "is required (a string)");
    static const json kEmpty = json::object();
    const json* pj = f.get("parameters");
    if (pj && !pj->is_object())
      throw bad_field("parameters", "expected an object, got " + json_type_name(*pj));
    Fields p(pj ? *pj : kEmpty, "parameters.");
    bool stream = mode == TgiMode::stream ||
                  (mode == TgiMode::compat && f.boolean("stream").value_or(false));

    auto job = std::make_unique<GenerationJob>();
    job->id = ctx.new_id("tgi");
    job->model = ctx.model_name;
    job->adapter = resolve_tgi_adapter(ctx, p);
    job->stream = stream;

    TgiOptions o;
    o.details = p.boolean("details").value_or(false);
    o.decoder_input_details = p.boolean("decoder_input_details").value_or(false);
    o.return_full_text = p.boolean("return_full_text").value_or(false);
    o.top_n_tokens = static_cast<int>(p.integer("top_n_tokens", 0, kTgiMaxTopN).value_or(0));
    if (p.boolean("watermark").value_or(false))
      throw p.error("watermark", "watermarking is not supported");

    SamplingParams& s = job->params;
    s.max_tokens = 100;
    if (auto v = p.integer("max_new_tokens", 1, 1 << 24)) s.max_tokens = static_cast<int>(*v);
    auto temperature = p.number_above("temperature", 0, 100);
    auto top_k = p.integer("top_k", 1, 1 << 30);
    auto top_p = p.number_above("top_p", 0, 1);
    if (top_p && *top_p >= 1.0) throw p.error("top_p", "must be < 1.0 (leave it out for 1.0)");
    // typical_p as TGI: (0, 1), 1.0 is accepted as "off".
    auto typical_p = p.number_above("typical_p", 0, 1);
    if (typical_p && *typical_p >= 1.0) typical_p.reset();
    bool sample = p.boolean("do_sample").value_or(false) || (temperature && *temperature != 1.0) ||
                  top_k || top_p || typical_p;
    s.temperature = sample ? temperature.value_or(1.0) : 0.0;
    if (top_k) s.top_k = static_cast<int>(*top_k);
    if (top_p) s.top_p = *top_p;
    if (typical_p) s.typical_p = *typical_p;
    if (auto v = p.number_above("repetition_penalty", 0, 100)) s.repetition_penalty = *v;
    if (auto v = p.number("frequency_penalty", -2, 2)) s.frequency_penalty = *v;
    if (auto v = p.integer("seed", 0, INT64_MAX)) {
      s.seed = static_cast<uint64_t>(*v);
      o.seed = s.seed;
    }
    s.stop = p.string_or_list("stop", kMaxStops);
    for (const auto& st : s.stop)
      if (st.empty()) throw p.error("stop", "stop sequences must not be empty");
    if (auto v = p.integer("best_of", 1, kTgiMaxBestOf); v && *v > 1) {
      if (!sample) throw p.error("best_of", "best_of > 1 needs sampling (do_sample: true)");
      if (stream) throw p.error("best_of", "best_of > 1 is not supported when streaming");
      s.n = static_cast<int>(*v);
    }
    if (o.decoder_input_details && stream)
      throw p.error("decoder_input_details", "not supported when streaming tokens");
    if (o.details || stream) s.logprobs = o.top_n_tokens;
    if (o.decoder_input_details) s.prompt_logprobs = 0;

    job->prompts.push_back(prompt_from_text(ctx.codec, *inputs, true));
    if (auto t = p.integer("truncate", 1, INT32_MAX))
      truncate_prompt(job->prompts[0], static_cast<size_t>(*t), ctx.codec);
    check_context_length(job->prompts[0].ids.size(), s, ctx.engine.max_model_len());

    RouteResult r;
    r.route = mode == TgiMode::stream ? "/generate_stream" : mode == TgiMode::compat ? "/" : "/generate";
    r.presenter = std::make_unique<TgiPresenter>(ctx.codec, o, mode == TgiMode::compat && !stream);
    r.job = std::move(job);
    return r;
  } catch (const ApiError& e) {
    if (e.status() != 400) throw;
    throw ApiError(422, e.what(), e.type(), e.param(), e.code());
  }
}

HttpReply tgi_info(ServerContext& ctx) {
  json info = {{"model_id", ctx.model_name},
               {"model_sha", nullptr},
               {"model_dtype", "auto"},
               {"model_device_type", "auto"},
               {"model_pipeline_tag", "text-generation"},
               {"max_concurrent_requests", ctx.options.max_concurrent_requests},
               {"max_best_of", kTgiMaxBestOf},
               {"max_stop_sequences", kMaxStops},
               {"max_input_tokens", ctx.engine.max_model_len() - 1},
               {"max_input_length", ctx.engine.max_model_len() - 1},
               {"max_total_tokens", ctx.engine.max_model_len()},
               {"max_client_batch_size", 1},
               {"validation_workers", ctx.options.io_threads},
               {"router", "banyan"},
               {"version", "0.1.0"},
               {"sha", nullptr},
               {"docker_label", nullptr}};
  return json_reply(200, dump(info));
}

}  // namespace banyan::core::server
