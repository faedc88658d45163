// POST /v1/chat/completions: messages rendered with the model's chat template, the
// outputs as "chat.completion" objects or "chat.completion.chunk" SSE frames.
#include "core/engine/engine.h"
#include "core/server/openai_api.h"
#include "core/server/openai_common.h"
#include "core/server/prompts.h"
#include "core/server/sampling_fields.h"
#include "core/server/server_context.h"
#include "core/server/text_codec.h"

#include <banyan/error.h>

namespace banyan::core::server {

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
  return b;
}

class ChatPresenter : public Presenter {
 public:
  ChatPresenter(const TextCodec& codec, OutputOptions opts, int64_t created)
      : codec_(codec), opts_(opts), created_(created) {}

  std::string stream_begin(const JobResult& r) override {
    finish_sent_.assign(static_cast<size_t>(r.job().params.n), false);
    std::string out;
    for (int i = 0; i < r.job().params.n; ++i) {
      json choice = {{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                     {"logprobs", nullptr}, {"finish_reason", nullptr}};
      out += sse_frame(dump(chunk(r, json::array({choice}))));
    }
    return out;
  }

  std::string stream_update(const JobResult& r, size_t p, const RequestOutput& out) override {
    std::string frames;
    const auto& state = r.prompts()[p];
    for (const auto& d : out.outputs) {
      if (d.index < 0 || static_cast<size_t>(d.index) >= finish_sent_.size()) continue;
      if (d.text.empty() && d.token_ids.empty() && !d.finish_reason) continue;
      json delta = json::object();
      if (!d.text.empty() || !d.finish_reason) delta["content"] = d.text;
      json choice = {{"index", d.index}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                     {"finish_reason", nullptr}};
      if (opts_.logprobs) choice["logprobs"] = {{"content", content_logprobs(d.logprobs)}};
      if (opts_.return_token_ids) choice["token_ids"] = d.token_ids;
      if (d.finish_reason) {
        choice["finish_reason"] = *d.finish_reason;
        choice["stop_reason"] =
            stop_reason_json(state.choices[static_cast<size_t>(d.index)], r.job().params);
        finish_sent_[static_cast<size_t>(d.index)] = true;
      }
      frames += sse_frame(dump(chunk(r, json::array({choice}))));
    }
    if (out.finished) {
      for (size_t i = 0; i < finish_sent_.size(); ++i) {
        if (finish_sent_[i]) continue;
        finish_sent_[i] = true;
        json choice = {{"index", i}, {"delta", json::object()}, {"logprobs", nullptr},
                       {"finish_reason", state.choices[i].finish_reason.value_or("abort")}};
        frames += sse_frame(dump(chunk(r, json::array({choice}))));
      }
    }
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
    json choices = json::array();
    const auto& state = r.prompts().at(0);
    for (size_t i = 0; i < state.choices.size(); ++i) {
      const auto& c = state.choices[i];
      json choice = {{"index", i},
                     {"message", {{"role", "assistant"}, {"content", c.text}}},
                     {"logprobs", nullptr},
                     {"finish_reason", c.finish_reason ? json(*c.finish_reason) : json()},
                     {"stop_reason", stop_reason_json(c, r.job().params)}};
      if (opts_.logprobs) choice["logprobs"] = {{"content", content_logprobs(c.logprobs)}};
      if (opts_.return_token_ids) choice["token_ids"] = c.token_ids;
      choices.push_back(std::move(choice));
    }
    json body = {{"id", r.job().id},     {"object", "chat.completion"}, {"created", created_},
                 {"model", r.job().model}, {"choices", std::move(choices)},
                 {"usage", usage_json(r)}};
    if (opts_.return_token_ids) body["prompt_token_ids"] = r.job().prompts[0].ids;
    // vLLM's prompt_logprobs: beside the choices, once for the one prompt.
    if (r.job().params.prompt_logprobs)
      body["prompt_logprobs"] =
          prompt_logprobs_json(codec_, r.job().prompts[0].ids, state.prompt_logprobs);
    return dump(body);
  }

 private:
  json chunk(const JobResult& r, json choices) const {
    json c = {{"id", r.job().id}, {"object", "chat.completion.chunk"}, {"created", created_},
              {"model", r.job().model}, {"choices", std::move(choices)}};
    if (opts_.include_usage) c["usage"] = nullptr;
    return c;
  }

  json entry(int32_t id, float logprob) const {
    std::string text = codec_.token_text(id);
    return {{"token", opts_.tokens_as_ids ? "token_id:" + std::to_string(id) : text},
            {"logprob", logprob},
            {"bytes", bytes_of(text)}};
  }

  json content_logprobs(const std::vector<TokenLogprob>& lps) const {
    json content = json::array();
    for (const auto& t : lps) {
      json e = entry(t.id, t.logprob);
      json top = json::array();
      int want = opts_.logprobs.value_or(0);
      for (const auto& alt : t.top) {
        if (static_cast<int>(top.size()) >= want) break;
        top.push_back(entry(alt.id, alt.logprob));
      }
      e["top_logprobs"] = std::move(top);
      content.push_back(std::move(e));
    }
    return content;
  }

  const TextCodec& codec_;
  OutputOptions opts_;
  int64_t created_;
  std::vector<bool> finish_sent_;
};

}  // namespace

json read_chat_messages(const Fields& f) {
  const json* v = f.get("messages");
  if (!v) throw bad_field("messages", "is required");
  if (!v->is_array()) throw bad_field("messages", "expected a list, got " + json_type_name(*v));
  if (v->empty()) throw bad_field("messages", "the list of messages is empty");
  if (v->size() > 4096) throw bad_field("messages", "at most 4096 messages");
  json out = json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad_field(where, "expected an object, got " + json_type_name(m));
    Fields mf(m, where + ".");
    auto role = mf.string("role");
    if (!role) throw bad_field(where + ".role", "is required");
    static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};
    bool known = false;
    for (const char* r : kRoles) known = known || *role == r;
    if (!known)
      throw bad_field(where + ".role", "unknown role \"" + *role +
                                           "\" (system, developer, user, assistant or tool)");
    json msg = m;  // other fields (name, tool_call_id, ...) reach the template as given
    const json* content = mf.get("content");
    if (content && content->is_array()) {
      std::string text;
      for (const auto& part : *content) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
            !part.contains("text") || !part["text"].is_string())
          throw bad_field(where + ".content",
                          "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
        text += part["text"].get<std::string>();
      }
      msg["content"] = std::move(text);
    } else if (content && !content->is_string()) {
      throw bad_field(where + ".content", "expected a string or a list of text parts, got " +
                                              json_type_name(*content));
    } else if (!content) {
      if (*role != "assistant") throw bad_field(where + ".content", "is required");
      msg["content"] = "";
    }
    out.push_back(std::move(msg));
  }
  return out;
}

std::string render_chat_prompt(const ServerContext& ctx, const Fields& f) {
  json messages = read_chat_messages(f);
  bool add_generation_prompt = f.boolean("add_generation_prompt").value_or(true);
  json extra = json::object();
  if (const json* kw = f.get("chat_template_kwargs")) {
    if (!kw->is_object())
      throw f.error("chat_template_kwargs", "expected an object, got " + json_type_name(*kw));
    extra = *kw;
  }
  try {
    return ctx.codec.render_chat(dump(messages), add_generation_prompt, dump(extra));
  } catch (const banyan::Error& e) {
    throw ApiError(400, std::string("chat template: ") + e.what(), "invalid_request_error",
                   "messages");
  }
}

RouteResult openai_chat(ServerContext& ctx, const json& body) {
  Fields f(body);
  auto job = std::make_unique<GenerationJob>();
  job->id = ctx.new_id("chatcmpl");
  auto model = f.string("model");
  job->adapter = ctx.resolve_model(model);
  job->model = job->adapter.empty() ? ctx.model_name : job->adapter;

  if (const json* tools = f.get("tools"); tools && !(tools->is_array() && tools->empty()))
    throw f.error("tools", "tool calling is not supported");
  if (const json* rf = f.get("response_format");
      rf && !(rf->is_object() && rf->value("type", "") == "text"))
    throw f.error("response_format", "only {\"type\": \"text\"} is supported");

  OutputOptions opts = read_output_options(f);
  bool logprobs = f.boolean("logprobs").value_or(false);
  auto top = f.integer("top_logprobs", 0, kMaxLogprobs);
  if (top && !logprobs) throw f.error("top_logprobs", "top_logprobs needs logprobs: true");
  if (logprobs) opts.logprobs = static_cast<int>(top.value_or(0));

  job->params = read_sampling_fields(f, ctx.options.defaults, ctx.codec);
  if (auto m = f.integer("max_completion_tokens", 1, 1 << 24))
    job->params.max_tokens = static_cast<int>(*m);
  job->params.logprobs = opts.logprobs;
  check_sampling(job->params);

  std::string text = render_chat_prompt(ctx, f);
  bool add_special = f.boolean("add_special_tokens").value_or(false);
  job->prompts.push_back(prompt_from_text(ctx.codec, text, add_special));
  check_context_length(job->prompts[0].ids.size(), job->params, ctx.engine.max_model_len());
  job->stream = opts.stream;

  RouteResult r;
  r.route = "/v1/chat/completions";
  r.presenter = std::make_unique<ChatPresenter>(ctx.codec, opts, ctx.created);
  r.job = std::move(job);
  return r;
}

}  // namespace banyan::core::server
