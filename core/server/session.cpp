#include "core/server/session.h"

#include "core/common/logging.h"
#include "core/server/metrics.h"
#include "core/server/router.h"
#include "core/server/server_context.h"

#include <boost/beast/http.hpp>

#include <chrono>

namespace banyan::core::server {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using asio::redirect_error;
using asio::use_awaitable;

namespace {

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

// A printable, bounded copy of client-supplied text for the log.
std::string printable(std::string_view s, size_t max = 200) {
  std::string o;
  for (char c : s.substr(0, max)) o += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) o += "...";
  return o;
}

}  // namespace

Session::Session(tcp::socket socket, Strand strand, ServerContext& ctx,
                 std::shared_ptr<Outbox> outbox)
    : socket_(std::move(socket)),
      strand_(std::move(strand)),
      ctx_(ctx),
      outbox_(std::move(outbox)),
      deadline_(strand_),
      wake_(std::make_shared<asio::steady_timer>(strand_)) {
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(tcp::no_delay(true), ec);
}

Session::~Session() = default;

void Session::arm(double s) {
  uint64_t gen = ++deadline_gen_;
  timed_out_ = false;
  deadline_.expires_after(seconds(s));
  deadline_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (ec || gen != self->deadline_gen_) return;
    self->timed_out_ = true;
    error_code ignored;
    self->socket_.cancel(ignored);
  });
}

void Session::disarm() {
  ++deadline_gen_;
  deadline_.cancel();
}

void Session::close_if_idle() {
  if (state_ == State::idle) close_now();
}

void Session::close_now() {
  error_code ignored;
  socket_.cancel(ignored);
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> Session::wait_wake() {
  error_code ec;
  wake_->expires_at(asio::steady_timer::time_point::max());
  co_await wake_->async_wait(redirect_error(use_awaitable, ec));
}

// Watches the socket while a job runs: end of stream or an error means the client
// went away. Bytes that arrive (a pipelined request) are kept for the next parse.
void Session::start_watch() {
  if (watch_pending_ || peer_gone_) return;
  watch_pending_ = true;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, size_t n) {
    self->watch_pending_ = false;
    if (ec) {
      if (!(ec == asio::error::operation_aborted && self->watch_cancelled_)) self->peer_gone_ = true;
    } else {
      self->buffer_.commit(n);
    }
    self->watch_cancelled_ = false;
    self->wake_->cancel();
  });
}

asio::awaitable<void> Session::stop_watch() {
  if (!watch_pending_) co_return;
  watch_cancelled_ = true;
  error_code ignored;
  socket_.cancel(ignored);
  while (watch_pending_) co_await wait_wake();
}

asio::awaitable<void> Session::run(std::shared_ptr<Session> self) {
  bool first = true;
  for (;;) {
    bool again = false;
    try {
      again = co_await serve_one(first);
    } catch (const std::exception& e) {
      log_error("http session " + remote_ + ": " + e.what());
      again = false;
    }
    if (!again) break;
    first = false;
  }
  error_code ignored;
  disarm();
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
}

// Reads and answers one request. Returns whether the connection stays open.
asio::awaitable<bool> Session::serve_one(bool first) {
  const auto& opt = ctx_.options;
  error_code ec;
  state_ = State::idle;
  if (ctx_.draining && buffer_.size() == 0 && !first) co_return false;
  if (buffer_.size() == 0) {
    // Wait for the first byte: keep-alive idle time is not header time.
    arm(first ? opt.header_timeout_s : opt.idle_timeout_s);
    size_t n = co_await socket_.async_read_some(buffer_.prepare(8192), redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    buffer_.commit(n);
  }
  state_ = State::reading;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(opt.max_header_bytes));
  parser.body_limit(opt.max_body_bytes);
  auto start = Clock::now();

  auto fail = [&](int status, const std::string& message) -> asio::awaitable<bool> {
    ApiError e(status, message, status == 408 ? "timeout_error" : "invalid_request_error");
    co_await write_reply(error_reply(e, ErrorShape::openai), false, 11);
    ctx_.metrics.http_request("malformed", status);
    log_access("-", "-", status, start);
    co_return false;
  };
  auto read_error = [&](error_code e) -> int {
    if (timed_out_) return 408;
    if (e == http::error::header_limit) return 431;
    if (e == http::error::body_limit) return 413;
    if (e == asio::error::connection_reset || e == asio::error::operation_aborted ||
        e == asio::error::broken_pipe)
      return 0;  // the client left: nothing to answer
    return 400;  // malformed, or the client half-closed mid-request
  };
  auto read_message = [&](int status) {
    switch (status) {
      case 408: return std::string("timed out reading the request");
      case 431: return "request headers larger than " + std::to_string(opt.max_header_bytes) + " bytes";
      case 413: return "request body larger than " + std::to_string(opt.max_body_bytes) + " bytes";
      default:
        return std::string(ec == http::error::partial_message || ec == http::error::end_of_stream
                               ? "incomplete HTTP request (the client closed its side)"
                               : "malformed HTTP request");
    }
  };

  arm(opt.header_timeout_s);
  co_await http::async_read_header(socket_, buffer_, parser, redirect_error(use_awaitable, ec));
  if (ec) {
    int status = read_error(ec);
    log_debug("http " + remote_ + ": read failed: " + ec.message());
    if (status == 0) co_return false;
    co_return co_await fail(status, read_message(status));
  }
  {
    auto& req = parser.get();
    if (req[http::field::expect] == "100-continue" && !parser.is_done()) {
      arm(opt.read_timeout_s);
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(socket_, asio::buffer(kContinue), redirect_error(use_awaitable, ec));
      if (ec) co_return false;
    }
  }
  if (!parser.is_done()) {
    arm(opt.read_timeout_s);
    co_await http::async_read(socket_, buffer_, parser, redirect_error(use_awaitable, ec));
    disarm();
  }
  if (ec) {
    int status = read_error(ec);
    log_debug("http " + remote_ + ": read failed: " + ec.message());
    if (status == 0) co_return false;
    co_return co_await fail(status, read_message(status));
  }

  state_ = State::busy;
  auto& req = parser.get();
  auto arrival = Clock::now();
  std::string method(req.method_string());
  std::string target(req.target());
  auto auth = req[http::field::authorization];
  HttpRequestView view{method, target, req.body(), std::string_view(auth.data(), auth.size())};
  RouteResult rr = route_request(ctx_, view);
  bool keep = req.keep_alive() && !ctx_.draining;
  chunked_ = req.version() >= 11;
  int status;
  if (rr.reply) {
    status = rr.reply->status;
    if (!co_await write_reply(*rr.reply, keep, req.version(), req.method() == http::verb::head))
      keep = false;
  } else {
    status = co_await run_job(rr, keep, req.version(), arrival);
  }
  ctx_.metrics.http_request(rr.route, status);
  log_access(method, target, status, start);
  co_return keep && !peer_gone_;
}

void Session::log_access(const std::string& method, const std::string& target, int status,
                         Clock::time_point start) const {
  if (!ctx_.options.access_log) return;
  auto ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  char dur[32];
  std::snprintf(dur, sizeof(dur), "%.1fms", ms);
  log_info(remote_ + " \"" + printable(method, 16) + " " + printable(target) + "\" " +
           std::to_string(status) + " " + dur);
}

asio::awaitable<bool> Session::write_reply(const HttpReply& reply, bool keep, unsigned version,
                                           bool head) {
  http::response<http::string_body> res{static_cast<http::status>(reply.status), version};
  res.set(http::field::server, "banyan");
  res.set(http::field::content_type, reply.content_type);
  for (const auto& [k, v] : reply.headers) res.set(k, v);
  res.keep_alive(keep);
  if (!head) res.body() = reply.body;
  res.prepare_payload();
  error_code ec;
  arm(ctx_.options.read_timeout_s);
  co_await http::async_write(socket_, res, redirect_error(use_awaitable, ec));
  disarm();
  co_return !ec;
}

asio::awaitable<bool> Session::write_stream_head(const std::string& content_type, bool keep,
                                                 unsigned version) {
  http::response<http::empty_body> res{http::status::ok, version};
  res.set(http::field::server, "banyan");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");
  if (chunked_) {
    res.chunked(true);
    res.keep_alive(keep);
  } else {
    res.keep_alive(false);
  }
  http::response_serializer<http::empty_body> sr{res};
  error_code ec;
  arm(ctx_.options.read_timeout_s);
  co_await http::async_write_header(socket_, sr, redirect_error(use_awaitable, ec));
  disarm();
  co_return !ec;
}

asio::awaitable<bool> Session::write_chunk(const std::string& data) {
  if (data.empty()) co_return true;
  error_code ec;
  arm(ctx_.options.read_timeout_s);
  if (chunked_)
    co_await asio::async_write(socket_, http::make_chunk(asio::buffer(data)),
                               redirect_error(use_awaitable, ec));
  else
    co_await asio::async_write(socket_, asio::buffer(data), redirect_error(use_awaitable, ec));
  disarm();
  co_return !ec;
}

asio::awaitable<bool> Session::write_last_chunk() {
  if (!chunked_) co_return true;
  error_code ec;
  arm(ctx_.options.read_timeout_s);
  co_await asio::async_write(socket_, http::make_chunk_last(), redirect_error(use_awaitable, ec));
  disarm();
  co_return !ec;
}

}  // namespace banyan::core::server
