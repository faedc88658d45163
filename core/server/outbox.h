// Where request sinks leave the engine's messages. The engine thread calls a sink per
// request per step; posting each message to its session's strand would cost the
// engine thread an allocation and often a thread wake-up per request and step. The
// outbox instead queues them under one short lock and posts a single drain task per
// batch; an I/O thread then hands each message to its session's strand.
//
// Thread-safety: push() from any thread (the engine's); drain runs on an I/O thread.
#pragma once

#include "core/server/session.h"

#include <memory>
#include <mutex>
#include <vector>

namespace banyan::core::server {

class Outbox : public std::enable_shared_from_this<Outbox> {
 public:
  explicit Outbox(asio::io_context& ioc) : ioc_(ioc) {}

  void push(const std::shared_ptr<JobChannel>& ch, size_t prompt, RequestOutput&& out);

  /// A sink for prompt `prompt` of the job behind `ch`.
  RequestSink sink(std::shared_ptr<JobChannel> ch, size_t prompt);

 private:
  struct Item {
    std::shared_ptr<JobChannel> ch;
    JobChannel::Item item;
  };
  void drain();

  asio::io_context& ioc_;
  std::mutex mu_;
  std::vector<Item> items_;
  bool scheduled_ = false;
};

}  // namespace banyan::core::server
