// `banyan bench serve`: load on the HTTP server like vLLM's benchmark_serving: random
// token-id prompts, Poisson arrivals (or all at once), at most max_concurrency in
// flight, streamed /v1/completions; reports TTFT, inter-token and end-to-end latency
// (mean, p50, p99) and throughput. With no --base-url it starts the server in-process
// from the deployment configuration and also runs the same work straight through the
// engine (the run-batch path), reporting the server/offline throughput ratio.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace banyan::core {
class Config;
}

namespace banyan::core::server {

struct BenchServeOptions {
  std::string base_url;   ///< "http://host:port"; "" = start a server in-process
  int num_prompts = 512;
  double request_rate = std::numeric_limits<double>::infinity();  ///< requests/s (Poisson)
  int max_concurrency = 256;
  int input_len = 128;
  int output_len = 128;
  uint64_t seed = 0;
  std::string model;      ///< the `model` field (an adapter name), "" = the base model
  bool compare_offline = true;
  std::string output_json;
};

/// Runs the benchmark and prints the results; returns the exit code.
int bench_serve_main(const Config& config, const BenchServeOptions& options);

}  // namespace banyan::core::server
