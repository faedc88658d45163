#include "core/server/server_options.h"

#include "core/config/config.h"

namespace banyan::core::server {

ServerOptions ServerOptions::from_config(const Config& c) {
  ServerOptions o;
  o.host = c.get_string("server.host");
  o.port = static_cast<int>(c.get_int("server.port"));
  o.api_key = c.get_string("server.api_key");
  o.io_threads = static_cast<int>(c.get_int("server.io_threads"));
  o.max_body_bytes = c.get_bytes("server.max_body_bytes");
  o.max_concurrent_requests = static_cast<int>(c.get_int("server.max_concurrent_requests"));
  o.max_waiting_requests = static_cast<int>(c.get_int("server.max_waiting_requests"));
  o.header_timeout_s = c.get_number("server.header_timeout_s");
  o.read_timeout_s = c.get_number("server.read_timeout_s");
  o.idle_timeout_s = o.read_timeout_s;
  o.access_log = c.get_bool("server.access_log");
  o.adapters_enabled = c.get_bool("adapters.enabled");
  o.allowed_roots = c.get_strings("adapters.allowed_roots");
  o.model_path = c.get_string("model.path");
  o.defaults.max_tokens = static_cast<int>(c.get_int("decoding.max_tokens"));
  o.defaults.temperature = c.get_number("decoding.temperature");
  o.defaults.top_p = c.get_number("decoding.top_p");
  o.defaults.top_k = static_cast<int>(c.get_int("decoding.top_k"));
  o.defaults.repetition_penalty = c.get_number("decoding.repetition_penalty");
  return o;
}

}  // namespace banyan::core::server
