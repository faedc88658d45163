#include "core/server/bench_serve.h"

#include "core/common/logging.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/server/bench_client.h"
#include "core/server/http_server.h"
#include "core/server/tokenizer_codec.h"

#include <banyan/error.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <random>

namespace banyan::core::server {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

json summary(std::vector<double> v) {
  if (v.empty()) return {{"mean_ms", nullptr}, {"p50_ms", nullptr}, {"p99_ms", nullptr}};
  std::sort(v.begin(), v.end());
  auto pct = [&](double q) {
    double pos = q * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, v.size() - 1);
    return (v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo))) * 1000.0;
  };
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()) * 1000.0;
  return {{"mean_ms", mean}, {"p50_ms", pct(0.5)}, {"p99_ms", pct(0.99)}};
}

std::vector<std::vector<int32_t>> random_prompts(const BenchServeOptions& o, int64_t vocab) {
  std::mt19937_64 rng(o.seed);
  // Ids from the middle of the vocabulary, away from special tokens.
  std::uniform_int_distribution<int32_t> pick(static_cast<int32_t>(std::min<int64_t>(100, vocab - 1)),
                                              static_cast<int32_t>(vocab - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.num_prompts));
  for (auto& p : prompts) {
    p.resize(static_cast<size_t>(o.input_len));
    for (auto& t : p) t = pick(rng);
  }
  return prompts;
}

// The same requests straight through the engine, all submitted at once as run-batch
// does. Returns {seconds, output tokens}.
std::pair<double, int64_t> run_offline(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                       const SamplingParams& params, const std::string& adapter) {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = prompts.size();
  int64_t tokens = 0;
  auto t0 = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.request_id = "bench-offline-" + std::to_string(i);
    r.prompt_ids = prompts[i];
    r.params = params;
    r.adapter = adapter;
    engine.submit(std::move(r), [&](RequestOutput&& out) {
      std::lock_guard lock(mu);
      for (const auto& d : out.outputs) tokens += static_cast<int64_t>(d.token_ids.size());
      if (out.finished && --left == 0) cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return left == 0; });
  return {std::chrono::duration<double>(Clock::now() - t0).count(), tokens};
}

bool parse_url(const std::string& url, std::string& host, uint16_t& port) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  auto slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return false;
  host = rest.substr(0, colon);
  try {
    port = static_cast<uint16_t>(std::stoi(rest.substr(colon + 1)));
  } catch (const std::exception&) {
    return false;
  }
  return !host.empty();
}

}  // namespace

int bench_serve_main(const Config& config, const BenchServeOptions& o) {
  set_log_level(config.get_string("logging.level"));
  std::unique_ptr<Engine> engine;
  std::unique_ptr<TokenizerCodec> codec;
  std::unique_ptr<HttpServer> server;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int64_t vocab = 0;
  if (o.base_url.empty()) {
#if BANYAN_SERVER_HAVE_ENGINE
    engine = Engine::create(config);
    codec = std::make_unique<TokenizerCodec>(engine->tokenizer());
    vocab = codec->vocab_size();
    ServerOptions so = ServerOptions::from_config(config);
    so.host = host;
    so.port = 0;
    so.access_log = false;
    server = std::make_unique<HttpServer>(*engine, *codec, so);
    port = server->start();
#else
    std::cerr << "error: this build has no engine; give --base-url of a running server\n";
    return 1;
#endif
  } else {
    if (!parse_url(o.base_url, host, port)) {
      std::cerr << "error: --base-url must look like http://host:port\n";
      return 2;
    }
    vocab = 1000;  // a remote vocabulary is unknown; low ids exist in every model
  }

  auto prompts = random_prompts(o, vocab);
  std::vector<BenchRequest> requests;
  for (const auto& p : prompts) {
    json body = {{"prompt", p}, {"max_tokens", o.output_len}, {"temperature", 0},
                 {"ignore_eos", true}, {"stream", true}, {"return_token_ids", true}};
    if (!o.model.empty()) body["model"] = o.model;
    requests.push_back({body.dump()});
  }
  // Warm-up: one short request.
  run_bench_client(host, port, {BenchRequest{json{{"prompt", prompts[0]}, {"max_tokens", 2},
                                                  {"stream", true}, {"return_token_ids", true}}
                                                 .dump()}},
                   std::numeric_limits<double>::infinity(), 1, 0);

  BenchRun run = run_bench_client(host, port, requests, o.request_rate, o.max_concurrency, o.seed);
  std::vector<double> ttft, itl, e2e;
  int64_t out_tokens = 0;
  int ok = 0;
  std::string first_error;
  for (const auto& r : run.results) {
    if (!r.ok) {
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    ++ok;
    out_tokens += r.output_tokens;
    ttft.push_back(r.ttft);
    e2e.push_back(r.e2e);
    itl.insert(itl.end(), r.itl.begin(), r.itl.end());
  }
  json res = {{"num_prompts", o.num_prompts},
              {"successful_requests", ok},
              {"input_len", o.input_len},
              {"output_len", o.output_len},
              {"request_rate", std::isfinite(o.request_rate) ? json(o.request_rate) : json("inf")},
              {"max_concurrency", o.max_concurrency},
              {"duration_s", run.duration},
              {"request_throughput", ok / run.duration},
              {"output_token_throughput", static_cast<double>(out_tokens) / run.duration},
              {"total_token_throughput",
               (static_cast<double>(out_tokens) + static_cast<double>(ok) * o.input_len) / run.duration},
              {"ttft", summary(ttft)},
              {"itl", summary(itl)},
              {"e2e_latency", summary(e2e)}};
  if (server) server->stop();
  if (engine && o.compare_offline) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = o.output_len;
    p.ignore_eos = true;
    std::string adapter = o.model == engine->served_model_name() ? "" : o.model;
    // Prompts of the same shape from another seed: the server's prompts would hit the
    // prefix cache and flatter the offline run.
    BenchServeOptions other = o;
    other.seed = o.seed + 1;
    auto [secs, tokens] = run_offline(*engine, random_prompts(other, vocab), p, adapter);
    double offline_tps = static_cast<double>(tokens) / secs;
    res["offline"] = {{"duration_s", secs}, {"output_token_throughput", offline_tps}};
    res["server_vs_offline_throughput"] = res["output_token_throughput"].get<double>() / offline_tps;
  }
  if (engine) engine->shutdown(false);
  server.reset();

  auto line = [](const char* name, const json& v) {
    std::printf("%-36s %s\n", name, v.is_number_float() ? std::to_string(v.get<double>()).c_str() : v.dump().c_str());
  };
  std::printf("============ Serving Benchmark Result ============\n");
  line("Successful requests:", ok);
  line("Benchmark duration (s):", res["duration_s"]);
  line("Request throughput (req/s):", res["request_throughput"]);
  line("Output token throughput (tok/s):", res["output_token_throughput"]);
  for (const char* k : {"ttft", "itl", "e2e_latency"})
    for (const char* s : {"mean_ms", "p50_ms", "p99_ms"})
      line((std::string(k) + " " + s + ":").c_str(), res[k][s]);
  if (res.contains("offline")) {
    line("Offline (run-batch path) tok/s:", res["offline"]["output_token_throughput"]);
    line("Server / offline throughput:", res["server_vs_offline_throughput"]);
  }
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  if (!o.output_json.empty()) std::ofstream(o.output_json) << res.dump(2) << "\n";
  return ok == o.num_prompts ? 0 : 1;
}

}  // namespace banyan::core::server
