// The server over real sockets, against the scripted fake engine: whole and
// streamed responses, keep-alive and pipelining, disconnects that abort, admission
// limits, authentication and graceful drain.
#include "core/server/admission.h"
#include "core/server/testing/http_client.h"
#include "core/server/testing/test_server.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <thread>

namespace banyan::core::server {
namespace {

using json = nlohmann::json;
using namespace testing;

// The fake engine's text for a prompt: the prompt's bytes repeated from `offset`.
std::string expected_text(const std::string& prompt, size_t tokens, size_t offset = 0) {
  std::string s;
  for (size_t k = 0; k < tokens; ++k) s += prompt[(k + offset) % prompt.size()];
  return s;
}

std::string sse_text(const std::string& body, const char* field = "text") {
  std::string text;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    json j = json::parse(data);
    for (const auto& c : j["choices"]) {
      if (c.contains(field) && c[field].is_string()) text += c[field].get<std::string>();
      if (c.contains("delta") && c["delta"].contains("content"))
        text += c["delta"]["content"].get<std::string>();
    }
  }
  return text;
}

bool wait_for(const std::function<bool()>& pred, double seconds = 10) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(int(seconds * 1000));
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST(HttpServer, CompletionWholeAndStreamed) {
  TestServer s;
  auto r = http_request(s.port, "POST", "/v1/completions",
                        R"({"prompt": "abc", "max_tokens": 7, "n": 2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["text"], expected_text("abc", 7));
  EXPECT_EQ(j["choices"][1]["text"], expected_text("abc", 7, 1));
  EXPECT_EQ(j["usage"]["completion_tokens"], 14);

  auto st = http_request(s.port, "POST", "/v1/completions",
                         R"({"prompt": "xyz", "max_tokens": 9, "stream": true})");
  ASSERT_EQ(st.status, 200);
  EXPECT_EQ(st.headers["content-type"], "text/event-stream");
  EXPECT_EQ(sse_text(st.body), expected_text("xyz", 9));
  EXPECT_NE(st.body.find("data: [DONE]\n\n"), std::string::npos);
}

// prompt_logprobs over the wire: the fake engine gives each prompt token -1.0, rank
// k + 1, below k alternatives 'A', 'B', ... at -0.1, -0.2, ...
TEST(HttpServer, CompletionPromptLogprobs) {
  TestServer s;
  auto r = http_request(s.port, "POST", "/v1/completions",
                        R"({"prompt": ["abc", "de"], "max_tokens": 2, "n": 2, "prompt_logprobs": 2})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  ASSERT_EQ(j["choices"].size(), 4u);
  const std::string prompts[] = {"abc", "de"};
  for (size_t c = 0; c < 4; ++c) {
    const std::string& prompt = prompts[c / 2];
    const json& plp = j["choices"][c]["prompt_logprobs"];
    ASSERT_EQ(plp.size(), prompt.size() + 1) << plp;  // BOS + bytes
    EXPECT_TRUE(plp[0].is_null());
    for (size_t k = 1; k < plp.size(); ++k) {
      ASSERT_EQ(plp[k].size(), 3u) << plp[k];
      std::string tok(1, prompt[k - 1]);
      EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + prompt[k - 1])],
                json({{"logprob", -1.0}, {"rank", 3}, {"decoded_token", tok}}));
      EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + 'A')]["rank"], 1);
      EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + 'A')]["decoded_token"], "A");
      EXPECT_EQ(plp[k][std::to_string(ByteCodec::kOffset + 'B')]["rank"], 2);
      EXPECT_NEAR(plp[k][std::to_string(ByteCodec::kOffset + 'B')]["logprob"].get<double>(), -0.2, 1e-6);
    }
  }

  // Streamed: on the first chunk of each choice only.
  auto st = http_request(s.port, "POST", "/v1/completions",
                         R"({"prompt": "xyz", "max_tokens": 3, "n": 2, "stream": true, "prompt_logprobs": 0})");
  ASSERT_EQ(st.status, 200);
  std::map<int, int> chunks, with_plp;
  size_t pos = 0;
  while ((pos = st.body.find("data: ", pos)) != std::string::npos) {
    size_t end = st.body.find("\n\n", pos);
    std::string data = st.body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    json event = json::parse(data);
    for (const auto& c : event["choices"]) {
      int idx = c["index"];
      if (chunks[idx]++ == 0) {
        ASSERT_TRUE(c.contains("prompt_logprobs")) << data;
        const json& plp = c["prompt_logprobs"];
        ASSERT_EQ(plp.size(), 4u);
        EXPECT_TRUE(plp[0].is_null());
        EXPECT_EQ(plp[3], json({{std::to_string(ByteCodec::kOffset + 'z'),
                                 {{"logprob", -1.0}, {"rank", 1}, {"decoded_token", "z"}}}}));
      }
      with_plp[idx] += c.contains("prompt_logprobs") ? 1 : 0;
    }
  }
  EXPECT_EQ(chunks.size(), 2u);
  EXPECT_EQ(with_plp[0], 1);
  EXPECT_EQ(with_plp[1], 1);

  // Chat: beside the choices.
  auto ch = http_request(s.port, "POST", "/v1/chat/completions",
                         R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                             "prompt_logprobs": 1})");
  ASSERT_EQ(ch.status, 200) << ch.body;
  json cj = json::parse(ch.body);
  std::string prompt = "<|user|>hi\n<|assistant|>";
  const json& plp = cj["prompt_logprobs"];
  ASSERT_EQ(plp.size(), prompt.size());  // no BOS in chat
  EXPECT_TRUE(plp[0].is_null());
  EXPECT_EQ(plp[1][std::to_string(ByteCodec::kOffset + prompt[1])]["rank"], 2);
  EXPECT_EQ(plp[1][std::to_string(ByteCodec::kOffset + prompt[1])]["decoded_token"],
            std::string(1, prompt[1]));
}

TEST(HttpServer, ChatStreamAndTgiStream) {
  TestServer s;
  auto r = http_request(s.port, "POST", "/v1/chat/completions",
                        R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
                            "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_EQ(r.status, 200);
  std::string prompt = "<|user|>hi\n<|assistant|>";
  EXPECT_EQ(sse_text(r.body), expected_text(prompt, 5));
  EXPECT_NE(r.body.find("\"usage\":{\"completion_tokens\":5"), std::string::npos) << r.body;

  auto t = http_request(s.port, "POST", "/generate_stream",
                        R"({"inputs": "tgi", "parameters": {"max_new_tokens": 4, "details": true}})");
  ASSERT_EQ(t.status, 200);
  EXPECT_NE(t.body.find("\"generated_text\":\"tgit\""), std::string::npos) << t.body;
  auto g = http_request(s.port, "POST", "/generate", R"({"inputs": "ab", "parameters": {"max_new_tokens": 3}})");
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(json::parse(g.body)["generated_text"], "aba");
  auto v = http_request(s.port, "POST", "/generate", R"({"prompt": "ab", "max_tokens": 3})");
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(json::parse(v.body)["text"][0], "ababa");
}

TEST(HttpServer, KeepAliveAndPipelining) {
  TestServer s;
  Connection c(s.port);
  std::string one = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n"
                    "{\"prompt\":\"pq\",\"max_tokens\":3}   ";
  ASSERT_TRUE(c.send(one + one + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  ASSERT_TRUE(wait_for([&] {
    c.read_some(got, 0.05);
    size_t n = 0, pos = 0;
    while ((pos = got.find("HTTP/1.1 200", pos)) != std::string::npos) ++n, ++pos;
    return n == 3;
  }));
  size_t first = got.find("\"text\":\"pqp\"");
  EXPECT_NE(first, std::string::npos);
  EXPECT_NE(got.find("\"text\":\"pqp\"", first + 1), std::string::npos);
}

TEST(HttpServer, DisconnectAbortsAndFreesBlocks) {
  TestServer s;
  {  // streaming: the client reads a little, then resets the connection
    Connection c(s.port);
    c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 47\r\n\r\n"
           "{\"prompt\":\"zz\",\"max_tokens\":4000,\"stream\":true}");
    std::string got;
    ASSERT_TRUE(wait_for([&] { c.read_some(got, 0.05); return got.find("data:") != std::string::npos; }));
    c.set_linger_reset();
    c.close();
  }
  ASSERT_TRUE(wait_for([&] { return s.engine->aborted() == 1; }));
  {  // whole response: the engine is paused; the client leaves while waiting
    s.engine->pause();
    Connection c(s.port);
    c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n"
           "{\"prompt\":\"zz\",\"max_tokens\":4000}");
    ASSERT_TRUE(wait_for([&] { return s.engine->submitted() == 2; }));
    c.close();
  }
  ASSERT_TRUE(wait_for([&] { return s.engine->aborted() == 2; }));
  s.engine->resume();
  EXPECT_TRUE(wait_for([&] { return s.engine->blocks_in_use() == 0; }));
  auto m = http_request(s.port, "GET", "/metrics");
  EXPECT_NE(m.body.find("banyan_client_disconnects_total 2"), std::string::npos);
  EXPECT_NE(m.body.find("banyan_kv_cache_usage_ratio 0\n"), std::string::npos);
}

TEST(HttpServer, AdmissionLimitsAnswer429WithRetryAfter) {
  ServerOptions o;
  o.max_concurrent_requests = 1;
  o.max_waiting_requests = 1;
  TestServer s(o);
  s.engine->pause();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&] {
      auto r = http_request(s.port, "POST", "/v1/completions", R"({"prompt":"q","max_tokens":2})");
      if (r.status == 200) ++ok;
    });
  ASSERT_TRUE(wait_for([&] { return s.server->context().admission.waiting() == 1; }));
  auto third = http_request(s.port, "POST", "/v1/completions", R"({"prompt":"q","max_tokens":2})");
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(third.headers["retry-after"], "1");
  EXPECT_EQ(json::parse(third.body)["error"]["code"], "queue_full");
  s.engine->resume();
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 2);  // the queued one ran after the first
}

TEST(HttpServer, ApiKey) {
  ServerOptions o;
  o.api_key = "s3cret";
  TestServer s(o);
  EXPECT_EQ(http_request(s.port, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http_request(s.port, "GET", "/v1/models", "", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(http_request(s.port, "GET", "/v1/models", "", {{"Authorization", "Basic s3cret"}}).status, 401);
  EXPECT_EQ(http_request(s.port, "GET", "/v1/models", "", {{"Authorization", "Bearer s3cret"}}).status, 200);
  EXPECT_EQ(http_request(s.port, "GET", "/health").status, 200);
}

TEST(HttpServer, ManyConcurrentStreamsGetExactlyTheirTokens) {
  TestServer s;
  constexpr int kClients = 200;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      std::string prompt = "client-" + std::to_string(i) + ";";
      json body = {{"prompt", prompt}, {"max_tokens", 40}, {"stream", true}};
      auto r = http_request(s.port, "POST", "/v1/completions", body.dump(), {}, 60);
      if (r.status == 200 && sse_text(r.body) == expected_text(prompt, 40)) ++good;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good, kClients);
  EXPECT_TRUE(wait_for([&] { return s.engine->blocks_in_use() == 0; }));
}

TEST(HttpServer, GracefulDrainFinishesRunningRequests) {
  TestServer s;
  std::string body;
  std::thread client([&] {
    auto r = http_request(s.port, "POST", "/v1/completions",
                          R"({"prompt":"d","max_tokens":300,"stream":true})");
    body = r.body;
  });
  ASSERT_TRUE(wait_for([&] { return s.server->context().admission.active() == 1; }));
  s.server->begin_drain();
  EXPECT_TRUE(s.server->wait_drained(30));
  client.join();
  EXPECT_EQ(sse_text(body), expected_text("d", 300));
  EXPECT_NE(body.find("[DONE]"), std::string::npos);
  // No new connections after the drain.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_THROW(http_request(s.port, "GET", "/health"), std::runtime_error);
}

TEST(HttpServer, AdaptersLoadUnloadAndServe) {
  ServerOptions o;
  o.adapters_enabled = true;
  auto root = std::filesystem::temp_directory_path() / ("banyan-srv-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "a1");
  o.allowed_roots = {root.string()};
  TestServer s(o);
  json load = {{"lora_name", "a1"}, {"lora_path", (root / "a1").string()}};
  auto r = http_request(s.port, "POST", "/v1/load_lora_adapter", load.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  auto m = json::parse(http_request(s.port, "GET", "/v1/models").body);
  ASSERT_EQ(m["data"].size(), 2u);
  EXPECT_EQ(m["data"][1]["parent"], "fake-model");
  r = http_request(s.port, "POST", "/v1/completions", R"({"model":"a1","prompt":"x","max_tokens":2})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(s.engine->last_request().adapter, "a1");
  json local = {{"inputs", "x"}, {"parameters", {{"adapter_id", (root / "a1" / ".." / "a1").string()},
                                                 {"adapter_source", "local"}, {"max_new_tokens", 2}}}};
  r = http_request(s.port, "POST", "/generate", local.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.engine->last_request().adapter, std::filesystem::canonical(root / "a1").string());
  r = http_request(s.port, "POST", "/v1/unload_lora_adapter", R"({"lora_name":"a1"})");
  EXPECT_EQ(r.status, 200);
  r = http_request(s.port, "POST", "/v1/unload_lora_adapter", R"({"lora_name":"a1"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "adapter_not_found");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace banyan::core::server
