#include "core/server/vllm_api.h"

#include "core/engine/engine.h"
#include "core/server/openai_common.h"
#include "core/server/prompts.h"
#include "core/server/sampling_fields.h"
#include "core/server/server_context.h"
#include "core/server/text_codec.h"

#include <banyan/error.h>

namespace banyan::core::server {

namespace {

// Streams NUL-terminated JSON objects, each with the whole text so far of every
// completion (prompt included), as vLLM's api_server does.
class VllmGeneratePresenter : public Presenter {
 public:
  std::string stream_content_type() const override { return "application/json"; }
  std::string stream_update(const JobResult& r, size_t, const RequestOutput& out) override {
    bool changed = out.finished;
    for (const auto& d : out.outputs) changed = changed || !d.text.empty();
    if (!changed) return {};
    std::string s = dump(texts(r));
    s.push_back('\0');
    return s;
  }
  std::string stream_end(const JobResult&) override { return {}; }
  std::string stream_error(const ApiError& e) override {
    std::string s = e.body(ErrorShape::openai);
    s.push_back('\0');
    return s;
  }
  std::string full_body(const JobResult& r) override { return dump(texts(r)); }

 private:
  static json texts(const JobResult& r) {
    json t = json::array();
    for (const auto& c : r.prompts().at(0).choices) t.push_back(prompt_text(r, 0) + c.text);
    return {{"text", std::move(t)}};
  }
};

}  // namespace

RouteResult vllm_generate(ServerContext& ctx, const json& body) {
  Fields f(body);
  auto job = std::make_unique<GenerationJob>();
  job->id = ctx.new_id("gen");
  auto model = f.string("model");
  job->adapter = ctx.resolve_model(model);
  job->model = job->adapter.empty() ? ctx.model_name : job->adapter;
  auto prompt = f.string("prompt");
  if (!prompt) throw bad_field("prompt", "is required (a string)");
  job->params = read_sampling_fields(f, ctx.options.defaults, ctx.codec);
  if (auto lp = f.integer("logprobs", 0, kMaxLogprobs)) job->params.logprobs = static_cast<int>(*lp);
  check_sampling(job->params);
  job->prompts.push_back(prompt_from_text(ctx.codec, *prompt, true));
  check_context_length(job->prompts[0].ids.size(), job->params, ctx.engine.max_model_len());
  job->stream = f.boolean("stream").value_or(false);
  RouteResult r;
  r.route = "/generate";
  r.presenter = std::make_unique<VllmGeneratePresenter>();
  r.job = std::move(job);
  return r;
}

HttpReply vllm_tokenize(ServerContext& ctx, const json& body) {
  Fields f(body);
  ctx.resolve_model(f.string("model"));
  std::vector<int32_t> ids;
  if (f.has("messages")) {
    ids = ctx.codec.encode(render_chat_prompt(ctx, f),
                           f.boolean("add_special_tokens").value_or(false));
  } else {
    auto prompt = f.string("prompt");
    if (!prompt) throw bad_field("prompt", "is required (a string), or give messages");
    ids = ctx.codec.encode(*prompt, f.boolean("add_special_tokens").value_or(true));
  }
  json out = {{"count", ids.size()}, {"max_model_len", ctx.engine.max_model_len()},
              {"tokens", ids}, {"token_strs", nullptr}};
  if (f.boolean("return_token_strs").value_or(false)) {
    json strs = json::array();
    for (auto id : ids) strs.push_back(ctx.codec.token_text(id));
    out["token_strs"] = std::move(strs);
  }
  return json_reply(200, dump(out));
}

HttpReply vllm_detokenize(ServerContext& ctx, const json& body) {
  Fields f(body);
  ctx.resolve_model(f.string("model"));
  if (!f.has("tokens")) throw bad_field("tokens", "is required (a list of token ids)");
  auto raw = f.int_list("tokens", 0, ctx.codec.vocab_size() - 1, 1u << 20);
  std::vector<int32_t> ids(raw.begin(), raw.end());
  return json_reply(200, dump(json{{"prompt", ctx.codec.decode(ids, true)}}));
}

}  // namespace banyan::core::server
