// The server's settings, read once from the deployment configuration (server.*,
// decoding.*, adapters.*, model.*).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace banyan::core {
class Config;
}

namespace banyan::core::server {

/// Values used when a request leaves a sampling field out.
struct SamplingDefaults {
  int max_tokens = 16;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = -1;
  double repetition_penalty = 1.0;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;                 ///< "" = no authentication
  int io_threads = 2;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 16u << 10; ///< request line + headers (431 above)
  int max_concurrent_requests = 1024;  ///< generation requests in the engine at once
  int max_waiting_requests = 4096;     ///< queued in the server beyond those (429 above)
  double header_timeout_s = 10;
  double read_timeout_s = 60;          ///< body, and each write to a slow reader
  double idle_timeout_s = 60;          ///< keep-alive connection with no request
  bool access_log = true;
  bool adapters_enabled = false;
  std::vector<std::string> allowed_roots;
  std::string model_path;
  SamplingDefaults defaults;

  static ServerOptions from_config(const Config& config);
};

}  // namespace banyan::core::server
