// Hostile clients: malformed JSON, wrong types, out-of-range values, unknown models,
// oversized bodies and prompts, invalid UTF-8, garbage bytes, huge headers, slow and
// half-closed connections, and 10k tiny requests. Every case must get a 4xx JSON
// error, and the server must keep serving after each.
#include "core/server/testing/http_client.h"
#include "core/server/testing/test_server.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <thread>

namespace banyan::core::server {
namespace {

using json = nlohmann::json;
using namespace testing;
namespace fs = std::filesystem;

struct Case {
  std::string name;
  std::string raw;  ///< the whole request as sent
  int want = 0;     ///< exact status, or 0 for any 4xx
};

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "Connection: close\r\n\r\n";
}

class Hostile : public ::testing::Test {
 public:
  static fs::path root() {
    static fs::path r = fs::temp_directory_path() / ("banyan-hostile-" + std::to_string(::getpid()));
    return r;
  }

 protected:
  static ServerOptions options() {
    ServerOptions o;
    o.max_body_bytes = 64 << 10;
    o.max_header_bytes = 8 << 10;
    o.header_timeout_s = 0.4;
    o.read_timeout_s = 0.4;
    o.idle_timeout_s = 0.4;
    o.adapters_enabled = true;
    o.allowed_roots = {root().string()};
    return o;
  }
  static void SetUpTestSuite() {
    fs::create_directories(root() / "ok");
    fs::create_directories(root().parent_path() / ("outside-" + std::to_string(::getpid())));
    std::error_code ec;
    fs::create_symlink(root().parent_path() / ("outside-" + std::to_string(::getpid())),
                       root() / "escape", ec);
  }
  static void TearDownTestSuite() {
    fs::remove_all(root());
    fs::remove_all(root().parent_path() / ("outside-" + std::to_string(::getpid())));
  }
  Hostile() : server_(options(), FakeEngine::Options{.max_model_len = 512}) {}

  void expect_alive() {
    auto r = http_request(server_.port, "GET", "/health");
    ASSERT_EQ(r.status, 200) << "the server stopped serving";
  }

  void run(const Case& c) {
    SCOPED_TRACE(c.name);
    std::string raw = raw_exchange(server_.port, c.raw, false, 5);
    int status = raw_status(raw);
    if (c.want) EXPECT_EQ(status, c.want) << raw.substr(0, 400);
    else EXPECT_TRUE(status >= 400 && status < 500) << status << " " << raw.substr(0, 400);
    json body = json::parse(raw_body(raw), nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("error")) << raw.substr(0, 400);
    expect_alive();
  }

  TestServer server_;
};

std::vector<Case> json_cases() {
  std::vector<Case> c;
  auto add = [&](std::string name, std::string path, std::string body, int want = 400) {
    c.push_back({std::move(name), post(path, body), want});
  };
  // Malformed JSON.
  for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{
           {"empty", ""}, {"open-brace", "{"}, {"open-bracket", "["}, {"null", "null"},
           {"number", "123"}, {"string", "\"prompt\""}, {"array", "[1,2]"},
           {"missing-value", "{\"prompt\":}"}, {"trailing-garbage", "{\"prompt\":\"a\"} x"},
           {"single-quotes", "{'prompt':'a'}"}, {"unquoted-key", "{prompt:\"a\"}"},
           {"trailing-comma", "{\"prompt\":\"a\",}"}, {"nan", "{\"prompt\":\"a\",\"temperature\":NaN}"},
           {"deep-nesting", std::string(20000, '[') + std::string(20000, ']')},
           {"deep-object", "{\"a\":" + std::string(5000, '[') + "}"},
           {"control-char", std::string("{\"prompt\":\"a\x01\"}")},
           {"bad-escape", "{\"prompt\":\"\\q\"}"}, {"lone-surrogate", "{\"prompt\":\"\\ud800\"}"},
           {"comment", "{/* x */ \"prompt\":\"a\"}"}, {"nul-byte", std::string("{\"prompt\"\0:1}", 13)}})
    add("malformed-json/" + name, "/v1/completions", body);
  // Wrong types.
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"max_tokens", "ten"}, {"max_tokens", 1.5}, {"temperature", "hot"}, {"top_p", true},
           {"top_k", "5"}, {"n", json::array()}, {"best_of", json::object()}, {"seed", "s"},
           {"stream", "yes"}, {"stop", 5}, {"stop", json::array({1})}, {"echo", 1},
           {"logprobs", true}, {"logit_bias", json::array()}, {"logit_bias", {{"x", 1}}},
           {"logit_bias", {{"5", "high"}}}, {"stop_token_ids", "2"}, {"ignore_eos", "no"},
           {"min_tokens", -0.5}, {"stream_options", 3}, {"presence_penalty", "0"},
           {"use_beam_search", 1}, {"model", 7}, {"prompt", 5}, {"prompt", json::object()},
           {"prompt", json::array()}, {"prompt", json::array({json::array()})},
           {"prompt", json::array({1, "a"})}, {"prompt", json::array({"a", 1})},
           {"prompt", json::array({-1})}})
  {
    json body = {{"prompt", "hello"}};
    body[field] = value;
    add("wrong-type/" + field + "=" + value.dump(), "/v1/completions", body.dump());
  }
  // Out of range.
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"max_tokens", 0}, {"max_tokens", -1}, {"max_tokens", 1e12}, {"temperature", -1},
           {"temperature", 1e9}, {"top_p", 0}, {"top_p", 1.5}, {"top_k", -2}, {"min_p", 2},
           {"n", 0}, {"n", 100000}, {"best_of", 0}, {"presence_penalty", 3},
           {"frequency_penalty", -3}, {"repetition_penalty", 0}, {"logprobs", 21},
           {"logprobs", -1}, {"logit_bias", {{"999999", 1}}}, {"logit_bias", {{"5", 200}}},
           {"stop_token_ids", json::array({-1})}, {"stop_token_ids", json::array({1 << 30})},
           {"min_tokens", 100}, {"stop", json::array({""})}, {"prompt", json::array({1 << 30})},
           {"truncate_prompt_tokens", 0}})
  {
    json body = {{"prompt", "hello"}, {"max_tokens", 8}};
    body[field] = value;
    add("out-of-range/" + field + "=" + value.dump(), "/v1/completions", body.dump());
  }
  add("out-of-range/best_of<n", "/v1/completions", R"({"prompt":"a","n":3,"best_of":2})");
  add("out-of-range/usage-without-stream", "/v1/completions",
      R"({"prompt":"a","stream_options":{"include_usage":true}})");
  // Chat.
  add("chat/no-messages", "/v1/chat/completions", R"({"max_tokens":3})");
  add("chat/messages-string", "/v1/chat/completions", R"({"messages":"hi"})");
  add("chat/messages-empty", "/v1/chat/completions", R"({"messages":[]})");
  add("chat/role-number", "/v1/chat/completions", R"({"messages":[{"role":5,"content":"x"}]})");
  add("chat/role-unknown", "/v1/chat/completions", R"({"messages":[{"role":"god","content":"x"}]})");
  add("chat/no-content", "/v1/chat/completions", R"({"messages":[{"role":"user"}]})");
  add("chat/image-part", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":"x"}]}]})");
  add("chat/top-logprobs-without-logprobs", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":3})");
  add("chat/top-logprobs-range", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":30})");
  add("chat/tools", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})");
  add("chat/max-completion-tokens", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":0})");
  // Unknown model / adapter.
  add("unknown-model/completions", "/v1/completions", R"({"model":"nope","prompt":"a"})", 404);
  add("unknown-model/chat", "/v1/chat/completions",
      R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", 404);
  add("unknown-model/tokenize", "/tokenize", R"({"model":"nope","prompt":"a"})", 404);
  add("unknown-model/vllm-generate", "/generate", R"({"model":"nope","prompt":"a"})", 404);
  add("unknown-adapter/tgi", "/generate", R"({"inputs":"a","parameters":{"adapter_id":"nope"}})", 404);
  add("unknown-adapter/unload", "/v1/unload_lora_adapter", R"({"lora_name":"nope"})", 404);
  // Oversized prompts.
  add("oversized/prompt", "/v1/completions", json{{"prompt", std::string(600, 'a')}}.dump());
  add("oversized/prompt+max_tokens", "/v1/completions",
      json{{"prompt", std::string(300, 'a')}, {"max_tokens", 300}}.dump());
  add("oversized/too-many-prompts", "/v1/completions",
      json{{"prompt", std::vector<std::string>(2000, "a")}}.dump());
  add("oversized/chat", "/v1/chat/completions",
      json{{"messages", {{{"role", "user"}, {"content", std::string(600, 'b')}}}}}.dump());
  // Invalid UTF-8.
  add("utf8/prompt-ff", "/v1/completions", "{\"prompt\":\"a\xff\"}");
  add("utf8/truncated-sequence", "/v1/completions", "{\"prompt\":\"\xc3\"}");
  add("utf8/overlong", "/v1/completions", "{\"prompt\":\"\xc0\xaf\"}");
  add("utf8/surrogate-bytes", "/v1/completions", "{\"prompt\":\"\xed\xa0\x80\"}");
  add("utf8/in-key", "/v1/completions", "{\"\xfe\":\"a\",\"prompt\":\"a\"}");
  add("utf8/chat", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"\x80\"}]}");
  add("utf8/tgi", "/generate", "{\"inputs\":\"\xf8\x88\x80\x80\x80\"}");
  // TGI.
  add("tgi/no-inputs", "/generate_stream", R"({"parameters":{}})", 422);
  add("tgi/inputs-number", "/generate", R"({"inputs":5})", 422);
  add("tgi/parameters-string", "/generate", R"({"inputs":"a","parameters":"x"})", 422);
  add("tgi/temperature-0", "/generate", R"({"inputs":"a","parameters":{"temperature":0}})", 422);
  add("tgi/top-p-1", "/generate", R"({"inputs":"a","parameters":{"top_p":1.0}})", 422);
  add("tgi/top-k-0", "/generate", R"({"inputs":"a","parameters":{"top_k":0}})", 422);
  add("tgi/top-n-tokens", "/generate", R"({"inputs":"a","parameters":{"top_n_tokens":50}})", 422);
  add("tgi/best-of-greedy", "/generate", R"({"inputs":"a","parameters":{"best_of":2}})", 422);
  add("tgi/max-new-tokens-0", "/generate", R"({"inputs":"a","parameters":{"max_new_tokens":0}})", 422);
  add("tgi/typical-p-0", "/generate", R"({"inputs":"a","parameters":{"typical_p":0}})", 422);
  add("tgi/typical-p-over-1", "/generate", R"({"inputs":"a","parameters":{"typical_p":1.5}})", 422);
  add("tgi/typical-p-string", "/generate", R"({"inputs":"a","parameters":{"typical_p":"0.5"}})", 422);
  add("tgi/seed-negative", "/generate", R"({"inputs":"a","parameters":{"seed":-1}})", 422);
  add("tgi/stream-decoder-details", "/generate_stream",
      R"({"inputs":"a","parameters":{"decoder_input_details":true}})", 422);
  add("tgi/adapter-source-s3", "/generate",
      R"({"inputs":"a","parameters":{"adapter_id":"x","adapter_source":"s3"}})", 422);
  // vLLM utility routes and adapters.
  add("tokenize/no-prompt", "/tokenize", R"({})");
  add("tokenize/prompt-list", "/tokenize", R"({"prompt":["a"]})");
  add("detokenize/no-tokens", "/detokenize", R"({})");
  add("detokenize/strings", "/detokenize", R"({"tokens":["a"]})");
  add("detokenize/out-of-vocab", "/detokenize", R"({"tokens":[100000]})");
  add("load/no-name", "/v1/load_lora_adapter", R"({"lora_path":"x"})");
  add("load/no-path", "/v1/load_lora_adapter", R"({"lora_name":"x"})");
  add("load/empty-path", "/v1/load_lora_adapter", R"({"lora_name":"x","lora_path":""})");
  add("load/outside-roots", "/v1/load_lora_adapter", R"({"lora_name":"x","lora_path":"/etc"})", 403);
  add("load/dotdot", "/v1/load_lora_adapter",
      json{{"lora_name", "x"}, {"lora_path", (Hostile::root() / "ok" / ".." / ".." / "..").string()}}.dump(),
      403);
  add("load/symlink-escape", "/v1/load_lora_adapter",
      json{{"lora_name", "x"}, {"lora_path", (Hostile::root() / "escape").string()}}.dump(), 403);
  add("load/missing-inside", "/v1/load_lora_adapter",
      json{{"lora_name", "x"}, {"lora_path", (Hostile::root() / "missing").string()}}.dump(), 404);
  add("load/nul-in-path", "/v1/load_lora_adapter", R"({"lora_name":"x","lora_path":"a\u0000b"})");
  add("load/name-is-base", "/v1/load_lora_adapter",
      json{{"lora_name", "fake-model"}, {"lora_path", (Hostile::root() / "ok").string()}}.dump());
  add("load/control-name", "/v1/load_lora_adapter",
      json{{"lora_name", "a\nb"}, {"lora_path", (Hostile::root() / "ok").string()}}.dump());
  add("lorax/local-outside", "/generate",
      R"({"inputs":"a","parameters":{"adapter_id":"/etc","adapter_source":"local"}})", 403);
  return c;
}

std::vector<Case> http_cases() {
  std::vector<Case> c;
  auto add = [&](std::string name, std::string raw, int want = 0) {
    c.push_back({std::move(name), std::move(raw), want});
  };
  add("http/garbage-line", "GARBAGE\r\n\r\n", 400);
  add("http/binary", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15), 400);
  add("http/bad-version", "GET /health HTTP/9.9\r\nHost: t\r\n\r\n", 400);
  add("http/no-version", "GET /health\r\n\r\n", 400);
  add("http/header-no-colon", "GET /health HTTP/1.1\r\nHost t\r\n\r\n", 400);
  add("http/bad-content-length", "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400);
  add("http/negative-content-length", "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", 400);
  add("http/two-content-lengths",
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400);
  add("http/bad-chunk-size",
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400);
  add("http/nul-in-header", std::string("GET /health HTTP/1.1\r\nHost: t\0x\r\n\r\n", 35), 400);
  add("http/bare-lf-garbage", "\n\n\n\n", 400);
  add("http/space-method", " GET /health HTTP/1.1\r\n\r\n", 400);
  add("http/huge-header-value", get("/health", "X-Big: " + std::string(20000, 'a') + "\r\n"), 431);
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  add("http/many-headers", get("/health", many), 431);
  add("http/huge-target", get("/" + std::string(20000, 'p')), 431);
  add("http/oversized-body", post("/v1/completions", "{\"prompt\":\"" + std::string(70000, 'a') + "\"}"), 413);
  add("http/oversized-content-length",
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n{", 413);
  std::string chunked = "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) chunked += "1000\r\n" + std::string(4096, 'x') + "\r\n";
  add("http/oversized-chunked", chunked + "0\r\n\r\n", 413);
  add("route/unknown", get("/nope"), 404);
  add("route/unknown-post", post("/v2/everything", "{}"), 404);
  add("route/get-on-post-route", get("/v1/completions"), 405);
  add("route/post-on-get-route", post("/v1/models", "{}"), 405);
  add("route/delete", "DELETE /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405);
  add("route/unknown-method", "BREW /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405);
  add("route/dotdot-path", get("/../../etc/passwd"), 404);
  add("route/encoded-path", get("/v1/%2e%2e/models"), 404);
  return c;
}

TEST_F(Hostile, JsonCasesAnswer4xxJsonAndKeepServing) {
  auto cases = json_cases();
  for (const auto& c : cases) run(c);
}

TEST_F(Hostile, HttpCasesAnswer4xxJsonAndKeepServing) {
  auto cases = http_cases();
  for (const auto& c : cases) run(c);
}

TEST_F(Hostile, AtLeastAHundredCases) {
  EXPECT_GE(json_cases().size() + http_cases().size() + 6, 100u);  // + the tests below
}

TEST_F(Hostile, SlowHeadersTimeOutWith408) {
  Connection c(server_.port);
  c.send("GET /health HTTP/1.1\r\nHo");
  std::string got;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  c.read_some(got, 1.0);
  EXPECT_EQ(raw_status(got), 408) << got;
  EXPECT_TRUE(json::parse(raw_body(got), nullptr, false).contains("error"));
  expect_alive();
}

TEST_F(Hostile, SlowBodyTimesOutWith408) {
  Connection c(server_.port);
  c.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"prompt\"");
  std::string got;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  c.read_some(got, 1.0);
  EXPECT_EQ(raw_status(got), 408) << got;
  expect_alive();
}

TEST_F(Hostile, IdleConnectionIsClosed) {
  Connection c(server_.port);
  std::string got;
  EXPECT_FALSE(c.read_some(got, 2.0));  // closed by the server, nothing sent
  EXPECT_TRUE(got.empty());
  expect_alive();
}

TEST_F(Hostile, HalfClosedRequestsAreAnswered) {
  // A whole request then shutdown(SHUT_WR): the answer still comes back.
  std::string raw = raw_exchange(server_.port, post("/v1/completions", R"({"prompt":5})"), true);
  EXPECT_EQ(raw_status(raw), 400) << raw;
  EXPECT_TRUE(json::parse(raw_body(raw), nullptr, false).contains("error"));
  // A partial request then shutdown(SHUT_WR): 400, not a hang.
  raw = raw_exchange(server_.port, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{", true);
  EXPECT_EQ(raw_status(raw), 400) << raw;
  expect_alive();
}

TEST_F(Hostile, SlowReaderOfAStreamIsDropped) {
  Connection c(server_.port);
  std::string body = R"({"prompt":"slow reader ","max_tokens":400,"stream":true})";
  c.send(post("/v1/completions", body));  // and never read
  ASSERT_TRUE([&] {
    for (int i = 0; i < 400; ++i) {
      if (server_.engine->submitted() == 1) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }());
  // The stream finishes (socket buffers absorb it) or the write times out; either way
  // nothing leaks and the server keeps serving.
  for (int i = 0; i < 400 && server_.engine->blocks_in_use() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server_.engine->blocks_in_use(), 0);
  expect_alive();
}

TEST_F(Hostile, TenThousandTinyRequests) {
  constexpr int kThreads = 10, kPerThread = 1000, kBatch = 50;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      Connection c(server_.port);
      std::string one = "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}";
      for (int sent = 0; sent < kPerThread; sent += kBatch) {
        std::string batch;
        for (int i = 0; i < kBatch; ++i) batch += one;
        if (!c.send(batch)) return;
        std::string got;
        int seen = 0;
        for (int tries = 0; tries < 200 && seen < kBatch; ++tries) {
          c.read_some(got, 0.05);
          seen = 0;
          for (size_t p = 0; (p = got.find("HTTP/1.1 400", p)) != std::string::npos; ++p) ++seen;
        }
        answered += seen;
        if (seen < kBatch) return;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered, kThreads * kPerThread);
  expect_alive();
}

}  // namespace
}  // namespace banyan::core::server
