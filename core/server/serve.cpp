#include "core/common/logging.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/server/entry_points.h"
#include "core/server/http_server.h"
#include "core/server/tokenizer_codec.h"

#include <banyan/error.h>

#include <sys/resource.h>

#include <iostream>

namespace banyan::core::server {

namespace {
// Each connection is a descriptor: allow as many as the hard limit does.
void raise_open_files_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}
}  // namespace

int serve_main(const Config& config) {
#if BANYAN_SERVER_HAVE_ENGINE
  set_log_level(config.get_string("logging.level"));
  raise_open_files_limit();
  std::unique_ptr<Engine> engine;
  try {
    engine = Engine::create(config);
  } catch (const banyan::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.code() == Code::invalid_argument ? 2 : 1;
  }
  if (!engine->has_tokenizer()) {
    std::cerr << "error: the HTTP server needs the model's tokenizer\n";
    return 2;
  }
  TokenizerCodec codec(engine->tokenizer());
  int code = 1;
  {
    HttpServer server(*engine, codec, ServerOptions::from_config(config));
    try {
      server.start();
    } catch (const banyan::Error& e) {
      std::cerr << "error: " << e.what() << "\n";
      engine->shutdown(false);
      return 1;
    }
    code = server.run_until_signal();
    // The engine stops before the server's I/O context goes: no sink may post into it.
    engine->shutdown(code == 0);
  }
  return code;
#else
  (void)config;
  std::cerr << "error: `banyan serve` needs the engine, which this build does not have\n";
  return 1;
#endif
}

}  // namespace banyan::core::server
