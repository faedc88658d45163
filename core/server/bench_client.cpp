#include "core/server/bench_client.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <random>

namespace banyan::core::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Shared {
  const std::vector<BenchRequest>& requests;
  std::vector<Clock::time_point> arrivals;
  std::vector<BenchResult> results;
  size_t next = 0;
  tcp::endpoint endpoint;
  std::string host;
  Clock::time_point first_send{}, last_done{};
};

// Reads SSE events out of `pending`; returns tokens seen and whether [DONE] came.
int take_events(std::string& pending, bool& done, std::string& error) {
  int tokens = 0;
  size_t pos;
  while ((pos = pending.find("\n\n")) != std::string::npos) {
    std::string ev = pending.substr(0, pos);
    pending.erase(0, pos + 2);
    if (ev.rfind("data: ", 0) != 0) continue;
    std::string data = ev.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    auto j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.contains("error")) error = data;
    for (const auto& c : j.value("choices", nlohmann::json::array()))
      if (c.contains("token_ids")) tokens += static_cast<int>(c["token_ids"].size());
  }
  return tokens;
}

asio::awaitable<void> one(Shared& sh, size_t i) {
  auto ex = co_await asio::this_coro::executor;
  BenchResult& r = sh.results[i];
  error_code ec;
  tcp::socket s(ex);
  co_await s.async_connect(sh.endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    r.error = "connect: " + ec.message();
    co_return;
  }
  s.set_option(tcp::no_delay(true), ec);
  http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
  req.set(http::field::host, sh.host);
  req.set(http::field::content_type, "application/json");
  req.body() = sh.requests[i].body;
  req.prepare_payload();
  auto t0 = Clock::now();
  if (sh.first_send == Clock::time_point{}) sh.first_send = t0;
  co_await http::async_write(s, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    r.error = "write: " + ec.message();
    co_return;
  }
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(boost::none);
  co_await http::async_read_header(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || p.get().result_int() != 200) {
    r.error = ec ? "read: " + ec.message() : "status " + std::to_string(p.get().result_int());
    co_return;
  }
  char chunk[16384];
  std::string pending, error;
  bool done = false;
  Clock::time_point last{};
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    co_await http::async_read_some(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    pending.append(chunk, sizeof(chunk) - p.get().body().size);
    int tokens = take_events(pending, done, error);
    if (tokens > 0) {
      auto now = Clock::now();
      if (r.output_tokens == 0) r.ttft = secs(now - t0);
      else r.itl.push_back(secs(now - last));
      last = now;
      r.output_tokens += tokens;
    }
  }
  auto end = Clock::now();
  r.e2e = secs(end - t0);
  sh.last_done = std::max(sh.last_done, end);
  if (ec) r.error = "read: " + ec.message();
  else if (!error.empty()) r.error = error.substr(0, 300);
  else if (!done) r.error = "stream ended without [DONE]";
  else r.ok = true;
  s.shutdown(tcp::socket::shutdown_both, ec);
}

asio::awaitable<void> worker(Shared& sh) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  while (sh.next < sh.requests.size()) {
    size_t i = sh.next++;
    if (Clock::now() < sh.arrivals[i]) {
      t.expires_at(sh.arrivals[i]);
      error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_await one(sh, i);
  }
}

}  // namespace

BenchRun run_bench_client(const std::string& host, uint16_t port,
                          const std::vector<BenchRequest>& requests, double rate,
                          int max_concurrency, uint64_t seed) {
  asio::io_context ioc(1);
  Shared sh{requests, {}, std::vector<BenchResult>(requests.size()), 0, {}, host, {}, {}};
  tcp::resolver resolver(ioc);
  auto eps = resolver.resolve(host, std::to_string(port));
  sh.endpoint = *eps.begin();
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(std::isfinite(rate) && rate > 0 ? rate : 1.0);
  auto start = Clock::now() + std::chrono::milliseconds(10);
  double t = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    sh.arrivals.push_back(start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(t)));
    if (std::isfinite(rate) && rate > 0) t += gap(rng);
  }
  int workers = std::max(1, std::min<int>(max_concurrency, static_cast<int>(requests.size())));
  for (int w = 0; w < workers; ++w) asio::co_spawn(ioc, worker(sh), asio::detached);
  ioc.run();
  BenchRun run;
  run.duration = secs(sh.last_done - sh.first_send);
  run.results = std::move(sh.results);
  return run;
}

}  // namespace banyan::core::server
