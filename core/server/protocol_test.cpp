// Request parsing and response building without sockets: JSON bodies of the OpenAI,
// vLLM and TGI APIs into GenerationJobs, and engine messages into the documented
// response shapes (OpenAI API reference, vLLM api_server, TGI OpenAPI schema).
#include "core/server/admission.h"
#include "core/server/job_result.h"
#include "core/server/metrics.h"
#include "core/server/router.h"
#include "core/server/server_context.h"
#include "core/server/testing/byte_codec.h"
#include "core/server/testing/fake_engine.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <map>

namespace banyan::core::server {
namespace {

using json = nlohmann::json;
using testing::ByteCodec;
using testing::FakeEngine;

class Protocol : public ::testing::Test {
 protected:
  Protocol()
      : engine_(FakeEngine::Options{.name = "demo", .max_model_len = 256}),
        admission_(4, 4),
        ctx_(engine_, codec_, options(), metrics_, admission_) {
    engine_.load_adapter("fortunes", "/adapters/fortunes");
  }
  static ServerOptions options() {
    ServerOptions o;
    o.adapters_enabled = true;
    o.model_path = "models/demo";
    return o;
  }
  RouteResult post(const std::string& path, const json& body) {
    std::string b = body.dump();
    return route_request(ctx_, HttpRequestView{"POST", path, b, ""});
  }
  json error_of(const RouteResult& r, int status) {
    EXPECT_TRUE(r.reply) << "expected an error reply";
    if (!r.reply) return {};
    EXPECT_EQ(r.reply->status, status) << r.reply->body;
    return json::parse(r.reply->body);
  }

  ByteCodec codec_;
  FakeEngine engine_;
  ServerMetrics metrics_;
  Admission admission_;
  ServerContext ctx_;
};

// Feeds a JobResult + presenter with one message per token of `text` (choice 0..n-1).
struct Feed {
  RouteResult& rr;
  JobResult result;
  std::string frames;
  explicit Feed(RouteResult& r) : rr(r), result(*r.job) { frames = r.presenter->stream_begin(result); }
  void send(size_t prompt, RequestOutput out) {
    result.apply(prompt, out);
    frames += rr.presenter->stream_update(result, prompt, out);
  }
  // Sends `text` one byte per message to every choice, finishing with `reason`.
  void text(size_t prompt, const std::string& text, const std::string& reason, bool logprobs = false) {
    int n = rr.job->params.n;
    for (size_t k = 0; k < text.size(); ++k) {
      RequestOutput out;
      out.prompt_tokens = static_cast<int>(rr.job->prompts[prompt].ids.size());
      out.completion_tokens = static_cast<int>(k + 1) * n;
      for (int i = 0; i < n; ++i) {
        CompletionDelta d;
        d.index = i;
        int32_t id = ByteCodec::kOffset + static_cast<unsigned char>(text[k]);
        d.token_ids = {id};
        d.text = std::string(1, text[k]);
        if (logprobs) d.logprobs = {TokenLogprob{id, -0.5f, {{id, -0.5f}, {ByteCodec::kOffset + 'z', -2.0f}}}};
        if (k + 1 == text.size()) d.finish_reason = reason;
        out.outputs.push_back(d);
      }
      out.finished = k + 1 == text.size();
      send(prompt, std::move(out));
    }
  }
  std::string end() { return frames + rr.presenter->stream_end(result); }
};

std::vector<json> sse_events(const std::string& frames, bool& done) {
  std::vector<json> out;
  done = false;
  size_t pos = 0;
  while ((pos = frames.find("data: ", pos)) != std::string::npos) {
    size_t end = frames.find("\n\n", pos);
    std::string data = frames.substr(pos + 6, end - pos - 6);
    if (data == "[DONE]") done = true;
    else out.push_back(json::parse(data));
    pos = end + 2;
  }
  return out;
}

// --------------------------------------------------------------- completions ---

TEST_F(Protocol, CompletionFieldsReachSamplingParams) {
  auto r = post("/v1/completions",
                {{"model", "demo"}, {"prompt", "hi"}, {"max_tokens", 7}, {"temperature", 0.5},
                 {"top_p", 0.9}, {"top_k", 5}, {"min_p", 0.1}, {"n", 2}, {"best_of", 3},
                 {"seed", 42}, {"stop", {"x", "yz"}}, {"stop_token_ids", {2, 5}},
                 {"ignore_eos", true}, {"min_tokens", 2}, {"logprobs", 3},
                 {"logit_bias", {{"10", 5.0}, {"11", -100}}}, {"presence_penalty", 0.5},
                 {"frequency_penalty", -0.5}, {"repetition_penalty", 1.3},
                 {"use_beam_search", false}, {"length_penalty", 0.8}});
  ASSERT_TRUE(r.job) << r.reply->body;
  const auto& p = r.job->params;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_DOUBLE_EQ(p.temperature, 0.5);
  EXPECT_DOUBLE_EQ(p.top_p, 0.9);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_DOUBLE_EQ(p.min_p, 0.1);
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.best_of, 3);
  EXPECT_EQ(p.seed, 42u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(p.stop_token_ids, (std::vector<int32_t>{2, 5}));
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_EQ(p.min_tokens, 2);
  EXPECT_EQ(p.logprobs, 3);
  EXPECT_EQ(p.logit_bias.at(10), 5.0);
  EXPECT_EQ(p.logit_bias.at(11), -100.0);
  EXPECT_DOUBLE_EQ(p.presence_penalty, 0.5);
  EXPECT_DOUBLE_EQ(p.frequency_penalty, -0.5);
  EXPECT_DOUBLE_EQ(p.repetition_penalty, 1.3);
  EXPECT_DOUBLE_EQ(p.length_penalty, 0.8);
  EXPECT_EQ(r.job->adapter, "");
  EXPECT_EQ(r.job->prompts.at(0).ids, codec_.encode("hi", true));
}

TEST_F(Protocol, CompletionPromptForms) {
  auto one = post("/v1/completions", {{"prompt", "ab"}});
  ASSERT_TRUE(one.job);
  EXPECT_EQ(one.job->prompts.size(), 1u);
  auto many = post("/v1/completions", {{"prompt", {"a", "b", "c"}}});
  ASSERT_TRUE(many.job);
  EXPECT_EQ(many.job->prompts.size(), 3u);
  EXPECT_EQ(many.job->prompts[2].text, "c");
  auto ids = post("/v1/completions", {{"prompt", {1, 70, 71}}});
  ASSERT_TRUE(ids.job);
  EXPECT_EQ(ids.job->prompts[0].ids, (std::vector<int32_t>{1, 70, 71}));
  EXPECT_EQ(ids.job->prompts[0].text, codec_.decode({70, 71}, true));
  auto lists = post("/v1/completions", {{"prompt", {{70}, {71, 72}}}});
  ASSERT_TRUE(lists.job);
  EXPECT_EQ(lists.job->prompts.size(), 2u);
  EXPECT_EQ(lists.job->prompts[1].ids, (std::vector<int32_t>{71, 72}));
}

TEST_F(Protocol, ModelSelectsAdapterOrFails) {
  auto a = post("/v1/completions", {{"model", "fortunes"}, {"prompt", "x"}});
  ASSERT_TRUE(a.job);
  EXPECT_EQ(a.job->adapter, "fortunes");
  EXPECT_EQ(a.job->model, "fortunes");
  auto e = error_of(post("/v1/completions", {{"model", "nope"}, {"prompt", "x"}}), 404);
  EXPECT_EQ(e["error"]["code"], "model_not_found");
  EXPECT_EQ(e["error"]["param"], "model");
  EXPECT_EQ(e["error"]["type"], "not_found_error");
}

TEST_F(Protocol, ErrorsNameTheField) {
  auto e = error_of(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", "ten"}}), 400);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("expected an integer"), std::string::npos);
  e = error_of(post("/v1/completions", {{"prompt", "x"}, {"top_p", 0}}), 400);
  EXPECT_EQ(e["error"]["param"], "top_p");
  e = error_of(post("/v1/completions", {{"prompt", "x"}, {"n", 2}, {"best_of", 1}}), 400);
  EXPECT_EQ(e["error"]["param"], "best_of");
  e = error_of(post("/v1/completions", {{"prompt", std::string(300, 'a')}}), 400);
  EXPECT_EQ(e["error"]["code"], "context_length_exceeded");
  e = error_of(post("/v1/completions", {{"prompt", "x"}, {"logit_bias", {{"99999", 1}}}}), 400);
  EXPECT_EQ(e["error"]["param"], "logit_bias");
}

TEST_F(Protocol, CompletionBodyShape) {
  auto r = post("/v1/completions", {{"prompt", {"p0", "p1"}}, {"n", 2}, {"logprobs", 1},
                                    {"return_token_ids", true}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  f.text(0, "ab", "length", true);
  f.text(1, "c", "stop", true);
  json body = json::parse(r.presenter->full_body(f.result));
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "demo");
  ASSERT_EQ(body["choices"].size(), 4u);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][1]["index"], 1);
  EXPECT_EQ(body["choices"][2]["index"], 2);
  EXPECT_EQ(body["choices"][0]["text"], "ab");
  EXPECT_EQ(body["choices"][3]["text"], "c");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][3]["finish_reason"], "stop");
  auto lp = body["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"a", "b"}));
  EXPECT_EQ(lp["text_offset"], json({0, 1}));
  EXPECT_FLOAT_EQ(lp["token_logprobs"][0].get<float>(), -0.5f);
  EXPECT_TRUE(lp["top_logprobs"][0].contains("z"));
  EXPECT_EQ(body["choices"][0]["token_ids"], json({ByteCodec::kOffset + 'a', ByteCodec::kOffset + 'b'}));
  EXPECT_EQ(body["usage"]["prompt_tokens"], 6);  // BOS + 2 bytes, twice
  EXPECT_EQ(body["usage"]["completion_tokens"], 6);
  EXPECT_EQ(body["usage"]["total_tokens"], 12);
}

TEST_F(Protocol, CompletionEchoAndTokenIds) {
  auto r = post("/v1/completions", {{"prompt", "hey"}, {"echo", true}, {"logprobs", 0},
                                    {"return_tokens_as_token_ids", true}});
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.job->params.prompt_logprobs, 0);
  Feed f(r);
  f.text(0, "!", "length", true);
  json body = json::parse(r.presenter->full_body(f.result));
  EXPECT_EQ(body["choices"][0]["text"], "hey!");
  auto lp = body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);  // <s> h e y !
  EXPECT_EQ(lp["tokens"][0], "token_id:1");
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_EQ(lp["tokens"][4], "token_id:" + std::to_string(ByteCodec::kOffset + '!'));
}

TEST_F(Protocol, CompletionStreamFrames) {
  auto r = post("/v1/completions", {{"prompt", "x"}, {"stream", true},
                                    {"stream_options", {{"include_usage", true}}}});
  ASSERT_TRUE(r.job);
  EXPECT_TRUE(r.job->stream);
  Feed f(r);
  f.text(0, "hello", "length");
  bool done = false;
  auto events = sse_events(f.end(), done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 6u);
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "text_completion");
    EXPECT_TRUE(events[i]["usage"].is_null());
    text += events[i]["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(events[4]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(events[3]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(events[5]["choices"].empty());
  EXPECT_EQ(events[5]["usage"]["completion_tokens"], 5);
}

TEST_F(Protocol, CompletionStreamEchoCarriesPromptLogprobs) {
  auto r = post("/v1/completions", {{"prompt", "ab"}, {"stream", true}, {"echo", true}, {"logprobs", 0}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  EXPECT_TRUE(f.frames.empty());  // the echo waits for the prompt's logprobs
  RequestOutput first;
  first.prompt_tokens = 3;
  first.prompt_logprobs = {std::nullopt, TokenLogprob{ByteCodec::kOffset + 'a', -1.5f, {}},
                           TokenLogprob{ByteCodec::kOffset + 'b', -2.5f, {}}};
  CompletionDelta d;
  d.token_ids = {ByteCodec::kOffset + 'c'};
  d.text = "c";
  d.logprobs = {TokenLogprob{ByteCodec::kOffset + 'c', -0.5f, {}}};
  d.finish_reason = "length";
  first.outputs = {d};
  first.finished = true;
  f.send(0, first);
  bool done = false;
  auto events = sse_events(f.end(), done);
  ASSERT_EQ(events.size(), 2u);
  auto echo = events[0]["choices"][0];
  EXPECT_EQ(echo["text"], "ab");
  EXPECT_EQ(echo["logprobs"]["tokens"], json({"<s>", "a", "b"}));
  EXPECT_TRUE(echo["logprobs"]["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(echo["logprobs"]["token_logprobs"][2].get<float>(), -2.5f);
  EXPECT_EQ(events[1]["choices"][0]["logprobs"]["text_offset"], json({2}));
}

// The engine's prompt logprobs of "ab" (BOS a b) with 2 alternatives: 'a' ranks 7th,
// below 'x' and 'y'; 'b' is itself the most likely, and 'z' is impossible (-inf).
std::vector<std::optional<TokenLogprob>> prompt_lps_ab() {
  const int32_t a = ByteCodec::kOffset + 'a', b = ByteCodec::kOffset + 'b';
  const int32_t x = ByteCodec::kOffset + 'x', y = ByteCodec::kOffset + 'y';
  const int32_t z = ByteCodec::kOffset + 'z';
  TokenLogprob ta{a, -3.0f, {{x, -0.5f}, {y, -1.0f}}, 7};
  TokenLogprob tb{b, -0.25f, {{b, -0.25f}, {z, -std::numeric_limits<float>::infinity()}}, 1};
  return {std::nullopt, ta, tb};
}

// One engine message for a prompt "ab": its prompt logprobs and one token "c" per
// choice (with its logprob when `logprobs`), finishing.
RequestOutput prompt_lps_message(int n, bool logprobs = false) {
  RequestOutput out;
  out.prompt_tokens = 3;
  out.completion_tokens = n;
  out.prompt_logprobs = prompt_lps_ab();
  for (int i = 0; i < n; ++i) {
    CompletionDelta d;
    d.index = i;
    d.token_ids = {ByteCodec::kOffset + 'c'};
    d.text = "c";
    if (logprobs) d.logprobs = {TokenLogprob{ByteCodec::kOffset + 'c', -0.5f, {}}};
    d.finish_reason = "length";
    out.outputs.push_back(d);
  }
  out.finished = true;
  return out;
}

// vLLM's shape: one entry per prompt token, the first null, each other keyed by token
// id with {logprob, rank, decoded_token} for the prompt token and the alternatives.
void expect_prompt_lps_ab(const json& plp) {
  const std::string a = std::to_string(ByteCodec::kOffset + 'a');
  const std::string b = std::to_string(ByteCodec::kOffset + 'b');
  const std::string x = std::to_string(ByteCodec::kOffset + 'x');
  const std::string y = std::to_string(ByteCodec::kOffset + 'y');
  const std::string z = std::to_string(ByteCodec::kOffset + 'z');
  ASSERT_TRUE(plp.is_array()) << plp;
  ASSERT_EQ(plp.size(), 3u);  // <s> a b
  EXPECT_TRUE(plp[0].is_null());
  // 'a': itself (rank 7, not in the top 2) plus the 2 alternatives.
  ASSERT_TRUE(plp[1].is_object());
  ASSERT_EQ(plp[1].size(), 3u) << plp[1];
  EXPECT_EQ(plp[1][a], json({{"logprob", -3.0}, {"rank", 7}, {"decoded_token", "a"}}));
  EXPECT_EQ(plp[1][x], json({{"logprob", -0.5}, {"rank", 1}, {"decoded_token", "x"}}));
  EXPECT_EQ(plp[1][y], json({{"logprob", -1.0}, {"rank", 2}, {"decoded_token", "y"}}));
  // 'b' is the top alternative: listed once; -inf is written -9999.0 (as vLLM).
  ASSERT_EQ(plp[2].size(), 2u) << plp[2];
  EXPECT_EQ(plp[2][b], json({{"logprob", -0.25}, {"rank", 1}, {"decoded_token", "b"}}));
  EXPECT_EQ(plp[2][z], json({{"logprob", -9999.0}, {"rank", 2}, {"decoded_token", "z"}}));
}

TEST_F(Protocol, CompletionPromptLogprobsPerChoiceOfEachPrompt) {
  auto r = post("/v1/completions", {{"prompt", {"ab", "ab"}}, {"n", 2}, {"prompt_logprobs", 2}});
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.job->params.prompt_logprobs, 2);
  Feed f(r);
  f.send(0, prompt_lps_message(2));
  f.send(1, prompt_lps_message(2));
  json body = json::parse(r.presenter->full_body(f.result));
  ASSERT_EQ(body["choices"].size(), 4u);
  for (const auto& c : body["choices"]) {
    EXPECT_EQ(c["text"], "c");
    EXPECT_TRUE(c["logprobs"].is_null());  // prompt_logprobs alone asks for no output logprobs
    expect_prompt_lps_ab(c["prompt_logprobs"]);
  }
}

TEST_F(Protocol, CompletionPromptLogprobsZeroIsThePromptTokenAlone) {
  auto r = post("/v1/completions", {{"prompt", "hey"}, {"prompt_logprobs", 0}});
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.job->params.prompt_logprobs, 0);
  Feed f(r);
  RequestOutput out;
  out.prompt_tokens = 4;
  out.prompt_logprobs = {std::nullopt};
  for (char ch : std::string("hey"))
    out.prompt_logprobs.push_back(TokenLogprob{ByteCodec::kOffset + ch, -2.0f, {}, 3});
  out.finished = true;
  f.send(0, out);
  json plp = json::parse(r.presenter->full_body(f.result))["choices"][0]["prompt_logprobs"];
  ASSERT_EQ(plp.size(), 4u);  // <s> h e y
  EXPECT_TRUE(plp[0].is_null());
  for (size_t k = 1; k < 4; ++k) {
    ASSERT_EQ(plp[k].size(), 1u) << plp[k];
    std::string ch(1, "hey"[k - 1]);
    EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + ch[0])],
              json({{"logprob", -2.0}, {"rank", 3}, {"decoded_token", ch}}));
  }
}

TEST_F(Protocol, CompletionWithoutPromptLogprobsHasNone) {
  auto r = post("/v1/completions", {{"prompt", "ab"}, {"logprobs", 1}});
  ASSERT_TRUE(r.job);
  EXPECT_FALSE(r.job->params.prompt_logprobs.has_value());
  Feed f(r);
  f.text(0, "c", "length", true);
  json body = json::parse(r.presenter->full_body(f.result));
  EXPECT_FALSE(body["choices"][0].contains("prompt_logprobs")) << body;
}

TEST_F(Protocol, CompletionEchoWithLogprobsAlsoGivesPromptLogprobs) {
  // As vLLM: echo with logprobs computes the prompt's logprobs, and they are shown.
  auto r = post("/v1/completions", {{"prompt", "ab"}, {"echo", true}, {"logprobs", 2}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  f.send(0, prompt_lps_message(1, true));
  json c = json::parse(r.presenter->full_body(f.result))["choices"][0];
  EXPECT_EQ(c["text"], "abc");
  EXPECT_EQ(c["logprobs"]["tokens"], json({"<s>", "a", "b", "c"}));
  expect_prompt_lps_ab(c["prompt_logprobs"]);
}

TEST_F(Protocol, CompletionStreamPromptLogprobsOnFirstChunkOfEachChoice) {
  auto r = post("/v1/completions",
                {{"prompt", {"ab", "ab"}}, {"n", 2}, {"stream", true}, {"prompt_logprobs", 2}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  EXPECT_TRUE(f.frames.empty());
  for (size_t p = 0; p < 2; ++p) {
    RequestOutput first = prompt_lps_message(2);
    for (auto& d : first.outputs) d.finish_reason.reset();
    first.finished = false;
    f.send(p, first);
    f.text(p, "de", "length");
  }
  bool done = false;
  auto events = sse_events(f.end(), done);
  EXPECT_TRUE(done);
  std::map<int, int> chunks, with_plp;
  std::map<int, std::string> text;
  for (const auto& e : events) {
    ASSERT_EQ(e["choices"].size(), 1u);
    const auto& c = e["choices"][0];
    int idx = c["index"];
    if (chunks[idx]++ == 0) {
      ASSERT_TRUE(c.contains("prompt_logprobs")) << "first chunk of choice " << idx << ": " << c;
      expect_prompt_lps_ab(c["prompt_logprobs"]);
    }
    with_plp[idx] += c.contains("prompt_logprobs") ? 1 : 0;
    text[idx] += c["text"].get<std::string>();
  }
  ASSERT_EQ(chunks.size(), 4u);
  for (int idx = 0; idx < 4; ++idx) {
    EXPECT_EQ(chunks[idx], 3) << idx;  // "c", "d", "e"
    EXPECT_EQ(with_plp[idx], 1) << idx;
    EXPECT_EQ(text[idx], "cde") << idx;
  }
}

TEST_F(Protocol, CompletionStreamEchoWaitsForPromptLogprobs) {
  auto r = post("/v1/completions",
                {{"prompt", "ab"}, {"stream", true}, {"echo", true}, {"prompt_logprobs", 2}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  EXPECT_TRUE(f.frames.empty());  // the echo waits for the prompt's logprobs
  f.send(0, prompt_lps_message(1));
  bool done = false;
  auto events = sse_events(f.end(), done);
  ASSERT_EQ(events.size(), 2u);
  auto echo = events[0]["choices"][0];
  EXPECT_EQ(echo["text"], "ab");
  EXPECT_TRUE(echo["logprobs"].is_null());
  expect_prompt_lps_ab(echo["prompt_logprobs"]);
  EXPECT_EQ(events[1]["choices"][0]["text"], "c");
  EXPECT_FALSE(events[1]["choices"][0].contains("prompt_logprobs"));
}

// --------------------------------------------------------------------- chat ---

TEST_F(Protocol, ChatRendersTemplateAndReadsFields) {
  auto r = post("/v1/chat/completions",
                {{"model", "fortunes"},
                 {"messages", {{{"role", "system"}, {"content", "be brief"}},
                               {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi"}}}}}}},
                 {"max_tokens", 5}, {"max_completion_tokens", 9}, {"logprobs", true},
                 {"top_logprobs", 2}});
  ASSERT_TRUE(r.job) << r.reply->body;
  EXPECT_EQ(r.job->prompts[0].text, "<|system|>be brief\n<|user|>hi\n<|assistant|>");
  EXPECT_EQ(r.job->prompts[0].ids, codec_.encode(r.job->prompts[0].text, false));
  EXPECT_EQ(r.job->params.max_tokens, 9);
  EXPECT_EQ(r.job->params.logprobs, 2);
  EXPECT_EQ(r.job->adapter, "fortunes");
}

TEST_F(Protocol, ChatBodyAndStream) {
  json msgs = {{{"role", "user"}, {"content", "q"}}};
  auto r = post("/v1/chat/completions", {{"messages", msgs}, {"logprobs", true}, {"top_logprobs", 1}});
  ASSERT_TRUE(r.job);
  Feed f(r);
  f.text(0, "ok", "stop", true);
  json body = json::parse(r.presenter->full_body(f.result));
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "ok");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  auto content = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "o");
  EXPECT_EQ(content[0]["bytes"], json({'o'}));
  ASSERT_EQ(content[0]["top_logprobs"].size(), 1u);

  auto s = post("/v1/chat/completions", {{"messages", msgs}, {"stream", true}, {"n", 2}});
  ASSERT_TRUE(s.job);
  Feed g(s);
  g.text(0, "ab", "length");
  bool done = false;
  auto events = sse_events(g.end(), done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 6u);  // 2 role chunks + 2 tokens x 2 choices
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events[1]["choices"][0]["index"], 1);
  std::string c0, c1;
  for (size_t i = 2; i < events.size(); ++i) {
    auto& ch = events[i]["choices"][0];
    (ch["index"] == 0 ? c0 : c1) += ch["delta"].value("content", "");
  }
  EXPECT_EQ(c0, "ab");
  EXPECT_EQ(c1, "ab");
  EXPECT_EQ(events[5]["choices"][0]["finish_reason"], "length");
}

TEST_F(Protocol, ChatPromptLogprobsBesideChoices) {
  json msgs = {{{"role", "user"}, {"content", "q"}}};
  auto r = post("/v1/chat/completions", {{"messages", msgs}, {"n", 2}, {"prompt_logprobs", 1}});
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.job->params.prompt_logprobs, 1);
  const auto& ids = r.job->prompts[0].ids;  // the rendered template, no BOS
  ASSERT_GT(ids.size(), 2u);
  Feed f(r);
  RequestOutput out;
  out.prompt_tokens = static_cast<int>(ids.size());
  out.prompt_logprobs = {std::nullopt};
  for (size_t k = 1; k < ids.size(); ++k)
    out.prompt_logprobs.push_back(TokenLogprob{ids[k], -1.5f, {{ByteCodec::kOffset + '!', -0.5f}}, 2});
  out.finished = true;
  f.send(0, out);
  json body = json::parse(r.presenter->full_body(f.result));
  ASSERT_EQ(body["choices"].size(), 2u);
  EXPECT_FALSE(body["choices"][0].contains("prompt_logprobs"));
  const json& plp = body["prompt_logprobs"];
  ASSERT_EQ(plp.size(), ids.size());
  EXPECT_TRUE(plp[0].is_null());
  for (size_t k = 1; k < ids.size(); ++k) {
    std::string text = codec_.token_text(ids[k]);
    if (text == "!") continue;  // the alternative itself
    ASSERT_EQ(plp[k].size(), 2u) << plp[k];
    EXPECT_EQ(plp[k][std::to_string(ids[k])],
              json({{"logprob", -1.5}, {"rank", 2}, {"decoded_token", text}}));
    EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + '!')],
              json({{"logprob", -0.5}, {"rank", 1}, {"decoded_token", "!"}}));
  }
  // Not asked for: not there.
  auto none = post("/v1/chat/completions", {{"messages", msgs}});
  ASSERT_TRUE(none.job);
  Feed g(none);
  g.text(0, "ok", "stop");
  EXPECT_FALSE(json::parse(none.presenter->full_body(g.result)).contains("prompt_logprobs"));
}

TEST_F(Protocol, ChatRejectsBadMessages) {
  error_of(post("/v1/chat/completions", {{"messages", json::array()}}), 400);
  auto e = error_of(post("/v1/chat/completions", {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), 400);
  EXPECT_EQ(e["error"]["param"], "messages[0].role");
  e = error_of(post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                                              {"top_logprobs", 2}}), 400);
  EXPECT_EQ(e["error"]["param"], "top_logprobs");
  e = error_of(post("/v1/chat/completions", {{"messages", {{{"role", "tool"}, {"content", "x"}}}}}), 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("chat template"), std::string::npos);
}

// --------------------------------------------------------------------- vLLM ---

TEST_F(Protocol, VllmGenerate) {
  auto r = post("/generate", {{"prompt", "Hi"}, {"n", 2}, {"max_tokens", 3}});
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.route, "/generate");
  Feed f(r);
  f.text(0, "yo", "length");
  EXPECT_EQ(json::parse(r.presenter->full_body(f.result)), json({{"text", {"Hiyo", "Hiyo"}}}));

  auto s = post("/generate", {{"prompt", "Hi"}, {"stream", true}});
  ASSERT_TRUE(s.job);
  Feed g(s);
  g.text(0, "ab", "length");
  std::string frames = g.end();
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back(), '\0');
  std::vector<json> chunks;
  size_t start = 0, nul;
  while ((nul = frames.find('\0', start)) != std::string::npos) {
    chunks.push_back(json::parse(frames.substr(start, nul - start)));
    start = nul + 1;
  }
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["text"][0], "Hia");
  EXPECT_EQ(chunks[1]["text"][0], "Hiab");
}

TEST_F(Protocol, TokenizeDetokenize) {
  auto t = post("/tokenize", {{"prompt", "ab"}});
  ASSERT_TRUE(t.reply);
  json tj = json::parse(t.reply->body);
  EXPECT_EQ(tj["tokens"], json(codec_.encode("ab", true)));
  EXPECT_EQ(tj["count"], 3);
  EXPECT_EQ(tj["max_model_len"], 256);
  auto d = post("/detokenize", {{"tokens", codec_.encode("ab", true)}});
  ASSERT_TRUE(d.reply);
  EXPECT_EQ(json::parse(d.reply->body)["prompt"], "ab");
  error_of(post("/detokenize", {{"tokens", {99999}}}), 400);
}

// ---------------------------------------------------------------------- TGI ---

TEST_F(Protocol, TgiParametersAndDetails) {
  auto r = post("/generate", {{"inputs", "Hi"},
                              {"parameters", {{"max_new_tokens", 4}, {"details", true},
                                              {"decoder_input_details", true},
                                              {"top_n_tokens", 2}, {"stop", {"z"}},
                                              {"adapter_id", "fortunes"}, {"seed", 7}}}});
  ASSERT_TRUE(r.job) << r.reply->body;
  EXPECT_EQ(r.job->params.max_tokens, 4);
  EXPECT_EQ(r.job->params.temperature, 0.0);  // do_sample false: greedy
  EXPECT_EQ(r.job->params.prompt_logprobs, 0);
  EXPECT_EQ(r.job->adapter, "fortunes");
  Feed f(r);
  f.text(0, "yz", "stop", true);
  json body = json::parse(r.presenter->full_body(f.result));
  EXPECT_EQ(body["generated_text"], "yz");
  EXPECT_EQ(body["details"]["finish_reason"], "eos_token");
  EXPECT_EQ(body["details"]["generated_tokens"], 2);
  EXPECT_EQ(body["details"]["seed"], 7);
  EXPECT_EQ(body["details"]["tokens"][0]["text"], "y");
  EXPECT_EQ(body["details"]["tokens"][0]["special"], false);
  EXPECT_EQ(body["details"]["prefill"].size(), 3u);
  EXPECT_TRUE(body["details"]["prefill"][0]["logprob"].is_null());
  EXPECT_EQ(body["details"]["top_tokens"][0].size(), 2u);
}

TEST_F(Protocol, TgiTypicalPSamples) {
  // typical_p alone turns sampling on, as in TGI; 1.0 means off.
  auto r = post("/generate", {{"inputs", "Hi"}, {"parameters", {{"typical_p", 0.6}}}});
  ASSERT_TRUE(r.job) << r.reply->body;
  EXPECT_DOUBLE_EQ(r.job->params.typical_p, 0.6);
  EXPECT_DOUBLE_EQ(r.job->params.temperature, 1.0);
  auto off = post("/generate", {{"inputs", "Hi"}, {"parameters", {{"typical_p", 1.0}}}});
  ASSERT_TRUE(off.job) << off.reply->body;
  EXPECT_DOUBLE_EQ(off.job->params.typical_p, 1.0);
  EXPECT_EQ(off.job->params.temperature, 0.0);
}

TEST_F(Protocol, TgiStreamEvents) {
  auto r = post("/generate_stream", {{"inputs", "Hi"},
                                     {"parameters", {{"do_sample", true}, {"temperature", 0.7},
                                                     {"details", true}, {"return_full_text", true}}}});
  ASSERT_TRUE(r.job);
  EXPECT_DOUBLE_EQ(r.job->params.temperature, 0.7);
  Feed f(r);
  f.text(0, "abc", "length", true);
  bool done = false;
  auto events = sse_events(f.end(), done);
  EXPECT_FALSE(done);  // TGI sends no [DONE]
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["token"]["text"], "a");
  EXPECT_TRUE(events[0]["generated_text"].is_null());
  EXPECT_EQ(events[2]["generated_text"], "Hiabc");
  EXPECT_EQ(events[2]["details"]["finish_reason"], "length");
  EXPECT_EQ(events[2]["details"]["generated_tokens"], 3);
}

TEST_F(Protocol, TgiValidationIs422InTgiShape) {
  auto r = post("/generate", {{"inputs", "Hi"}, {"parameters", {{"temperature", 0}}}});
  json e = error_of(r, 422);
  EXPECT_TRUE(e["error"].is_string());
  EXPECT_EQ(e["error_type"], "validation");
  e = error_of(post("/generate", {{"inputs", "Hi"}, {"parameters", {{"adapter_id", "nope"}}}}), 404);
  EXPECT_EQ(e["error_type"], "not_found");
  error_of(post("/generate_stream", {{"inputs", "Hi"}, {"parameters", {{"best_of", 2}, {"do_sample", true}}}}), 422);
}

// ------------------------------------------------------------------ misc ---

TEST_F(Protocol, ModelsListsAdaptersWithParent) {
  auto r = route_request(ctx_, HttpRequestView{"GET", "/v1/models", "", ""});
  ASSERT_TRUE(r.reply);
  json j = json::parse(r.reply->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["id"], "demo");
  EXPECT_TRUE(j["data"][0]["parent"].is_null());
  EXPECT_EQ(j["data"][1]["id"], "fortunes");
  EXPECT_EQ(j["data"][1]["parent"], "demo");
  EXPECT_EQ(j["data"][1]["root"], "/adapters/fortunes");
}

TEST_F(Protocol, RoutesAndMethods) {
  EXPECT_EQ(route_request(ctx_, {"GET", "/nope", "", ""}).reply->status, 404);
  EXPECT_EQ(route_request(ctx_, {"GET", "/v1/completions", "", ""}).reply->status, 405);
  EXPECT_EQ(route_request(ctx_, {"POST", "/v1/models", "", ""}).reply->status, 405);
  EXPECT_EQ(route_request(ctx_, {"GET", "/health", "", ""}).reply->status, 200);
  EXPECT_EQ(route_request(ctx_, {"GET", "/health?x=1", "", ""}).reply->status, 200);
  ctx_.draining = true;
  auto h = route_request(ctx_, {"GET", "/health", "", ""});
  EXPECT_EQ(h.reply->status, 503);
  bool retry = false;
  for (auto& [k, v] : h.reply->headers) retry = retry || k == "Retry-After";
  EXPECT_TRUE(retry);
  EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}}).reply->status, 503);
}

TEST_F(Protocol, MetricsText) {
  metrics_.http_request("/v1/completions", 200);
  metrics_.request_finished({"stop"}, 3, 4, RequestTiming{0.001, 0.02, 0.5, {0.01, 0.02}});
  auto r = route_request(ctx_, HttpRequestView{"GET", "/metrics", "", ""});
  ASSERT_TRUE(r.reply);
  const std::string& m = r.reply->body;
  for (const char* name :
       {"banyan_http_requests_total{route=\"/v1/completions\",code=\"200\"} 1",
        "banyan_request_success_total{finished_reason=\"stop\"} 1",
        "banyan_time_to_first_token_seconds_bucket{le=\"0.04\"} 1",
        "banyan_inter_token_latency_seconds_count 2", "banyan_e2e_request_latency_seconds_count 1",
        "banyan_request_queue_time_seconds_count 1", "banyan_num_requests_running 0",
        "banyan_kv_cache_usage_ratio 0", "banyan_prefix_cache_hits_total 0",
        "banyan_adapter_requests_total{adapter=\"fortunes\"} 0",
        "banyan_adapter_resident{adapter=\"fortunes\"} 0"})
    EXPECT_NE(m.find(name), std::string::npos) << name;
  // The paged adapter pool, from the engine's statistics when adapters are enabled.
  EXPECT_EQ(m.find("banyan_adapter_pool_"), std::string::npos) << "the fake engine has no pool";
  EngineStats s;
  s.adapters = true;
  s.adapter_page_bytes = 65536;
  s.adapter_pages_used = 12;
  s.adapter_pages_budget = 32768;
  s.adapter_evictions = 3;
  const std::string p = metrics_.render(s, {}, ServerGauges{});
  for (const char* name :
       {"\nbanyan_adapter_pool_page_bytes 65536\n", "\nbanyan_adapter_pool_pages_used 12\n",
        "\nbanyan_adapter_pool_pages_budget 32768\n", "\nbanyan_adapter_evictions_total 3\n",
        "# TYPE banyan_adapter_pool_reserved_bytes gauge"})
    EXPECT_NE(p.find(name), std::string::npos) << name;
}

TEST(ServerPieces, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secret2"));
  EXPECT_FALSE(constant_time_equal("", "x"));
}

TEST(ServerPieces, AdmissionQueuesInOrder) {
  Admission a(1, 2);
  uint64_t t0, t1, t2, t3;
  std::vector<int> granted;
  EXPECT_EQ(a.acquire([] {}, t0), Admission::Result::admitted);
  EXPECT_EQ(a.acquire([&] { granted.push_back(1); }, t1), Admission::Result::queued);
  EXPECT_EQ(a.acquire([&] { granted.push_back(2); }, t2), Admission::Result::queued);
  EXPECT_EQ(a.acquire([] {}, t3), Admission::Result::rejected);
  EXPECT_TRUE(a.cancel(t1));
  a.release();
  EXPECT_EQ(granted, std::vector<int>{2});
  EXPECT_FALSE(a.cancel(t2));  // already granted
  EXPECT_EQ(a.active(), 1);
  a.release();
  EXPECT_EQ(a.active(), 0);
}

}  // namespace
}  // namespace banyan::core::server
