// POST /v1/completions: the body's fields into a GenerationJob, and the outputs
// into "text_completion" objects (whole, or as SSE chunks ending "data: [DONE]").
#include "core/engine/engine.h"
#include "core/server/openai_api.h"
#include "core/server/openai_common.h"
#include "core/server/prompts.h"
#include "core/server/sampling_fields.h"
#include "core/server/server_context.h"
#include "core/server/text_codec.h"

namespace banyan::core::server {

namespace {

class CompletionPresenter : public Presenter {
 public:
  CompletionPresenter(const TextCodec& codec, OutputOptions opts, int64_t created)
      : codec_(codec), opts_(opts), created_(created) {}

  std::string stream_begin(const JobResult& r) override {
    init(r);
    echo_sent_.assign(r.prompts().size(), false);
    plp_sent_.assign(r.prompts().size() * static_cast<size_t>(r.job().params.n), false);
    // With logprobs or prompt_logprobs the echo waits for the engine's first message,
    // which carries the prompt's logprobs.
    if (!opts_.echo || opts_.logprobs || wants_prompt_logprobs(r)) return {};
    std::string out;
    for (size_t p = 0; p < r.prompts().size(); ++p) out += echo_frames(r, p);
    return out;
  }

  std::string stream_update(const JobResult& r, size_t p, const RequestOutput& out) override {
    std::string frames;
    if (opts_.echo && p < echo_sent_.size() && !echo_sent_[p]) frames += echo_frames(r, p);
    const auto& state = r.prompts()[p];
    for (const auto& d : out.outputs) {
      if (d.index < 0) continue;
      size_t idx = r.choice_index(p, d.index);
      if (idx >= finish_sent_.size()) continue;
      if (d.text.empty() && d.token_ids.empty() && !d.finish_reason) continue;
      json choice = {{"index", idx}, {"text", d.text}, {"logprobs", nullptr},
                     {"finish_reason", nullptr}, {"stop_reason", nullptr}};
      if (opts_.logprobs) choice["logprobs"] = logprobs_of(d.logprobs, idx);
      if (opts_.return_token_ids) choice["token_ids"] = d.token_ids;
      add_prompt_logprobs_once(choice, r, p, idx);
      if (d.finish_reason) {
        choice["finish_reason"] = *d.finish_reason;
        choice["stop_reason"] =
            stop_reason_json(state.choices[static_cast<size_t>(d.index)], r.job().params);
        finish_sent_[idx] = true;
      }
      frames += sse_frame(dump(chunk(r, json::array({choice}))));
    }
    if (out.finished) frames += finish_rest(r, p);
    return frames;
  }

  std::string stream_end(const JobResult& r) override {
    std::string frames;
    if (opts_.include_usage) {
      json c = chunk(r, json::array());
      c["usage"] = usage_json(r);
      frames += sse_frame(dump(c));
    }
    frames += sse_frame("[DONE]");
    return frames;
  }

  std::string full_body(const JobResult& r) override {
    finish_sent_.clear();
    init(r);
    json choices = json::array();
    for (size_t p = 0; p < r.prompts().size(); ++p) {
      const auto& state = r.prompts()[p];
      for (size_t i = 0; i < state.choices.size(); ++i) {
        const auto& c = state.choices[i];
        size_t idx = r.choice_index(p, static_cast<int>(i));
        std::string text = opts_.echo ? prompt_text(r, p) + c.text : c.text;
        json choice = {{"index", idx}, {"text", std::move(text)}, {"logprobs", nullptr},
                       {"finish_reason", c.finish_reason ? json(*c.finish_reason) : json()},
                       {"stop_reason", stop_reason_json(c, r.job().params)}};
        if (opts_.logprobs) {
          json lp = opts_.echo ? prompt_logprobs(r, p, idx) : empty_logprobs();
          append(lp, logprobs_of(c.logprobs, idx));
          choice["logprobs"] = std::move(lp);
        }
        if (opts_.return_token_ids) {
          choice["prompt_token_ids"] = r.job().prompts[p].ids;
          choice["token_ids"] = c.token_ids;
        }
        if (wants_prompt_logprobs(r))
          choice["prompt_logprobs"] =
              prompt_logprobs_json(codec_, r.job().prompts[p].ids, state.prompt_logprobs);
        choices.push_back(std::move(choice));
      }
    }
    json body = {{"id", r.job().id},     {"object", "text_completion"}, {"created", created_},
                 {"model", r.job().model}, {"choices", std::move(choices)},
                 {"usage", usage_json(r)}};
    return dump(body);
  }

 private:
  std::string echo_frames(const JobResult& r, size_t p) {
    echo_sent_[p] = true;
    std::string out;
    for (int i = 0; i < r.job().params.n; ++i) {
      size_t idx = r.choice_index(p, i);
      json choice = {{"index", idx}, {"text", prompt_text(r, p)}, {"logprobs", nullptr},
                     {"finish_reason", nullptr}, {"stop_reason", nullptr}};
      if (opts_.logprobs) choice["logprobs"] = prompt_logprobs(r, p, idx);
      add_prompt_logprobs_once(choice, r, p, idx);
      out += sse_frame(dump(chunk(r, json::array({choice}))));
    }
    return out;
  }

  // vLLM's prompt_logprobs were computed for this request (asked for, or implied by
  // echo with logprobs, as vLLM does): each choice carries them.
  static bool wants_prompt_logprobs(const JobResult& r) {
    return r.job().params.prompt_logprobs.has_value();
  }

  // Streaming: the prompt's logprobs ride on the first chunk of each choice.
  void add_prompt_logprobs_once(json& choice, const JobResult& r, size_t p, size_t idx) {
    if (!wants_prompt_logprobs(r) || idx >= plp_sent_.size() || plp_sent_[idx]) return;
    plp_sent_[idx] = true;
    choice["prompt_logprobs"] =
        prompt_logprobs_json(codec_, r.job().prompts[p].ids, r.prompts()[p].prompt_logprobs);
  }

  void init(const JobResult& r) {
    size_t total = r.prompts().size() * static_cast<size_t>(r.job().params.n);
    if (finish_sent_.size() != total) {
      finish_sent_.assign(total, false);
      offset_.assign(total, 0);
    }
    if (opts_.echo)
      for (size_t p = 0; p < r.prompts().size(); ++p)
        for (int i = 0; i < r.job().params.n; ++i)
          offset_[r.choice_index(p, i)] = utf8_length(prompt_text(r, p));
  }

  json chunk(const JobResult& r, json choices) const {
    json c = {{"id", r.job().id}, {"object", "text_completion"}, {"created", created_},
              {"model", r.job().model}, {"choices", std::move(choices)}};
    if (opts_.include_usage) c["usage"] = nullptr;
    return c;
  }

  static json empty_logprobs() {
    return {{"text_offset", json::array()}, {"token_logprobs", json::array()},
            {"tokens", json::array()}, {"top_logprobs", json::array()}};
  }

  static void append(json& into, const json& more) {
    for (const char* k : {"text_offset", "token_logprobs", "tokens", "top_logprobs"})
      for (const auto& v : more[k]) into[k].push_back(v);
  }

  json top_dict(const TokenLogprob& t) const {
    json top = json::object();
    for (const auto& alt : t.top)
      top[token_string(codec_, alt.id, opts_.tokens_as_ids)] = alt.logprob;
    top[token_string(codec_, t.id, opts_.tokens_as_ids)] = t.logprob;
    return top;
  }

  // Logprobs of new tokens of choice `idx`; advances its text offset.
  json logprobs_of(const std::vector<TokenLogprob>& lps, size_t idx) {
    json lp = empty_logprobs();
    size_t off = 0, offset = idx < offset_.size() ? offset_[idx] : 0;
    for (const auto& t : lps) {
      std::string tok = token_string(codec_, t.id, opts_.tokens_as_ids);
      lp["text_offset"].push_back(offset + off);
      off += utf8_length(codec_.token_text(t.id));
      lp["token_logprobs"].push_back(t.logprob);
      lp["tokens"].push_back(std::move(tok));
      lp["top_logprobs"].push_back(top_dict(t));
    }
    if (idx < offset_.size()) offset_[idx] += off;
    return lp;
  }

  // The echoed prompt's logprobs (the first token has none).
  json prompt_logprobs(const JobResult& r, size_t p, size_t idx) const {
    json lp = empty_logprobs();
    const auto& ids = r.job().prompts[p].ids;
    const auto& plp = r.prompts()[p].prompt_logprobs;
    size_t off = 0;
    for (size_t k = 0; k < ids.size(); ++k) {
      lp["text_offset"].push_back(off);
      off += utf8_length(codec_.token_text(ids[k]));
      lp["tokens"].push_back(token_string(codec_, ids[k], opts_.tokens_as_ids));
      if (k < plp.size() && plp[k]) {
        lp["token_logprobs"].push_back(plp[k]->logprob);
        lp["top_logprobs"].push_back(top_dict(*plp[k]));
      } else {
        lp["token_logprobs"].push_back(nullptr);
        lp["top_logprobs"].push_back(nullptr);
      }
    }
    (void)idx;
    return lp;
  }

  // Final chunks for choices of prompt p that ended without a finish delta (abort).
  std::string finish_rest(const JobResult& r, size_t p) {
    std::string frames;
    const auto& state = r.prompts()[p];
    for (size_t i = 0; i < state.choices.size(); ++i) {
      size_t idx = r.choice_index(p, static_cast<int>(i));
      if (idx >= finish_sent_.size() || finish_sent_[idx]) continue;
      finish_sent_[idx] = true;
      json choice = {{"index", idx}, {"text", ""}, {"logprobs", nullptr},
                     {"finish_reason", state.choices[i].finish_reason.value_or("abort")},
                     {"stop_reason", nullptr}};
      add_prompt_logprobs_once(choice, r, p, idx);
      frames += sse_frame(dump(chunk(r, json::array({choice}))));
    }
    return frames;
  }

  const TextCodec& codec_;
  OutputOptions opts_;
  int64_t created_;
  std::vector<bool> finish_sent_, echo_sent_, plp_sent_;
  std::vector<size_t> offset_;
};

}  // namespace

RouteResult openai_completions(ServerContext& ctx, const json& body) {
  Fields f(body);
  auto job = std::make_unique<GenerationJob>();
  job->id = ctx.new_id("cmpl");
  auto model = f.string("model");
  job->adapter = ctx.resolve_model(model);
  job->model = job->adapter.empty() ? ctx.model_name : job->adapter;

  OutputOptions opts = read_output_options(f);
  opts.echo = f.boolean("echo").value_or(false);
  if (auto lp = f.integer("logprobs", 0, kMaxLogprobs)) opts.logprobs = static_cast<int>(*lp);
  if (f.has("suffix")) throw f.error("suffix", "suffix is not supported");

  bool add_special = f.boolean("add_special_tokens").value_or(true);
  job->params = read_sampling_fields(f, ctx.options.defaults, ctx.codec);
  job->params.logprobs = opts.logprobs;
  if (opts.echo && opts.logprobs && !job->params.prompt_logprobs)
    job->params.prompt_logprobs = opts.logprobs;
  check_sampling(job->params);
  if (opts.stream && job->params.best_of && *job->params.best_of > job->params.n &&
      !job->params.use_beam_search)
    throw f.error("best_of", "best_of > n is not supported when streaming");

  job->prompts = read_prompts(f, "prompt", ctx.codec, add_special);
  auto truncate = f.integer("truncate_prompt_tokens", 1, INT32_MAX);
  for (auto& p : job->prompts) {
    if (truncate) truncate_prompt(p, static_cast<size_t>(*truncate), ctx.codec);
    check_context_length(p.ids.size(), job->params, ctx.engine.max_model_len());
  }
  job->stream = opts.stream;

  RouteResult r;
  r.route = "/v1/completions";
  r.presenter = std::make_unique<CompletionPresenter>(ctx.codec, opts, ctx.created);
  r.job = std::move(job);
  return r;
}

}  // namespace banyan::core::server
