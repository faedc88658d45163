// The commands the server library implements, called by the `banyan` CLI:
//   banyan serve       -> serve_main
//   banyan run-batch   -> run_batch_main (the same request parsing, no sockets)
//   banyan bench serve -> bench_serve_main (bench_serve.h)
#pragma once

#include <string>

namespace banyan::core {
class Config;
}

namespace banyan::core::server {

/// Loads the engine, serves HTTP until SIGINT/SIGTERM, drains, returns the exit code.
int serve_main(const Config& config);

/// Runs an OpenAI Batch file (JSONL): each line {"custom_id", "method", "url", "body"}
/// gives one output line {"id", "custom_id", "response": {"status_code", "request_id",
/// "body"}, "error"}, in input order. All lines run concurrently. Returns the exit code.
int run_batch_main(const Config& config, const std::string& input_path,
                   const std::string& output_path);

}  // namespace banyan::core::server
