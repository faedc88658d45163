// One HTTP/1.1 connection, run as a coroutine on its own strand: reads requests
// under header/body timeouts and size limits, routes them, answers directly or
// runs a generation job (streamed or whole), and aborts the job when the client
// goes away. Internal to the server; include only from .cpp files.
#pragma once

#include "core/engine/request.h"
#include "core/server/route_result.h"

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <deque>
#include <memory>
#include <string>

namespace banyan::core::server {

class ServerContext;
class Outbox;

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;

/// The engine's messages for one job, delivered on the session's strand.
struct JobChannel {
  struct Item {
    size_t prompt;
    RequestOutput out;
    Clock::time_point at;  ///< when the engine emitted it
  };
  JobChannel(Strand s, std::shared_ptr<asio::steady_timer> w) : strand(std::move(s)), wake(std::move(w)) {}
  Strand strand;
  std::shared_ptr<asio::steady_timer> wake;
  std::deque<Item> queue;
  bool granted = false;  ///< admission slot granted while queued
  void notify() { wake->cancel(); }
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Strand strand, ServerContext& ctx, std::shared_ptr<Outbox> outbox);
  ~Session();

  /// The connection's coroutine; `self` (this session) keeps it alive meanwhile.
  asio::awaitable<void> run(std::shared_ptr<Session> self);
  /// Closes the connection if it waits for a request (drain). Call on the strand.
  void close_if_idle();
  /// Closes the connection whatever it does. Call on the strand.
  void close_now();
  const Strand& strand() const { return strand_; }

 private:
  enum class State { idle, reading, busy };

  asio::awaitable<bool> serve_one(bool first);
  asio::awaitable<int> run_job(RouteResult& rr, bool& keep, unsigned version,
                               Clock::time_point arrival);
  asio::awaitable<bool> write_reply(const HttpReply& reply, bool keep, unsigned version,
                                    bool head = false);
  asio::awaitable<bool> write_stream_head(const std::string& content_type, bool keep,
                                          unsigned version);
  asio::awaitable<bool> write_chunk(const std::string& data);
  asio::awaitable<bool> write_last_chunk();
  asio::awaitable<void> wait_wake();
  asio::awaitable<void> stop_watch();
  void start_watch();
  void arm(double seconds);
  void disarm();
  void log_access(const std::string& method, const std::string& target, int status,
                  Clock::time_point start) const;

  tcp::socket socket_;
  Strand strand_;
  ServerContext& ctx_;
  std::shared_ptr<Outbox> outbox_;
  boost::beast::flat_buffer buffer_;
  asio::steady_timer deadline_;
  uint64_t deadline_gen_ = 0;
  bool timed_out_ = false;
  std::shared_ptr<asio::steady_timer> wake_;
  bool watch_pending_ = false, watch_cancelled_ = false;
  bool peer_gone_ = false;
  bool chunked_ = true;
  State state_ = State::idle;
  std::string remote_;
};

}  // namespace banyan::core::server
