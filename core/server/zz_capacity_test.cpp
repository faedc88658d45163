#include "core/server/bench_client.h"
#include "core/server/testing/test_server.h"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <chrono>
using namespace banyan::core::server;
namespace bt = banyan::core::server::testing;
TEST(Capacity, SinkCost) {
  bt::FakeEngine::Options eo; eo.step = std::chrono::microseconds(5000);
  ServerOptions o; o.io_threads = 4;
  bt::TestServer s(o, eo);
  std::vector<BenchRequest> reqs;
  for (int i = 0; i < 256; ++i) reqs.push_back({nlohmann::json{{"prompt", "prompt " + std::to_string(i)}, {"max_tokens", 200}, {"stream", true}, {"return_token_ids", true}}.dump()});
  auto run = run_bench_client("127.0.0.1", s.port, reqs, std::numeric_limits<double>::infinity(), 256, 0);
  long tokens = 0; int ok = 0;
  for (auto& r : run.results) { tokens += r.output_tokens; ok += r.ok; }
  printf("ok %d tokens %ld in %.2fs; sink calls %ld, %.3f us per call\n", ok, tokens, run.duration, (long)s.engine->sink_calls(), s.engine->sink_seconds() * 1e6 / s.engine->sink_calls());
}
