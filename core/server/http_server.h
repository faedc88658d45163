// The HTTP server: Boost.Beast on an Asio I/O thread pool (server.io_threads). The
// engine runs on its own thread; the two meet only through Engine::submit and each
// request's sink, which posts the engine's messages to the session's strand.
//
// Thread-safety: start/stop/drain may be called from any thread; run_until_signal
// from one thread only.
#pragma once

#include "core/server/server_options.h"

#include <cstdint>
#include <memory>

namespace banyan::core {
class Engine;
}

namespace banyan::core::server {

class TextCodec;
class ServerContext;

class HttpServer {
 public:
  HttpServer(Engine& engine, const TextCodec& codec, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds, listens and starts the I/O threads. Returns the bound port (useful with
  /// port 0). Throws banyan::Error when the address cannot be bound.
  uint16_t start();
  /// Graceful drain: stop accepting, answer new generation requests 503, close idle
  /// connections. Returns at once.
  void begin_drain();
  /// Blocks until no generation request is admitted or queued, or the timeout
  /// (seconds, < 0: none) passes. True when drained.
  bool wait_drained(double timeout_s = -1);
  /// Closes every connection and joins the I/O threads.
  void stop();
  /// Blocks until SIGINT or SIGTERM, drains (a second signal stops at once), stops.
  /// Returns the process exit code (0 after a drain).
  int run_until_signal();

  uint16_t port() const;
  ServerContext& context();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::core::server
