// A running HttpServer over the fake engine and the byte codec, on a free port.
#pragma once

#include "core/server/http_server.h"
#include "core/server/server_context.h"
#include "core/server/testing/byte_codec.h"
#include "core/server/testing/fake_engine.h"

#include <memory>

namespace banyan::core::server::testing {

struct TestServer {
  explicit TestServer(ServerOptions o = {}, FakeEngine::Options eo = {}) {
    o.port = 0;
    o.host = "127.0.0.1";
    o.access_log = false;
    engine = std::make_unique<FakeEngine>(eo);
    server = std::make_unique<HttpServer>(*engine, codec, o);
    port = server->start();
  }
  ~TestServer() {
    server->stop();
    engine->shutdown(false);
    server.reset();
  }
  ByteCodec codec;
  std::unique_ptr<FakeEngine> engine;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

}  // namespace banyan::core::server::testing
