#include "core/server/batch_runner.h"

#include "core/common/logging.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/server/admission.h"
#include "core/server/entry_points.h"
#include "core/server/json_fields.h"
#include "core/server/metrics.h"
#include "core/server/openai_common.h"
#include "core/server/router.h"
#include "core/server/server_context.h"
#include "core/server/tokenizer_codec.h"

#include <banyan/error.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>

namespace banyan::core::server {

namespace {

struct Line {
  json custom_id;
  std::string request_id;
  RouteResult rr;
  std::unique_ptr<JobResult> result;
  std::optional<ApiError> error;     // refused before or at submission
  std::optional<std::string> fatal;  // the line itself is malformed
};

// Messages from the engine thread, applied on the calling thread.
struct Inbox {
  struct Item {
    size_t line, prompt;
    RequestOutput out;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> items;
};

json output_line(const Line& l, size_t index) {
  json out = {{"id", "batch_req_" + std::to_string(index)}, {"custom_id", l.custom_id},
              {"response", nullptr}, {"error", nullptr}};
  if (l.fatal) {
    out["error"] = {{"code", "invalid_line"}, {"message", *l.fatal}};
    return out;
  }
  if (l.error) {
    out["response"] = {{"status_code", l.error->status()}, {"request_id", l.request_id},
                       {"body", json::parse(l.error->body(ErrorShape::openai))}};
    out["error"] = {{"code", l.error->code().empty() ? l.error->type() : l.error->code()},
                    {"message", l.error->what()}};
    return out;
  }
  if (l.rr.reply) {
    json body = json::parse(l.rr.reply->body, nullptr, false);
    out["response"] = {{"status_code", l.rr.reply->status}, {"request_id", l.request_id},
                       {"body", body.is_discarded() ? json(l.rr.reply->body) : body}};
    if (l.rr.reply->status >= 400 && body.is_object() && body.contains("error") &&
        body["error"].is_object()) {
      const json& e = body["error"];
      json code = e.contains("code") && !e["code"].is_null() ? e["code"]
                                                             : json(e.value("type", "error"));
      out["error"] = {{"code", code}, {"message", e.value("message", "")}};
    }
    return out;
  }
  if (auto err = l.result->error()) {
    out["response"] = {{"status_code", 500}, {"request_id", l.request_id}, {"body", nullptr}};
    out["error"] = {{"code", "engine_error"}, {"message", *err}};
    return out;
  }
  out["response"] = {{"status_code", 200}, {"request_id", l.request_id},
                     {"body", json::parse(l.rr.presenter->full_body(*l.result))}};
  return out;
}

}  // namespace

size_t run_batch(ServerContext& ctx, std::istream& in, std::ostream& os) {
  std::vector<Line> lines;
  auto inbox = std::make_shared<Inbox>();
  size_t pending = 0;  // engine requests not finished yet
  std::string text;
  while (std::getline(in, text)) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Line& l = lines.emplace_back();
    size_t index = lines.size() - 1;
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      l.fatal = "line " + std::to_string(index + 1) + " is not a JSON object";
      continue;
    }
    l.custom_id = j.value("custom_id", json());
    std::string method = j.value("method", "POST");
    const json* url = j.contains("url") && j["url"].is_string() ? &j["url"] : nullptr;
    if (method != "POST" || !url ||
        (*url != "/v1/completions" && *url != "/v1/chat/completions")) {
      l.fatal = "line " + std::to_string(index + 1) +
                ": needs \"method\": \"POST\" and \"url\": \"/v1/completions\" or "
                "\"/v1/chat/completions\"";
      continue;
    }
    if (!j.contains("body") || !j["body"].is_object()) {
      l.fatal = "line " + std::to_string(index + 1) + ": \"body\" must be an object";
      continue;
    }
    json body = j["body"];
    body["stream"] = false;
    body.erase("stream_options");
    std::string body_text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string path = url->get<std::string>();
    l.rr = route_request(ctx, HttpRequestView{"POST", path, body_text, ""});
    if (!l.rr.job) continue;
    l.request_id = l.rr.job->id;
    l.result = std::make_unique<JobResult>(*l.rr.job);
    size_t submitted = 0;
    try {
      for (size_t p = 0; p < l.rr.job->prompts.size(); ++p) {
        GenerationRequest req;
        req.request_id = l.rr.job->id + "-" + std::to_string(p);
        req.prompt_ids = l.rr.job->prompts[p].ids;
        req.params = l.rr.job->params;
        req.adapter = l.rr.job->adapter;
        ctx.engine.submit(std::move(req), [inbox, index, p](RequestOutput&& out) {
          std::lock_guard lock(inbox->mu);
          inbox->items.push_back({index, p, std::move(out)});
          inbox->cv.notify_one();
        });
        ++submitted;
        ++pending;
      }
    } catch (const banyan::Error& e) {
      int status = e.code() == Code::not_found ? 404 : e.code() == Code::internal ? 500 : 400;
      l.error.emplace(status, e.what(), status == 500 ? "server_error" : "invalid_request_error");
      for (size_t p = 0; p < submitted; ++p)
        ctx.engine.abort(l.rr.job->id + "-" + std::to_string(p));
    }
  }
  // Collect until every submitted request has finished (aborted ones included).
  while (pending > 0) {
    std::deque<Inbox::Item> items;
    {
      std::unique_lock lock(inbox->mu);
      inbox->cv.wait(lock, [&] { return !inbox->items.empty(); });
      items.swap(inbox->items);
    }
    for (auto& it : items) {
      Line& l = lines[it.line];
      if (it.out.finished) --pending;
      if (l.result) l.result->apply(it.prompt, it.out);
    }
  }
  size_t failed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    json o = output_line(lines[i], i);
    if (!o["error"].is_null()) ++failed;
    os << o.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  return failed;
}

int run_batch_main(const Config& config, const std::string& input_path,
                   const std::string& output_path) {
#if BANYAN_SERVER_HAVE_ENGINE
  set_log_level(config.get_string("logging.level"));
  std::ifstream in(input_path);
  if (!in) {
    std::cerr << "error: cannot read " << input_path << "\n";
    return 2;
  }
  std::unique_ptr<Engine> engine;
  try {
    engine = Engine::create(config);
  } catch (const banyan::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.code() == Code::invalid_argument ? 2 : 1;
  }
  TokenizerCodec codec(engine->tokenizer());
  ServerOptions options = ServerOptions::from_config(config);
  options.api_key.clear();
  ServerMetrics metrics;
  Admission admission(options.max_concurrent_requests, options.max_waiting_requests);
  ServerContext ctx(*engine, codec, options, metrics, admission);
  std::ofstream out(output_path);
  if (!out) {
    std::cerr << "error: cannot write " << output_path << "\n";
    engine->shutdown(false);
    return 2;
  }
  size_t failed = run_batch(ctx, in, out);
  engine->shutdown(true);
  if (failed) log_warn(std::to_string(failed) + " line(s) failed; see their \"error\"");
  return 0;
#else
  (void)config;
  (void)input_path;
  (void)output_path;
  std::cerr << "error: `banyan run-batch` needs the engine, which this build does not have\n";
  return 1;
#endif
}

}  // namespace banyan::core::server
