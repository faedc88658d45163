// Session::run_job: admission, submission to the engine, and delivery of the
// engine's messages (whole or streamed) until the job ends or the client leaves.
#include "core/engine/engine.h"
#include "core/server/admission.h"
#include "core/server/metrics.h"
#include "core/server/outbox.h"
#include "core/server/server_context.h"
#include "core/server/session.h"

#include <banyan/error.h>

namespace banyan::core::server {

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Frees the admission slot when the job ends, however it ends.
struct SlotGuard {
  Admission& admission;
  bool held = true;
  ~SlotGuard() {
    if (held) admission.release();
  }
};

// Per-prompt timing kept while the job runs, turned into metrics at its end.
struct PromptTimer {
  Clock::time_point first_token{}, last_token{};
  RequestTiming timing;
  void on_tokens(Clock::time_point at) {
    if (first_token == Clock::time_point{}) first_token = at;
    else timing.inter_token.push_back(secs(at - last_token));
    last_token = at;
  }
};

bool has_tokens(const RequestOutput& out) {
  for (const auto& d : out.outputs)
    if (!d.token_ids.empty()) return true;
  return false;
}

int status_of(const banyan::Error& e) {
  switch (e.code()) {
    case banyan::Code::not_found: return 404;
    case banyan::Code::invalid_argument:
    case banyan::Code::unsupported: return 400;
    case banyan::Code::out_of_memory: return 503;
    default: return 500;
  }
}

}  // namespace

asio::awaitable<int> Session::run_job(RouteResult& rr, bool& keep, unsigned version,
                                      Clock::time_point arrival) {
  GenerationJob& job = *rr.job;
  Presenter& presenter = *rr.presenter;
  auto ch = std::make_shared<JobChannel>(strand_, wake_);

  // Admission: a slot now, a place in the queue, or 429.
  uint64_t ticket = 0;
  auto admitted = ctx_.admission.acquire(
      [ch] { asio::post(ch->strand, [ch] { ch->granted = true; ch->notify(); }); }, ticket);
  if (admitted == Admission::Result::rejected) {
    ctx_.metrics.rejected("queue_full");
    ApiError e(429, "too many requests waiting; retry later", "rate_limit_error", "",
               "queue_full");
    if (!co_await write_reply(error_reply(e, presenter.error_shape()), keep, version)) keep = false;
    co_return 429;
  }
  if (admitted == Admission::Result::queued) {
    start_watch();
    while (!ch->granted && !peer_gone_) co_await wait_wake();
    if (!ch->granted) {
      if (!ctx_.admission.cancel(ticket)) ctx_.admission.release();
      ctx_.metrics.client_disconnect();
      keep = false;
      co_return 499;
    }
  }
  SlotGuard slot{ctx_.admission};

  // Submission: one engine request per prompt.
  auto engine_id = [&](size_t i) { return job.id + "-" + std::to_string(i); };
  size_t submitted = 0;
  std::optional<ApiError> submit_error;
  try {
    for (size_t i = 0; i < job.prompts.size(); ++i) {
      GenerationRequest req;
      req.request_id = engine_id(i);
      req.prompt_ids = job.prompts[i].ids;
      req.params = job.params;
      req.adapter = job.adapter;
      req.arrival = arrival;
      ctx_.engine.submit(std::move(req), outbox_->sink(ch, i));
      ++submitted;
    }
  } catch (const banyan::Error& e) {
    int status = status_of(e);
    submit_error.emplace(status, e.what(),
                         status == 404  ? "not_found_error"
                         : status >= 500 ? "server_error"
                                         : "invalid_request_error",
                         status == 404 ? "model" : "", status == 404 ? "model_not_found" : "");
  }
  if (submit_error) {
    for (size_t i = 0; i < submitted; ++i) ctx_.engine.abort(engine_id(i));
    co_await stop_watch();
    if (!co_await write_reply(error_reply(*submit_error, presenter.error_shape()), keep, version))
      keep = false;
    co_return submit_error->status();
  }

  JobResult result(job);
  std::vector<PromptTimer> timers(job.prompts.size());
  auto finish_prompt = [&](size_t i, const RequestOutput& out, Clock::time_point at) {
    auto& t = timers[i];
    const auto& m = out.metrics;
    Clock::time_point zero{};
    t.timing.queue = m.first_scheduled != zero ? secs(m.first_scheduled - arrival) : -1;
    t.timing.ttft = m.first_token != zero ? secs(m.first_token - arrival)
                    : t.first_token != zero ? secs(t.first_token - arrival) : -1;
    t.timing.e2e = secs((m.finished != zero ? m.finished : at) - arrival);
    std::vector<std::string> reasons;
    for (const auto& c : result.prompts()[i].choices) reasons.push_back(c.finish_reason.value_or("abort"));
    ctx_.metrics.request_finished(reasons, result.prompts()[i].prompt_tokens,
                                  result.prompts()[i].completion_tokens, t.timing);
  };

  const bool streaming = job.stream;
  if (streaming) {
    bool ok = co_await write_stream_head(presenter.stream_content_type(), keep, version);
    if (ok) ok = co_await write_chunk(presenter.stream_begin(result));
    if (!ok) peer_gone_ = true;
  }
  start_watch();
  while (!result.finished() && !peer_gone_) {
    if (ch->queue.empty()) co_await wait_wake();
    std::string frames;
    while (!ch->queue.empty()) {
      auto item = std::move(ch->queue.front());
      ch->queue.pop_front();
      result.apply(item.prompt, item.out);
      if (has_tokens(item.out)) timers[item.prompt].on_tokens(item.at);
      if (item.out.finished) finish_prompt(item.prompt, item.out, item.at);
      if (streaming) frames += presenter.stream_update(result, item.prompt, item.out);
    }
    if (streaming && !frames.empty() && !co_await write_chunk(frames)) peer_gone_ = true;
  }

  if (!result.finished()) {  // the client left: abort at once, its KV blocks go back
    for (size_t i = 0; i < job.prompts.size(); ++i)
      if (!result.prompts()[i].finished) ctx_.engine.abort(engine_id(i));
    ctx_.metrics.client_disconnect();
    keep = false;
    co_return 499;
  }

  int status = 200;
  if (streaming) {
    std::string tail;
    if (auto err = result.error()) tail += presenter.stream_error(ApiError(500, *err, "server_error"));
    tail += presenter.stream_end(result);
    bool ok = co_await write_chunk(tail);
    if (ok) ok = co_await write_last_chunk();
    if (!ok || !chunked_) keep = false;
  } else {
    co_await stop_watch();
    HttpReply reply;
    if (auto err = result.error()) {
      status = 500;
      reply = error_reply(ApiError(500, *err, "server_error"), presenter.error_shape());
    } else {
      reply = json_reply(200, presenter.full_body(result));
    }
    if (!co_await write_reply(reply, keep, version)) keep = false;
  }
  co_await stop_watch();
  co_return status;
}

}  // namespace banyan::core::server
