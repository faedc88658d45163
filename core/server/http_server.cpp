#include "core/server/http_server.h"

#include "core/common/logging.h"
#include "core/engine/engine.h"
#include "core/server/admission.h"
#include "core/server/metrics.h"
#include "core/server/outbox.h"
#include "core/server/server_context.h"
#include "core/server/session.h"

#include <banyan/error.h>

#include <boost/asio/signal_set.hpp>

#include <condition_variable>
#include <list>
#include <thread>

namespace banyan::core::server {

using boost::system::error_code;

struct HttpServer::Impl {
  Impl(Engine& engine, const TextCodec& codec, ServerOptions options)
      : ioc_holder(std::make_unique<asio::io_context>(options.io_threads)),
        ioc(*ioc_holder),
        admission(options.max_concurrent_requests, options.max_waiting_requests),
        ctx(engine, codec, options, metrics, admission),
        acceptor_holder(std::in_place, asio::make_strand(ioc)),
        acceptor(*acceptor_holder),
        outbox(std::make_shared<Outbox>(ioc)) {}
  // Pending coroutine frames (sessions, admission slots) die with the context, so it
  // goes first, while everything they reference still lives.
  ~Impl() {
    for (auto& t : threads)
      if (t.joinable()) t.join();
    acceptor_holder.reset();
    ioc_holder.reset();
  }

  std::unique_ptr<asio::io_context> ioc_holder;
  asio::io_context& ioc;
  ServerMetrics metrics;
  Admission admission;
  ServerContext ctx;
  std::optional<tcp::acceptor> acceptor_holder;
  tcp::acceptor& acceptor;
  std::shared_ptr<Outbox> outbox;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool stopped = false;

  std::mutex sessions_mu;
  std::list<std::weak_ptr<Session>> sessions;

  void track(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mu);
    // Drop entries of ended sessions now and then, so the list stays small.
    if (sessions.size() > 64 && sessions.size() % 64 == 0)
      sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
    sessions.push_back(s);
  }

  template <class F>
  void for_each_session(F f) {
    std::lock_guard lock(sessions_mu);
    for (auto& w : sessions)
      if (auto s = w.lock()) asio::post(s->strand(), [s, f] { f(*s); });
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      auto strand = asio::make_strand(ioc);
      tcp::socket socket(strand);
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {  // e.g. too many open files: back off a little, keep serving
        log_warn(std::string("accept: ") + ec.message());
        asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (ctx.draining) {
        socket.close(ec);
        continue;
      }
      auto session = std::make_shared<Session>(std::move(socket), strand, ctx, outbox);
      track(session);
      asio::co_spawn(strand, session->run(session), asio::detached);
    }
  }
};

HttpServer::HttpServer(Engine& engine, const TextCodec& codec, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, codec, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::start() {
  auto& i = *impl_;
  const auto& o = i.ctx.options;
  error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec) throw banyan::Error("server.host: \"" + o.host + "\" is not an IP address: " + ec.message());
  tcp::endpoint ep(addr, static_cast<uint16_t>(o.port));
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) i.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw banyan::Error(Code::internal, "cannot listen on " + o.host + ":" + std::to_string(o.port) +
                                            ": " + ec.message());
  i.port = i.acceptor.local_endpoint().port();
  i.work.emplace(i.ioc.get_executor());
  asio::co_spawn(i.acceptor.get_executor(), i.accept_loop(), asio::detached);
  for (int t = 0; t < o.io_threads; ++t)
    i.threads.emplace_back([&ioc = i.ioc] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          log_error(std::string("http i/o thread: ") + e.what());
        }
      }
    });
  log_info("serving " + i.ctx.model_name + " on http://" + o.host + ":" + std::to_string(i.port));
  return i.port;
}

void HttpServer::begin_drain() {
  auto& i = *impl_;
  if (i.ctx.draining.exchange(true)) return;
  log_info("draining: no new connections; waiting for running requests");
  asio::post(i.acceptor.get_executor(), [&i] {
    error_code ec;
    i.acceptor.close(ec);
  });
  i.for_each_session([](Session& s) { s.close_if_idle(); });
}

bool HttpServer::wait_drained(double timeout_s) {
  auto& i = *impl_;
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(timeout_s < 0 ? 1e9 : timeout_s));
  while (i.admission.active() > 0 || i.admission.waiting() > 0) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void HttpServer::stop() {
  auto& i = *impl_;
  if (i.stopped) return;
  i.stopped = true;
  i.ctx.draining = true;
  asio::post(i.acceptor.get_executor(), [&i] {
    error_code ec;
    i.acceptor.close(ec);
  });
  i.for_each_session([](Session& s) { s.close_now(); });
  i.work.reset();
  // Give sessions a moment to finish writing, then stop the loop.
  auto until = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < until) {
    bool any = false;
    {
      std::lock_guard lock(i.sessions_mu);
      for (auto& w : i.sessions) any = any || !w.expired();
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  i.ioc.stop();
  for (auto& t : i.threads)
    if (t.joinable()) t.join();
  i.threads.clear();
}

int HttpServer::run_until_signal() {
  // A separate context for signals, so that a drain can run while it waits.
  asio::io_context sig_ctx;
  asio::signal_set signals(sig_ctx, SIGINT, SIGTERM);
  std::atomic<int> count{0};
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& ec, int sig) {
    if (ec) return;
    if (++count == 1) {
      log_info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
               "; draining (send again to stop now)");
      begin_drain();
      signals.async_wait(on_signal);
    }
  };
  signals.async_wait(on_signal);
  std::thread sig_thread([&] { sig_ctx.run(); });
  while (count == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool drained = false;
  while (!drained && count == 1) drained = wait_drained(0.1);
  sig_ctx.stop();
  sig_thread.join();
  stop();
  log_info(drained ? "drained; bye" : "stopped before the drain finished");
  return drained ? 0 : 1;
}

uint16_t HttpServer::port() const { return impl_->port; }
ServerContext& HttpServer::context() { return impl_->ctx; }

}  // namespace banyan::core::server
