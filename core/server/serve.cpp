#include "core/common/logging.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/server/entry_points.h"
#include "core/server/http_server.h"
#include "core/server/tokenizer_codec.h"

#include <banyan/error.h>

#include <iostream>

namespace banyan::core::server {

int serve_main(const Config& config) {
#if BANYAN_SERVER_HAVE_ENGINE
  set_log_level(config.get_string("logging.level"));
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
