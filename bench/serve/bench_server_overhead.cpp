// What the HTTP layer costs the engine thread. The fake engine steps every --step-us
// and emits one token per running stream per step; the real HttpServer delivers them
// to --streams concurrent SSE clients (the bench serve client, in this process). The
// engine thread's CPU time inside the sinks, per message, is the server's share of an
// engine step; a real step of S microseconds at B streams loses B * cost / S to it.
//   banyan_bench_server_overhead [--streams N] [--tokens N] [--step-us N] [--io-threads N]
#include "core/server/bench_client.h"
#include "core/server/http_server.h"
#include "core/server/testing/byte_codec.h"
#include "core/server/testing/fake_engine.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>

using namespace banyan::core::server;

int main(int argc, char** argv) {
  int streams = 256, tokens = 200, step_us = 5000, io_threads = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--streams")) streams = v;
    else if (!std::strcmp(argv[i], "--tokens")) tokens = v;
    else if (!std::strcmp(argv[i], "--step-us")) step_us = v;
    else if (!std::strcmp(argv[i], "--io-threads")) io_threads = v;
    else {
      std::cerr << "unknown option " << argv[i] << "\n";
      return 2;
    }
  }
  testing::ByteCodec codec;
  testing::FakeEngine::Options eo;
  eo.step = std::chrono::microseconds(step_us);
  testing::FakeEngine engine(eo);
  ServerOptions so;
  so.port = 0;
  so.io_threads = io_threads;
  so.access_log = false;
  HttpServer server(engine, codec, so);
  uint16_t port = server.start();
  std::vector<BenchRequest> reqs;
  for (int i = 0; i < streams; ++i)
    reqs.push_back({nlohmann::json{{"prompt", "stream " + std::to_string(i)},
                                   {"max_tokens", tokens},
                                   {"stream", true},
                                   {"return_token_ids", true}}
                        .dump()});
  auto run = run_bench_client("127.0.0.1", port, reqs, std::numeric_limits<double>::infinity(),
                              streams, 0);
  long got = 0, ok = 0;
  for (const auto& r : run.results) {
    got += r.output_tokens;
    ok += r.ok;
  }
  double per_msg_us = engine.sink_seconds() * 1e6 / static_cast<double>(engine.sink_calls());
  nlohmann::json out = {{"streams", streams},
                        {"tokens_per_stream", tokens},
                        {"step_us", step_us},
                        {"io_threads", io_threads},
                        {"ok_streams", ok},
                        {"tokens_delivered", got},
                        {"duration_s", run.duration},
                        {"engine_thread_us_per_message", per_msg_us},
                        {"engine_thread_share_of_step", per_msg_us * streams / step_us}};
  std::cout << out.dump(2) << "\n";
  server.stop();
  engine.shutdown(false);
  return ok == streams ? 0 : 1;
}
