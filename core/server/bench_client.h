// The load generator behind `banyan bench serve`: streamed /v1/completions requests
// over Asio, timed per chunk. Internal to core/server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace banyan::core::server {

struct BenchRequest {
  std::string body;  ///< JSON of a streamed /v1/completions request (return_token_ids on)
};

struct BenchResult {
  bool ok = false;
  std::string error;
  int output_tokens = 0;
  double ttft = 0, e2e = 0;       ///< seconds
  std::vector<double> itl;        ///< seconds between chunks that carried tokens
};

struct BenchRun {
  std::vector<BenchResult> results;
  double duration = 0;  ///< seconds from the first send to the last answer
};

/// Sends every request to host:port (Poisson arrivals at `rate` per second, infinite
/// = all at once, at most `max_concurrency` in flight) and times each.
BenchRun run_bench_client(const std::string& host, uint16_t port,
                          const std::vector<BenchRequest>& requests, double rate,
                          int max_concurrency, uint64_t seed);

}  // namespace banyan::core::server
