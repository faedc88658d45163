// `banyan run-batch -i IN.jsonl -o OUT.jsonl`: the OpenAI Batch file format, run
// offline through the engine. Each input line {"custom_id", "method": "POST", "url":
// "/v1/completions" | "/v1/chat/completions", "body"} gives one output line
// {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}.
// Bodies are parsed and answered by the same code as the HTTP routes; all lines run
// concurrently; a bad line gets its own error and the rest still run.
#include "core/cli/commands.h"

#if BANYAN_HAVE_ENGINE && BANYAN_HAVE_SERVER
#include "core/engine/engine.h"
#include "core/server/admission.h"
#include "core/server/api_error.h"
#include "core/server/job_result.h"
#include "core/server/metrics.h"
#include "core/server/openai_api.h"
#include "core/server/server_context.h"
#include "core/server/server_options.h"
#include "core/server/tokenizer_codec.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>

namespace banyan::cli {
namespace {

using nlohmann::json;
namespace srv = core::server;

struct Line {
  json custom_id;                       // as given (string expected; kept even if not)
  std::optional<json> response_body;    // ready answer (error or non-generation reply)
  int status = 200;
  std::optional<std::string> error;     // the line could not be processed at all
  srv::RouteResult route;
  std::unique_ptr<srv::JobResult> result;
  size_t pending = 0;                   // engine requests not finished
};

int run(const core::Config& config, const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path);
  if (!in) {
    std::cerr << "error: cannot read input file " << in_path << "\n";
    return 2;
  }
  std::ofstream out(out_path);
  if (!out) {
    std::cerr << "error: cannot write output file " << out_path << "\n";
    return 2;
  }
  auto engine = core::Engine::create(config);
  srv::TokenizerCodec codec(engine->tokenizer());
  srv::ServerMetrics metrics;
  srv::Admission admission(1 << 30, 0);
  srv::ServerContext ctx(*engine, codec, srv::ServerOptions::from_config(config), metrics, admission);

  std::mutex mu;
  std::condition_variable cv;
  size_t open_requests = 0;
  std::vector<std::unique_ptr<Line>> lines;
  std::string text;
  size_t line_no = 0;
  while (std::getline(in, text)) {
    ++line_no;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto line = std::make_unique<Line>();
    Line& l = *line;
    lines.push_back(std::move(line));
    json req;
    try {
      req = json::parse(text);
    } catch (const json::exception& e) {
      l.error = "line " + std::to_string(line_no) + ": invalid JSON: " + e.what();
      continue;
    }
    if (!req.is_object()) {
      l.error = "line " + std::to_string(line_no) + ": expected a JSON object";
      continue;
    }
    l.custom_id = req.value("custom_id", json());
    if (!l.custom_id.is_string()) {
      l.error = "line " + std::to_string(line_no) + ": custom_id must be a string";
      continue;
    }
    const std::string method = req.value("method", "");
    const std::string url = req.value("url", "");
    if (method != "POST") {
      l.error = "line " + std::to_string(line_no) + ": method must be \"POST\"";
      continue;
    }
    if (url != "/v1/completions" && url != "/v1/chat/completions") {
      l.error = "line " + std::to_string(line_no) + ": url must be /v1/completions or /v1/chat/completions, got \"" + url + "\"";
      continue;
    }
    if (!req.contains("body") || !req["body"].is_object()) {
      l.error = "line " + std::to_string(line_no) + ": body must be a JSON object";
      continue;
    }
    try {
      l.route = url == "/v1/completions" ? srv::openai_completions(ctx, req["body"])
                                         : srv::openai_chat(ctx, req["body"]);
      if (l.route.reply) {
        l.status = l.route.reply->status;
        l.response_body = json::parse(l.route.reply->body);
        continue;
      }
      srv::GenerationJob& job = *l.route.job;
      job.stream = false;  // a batch answers whole bodies
      l.result = std::make_unique<srv::JobResult>(job);
      size_t submitted = 0;
      try {
        for (size_t i = 0; i < job.prompts.size(); ++i) {
          core::GenerationRequest r;
          r.request_id = job.id + "-" + std::to_string(i);
          r.prompt_ids = job.prompts[i].ids;
          r.params = job.params;
          r.adapter = job.adapter;
          {
            std::lock_guard lock(mu);
            ++l.pending;
            ++open_requests;
          }
          engine->submit(std::move(r), [&, lp = &l, i](core::RequestOutput&& m) {
            std::lock_guard lock(mu);
            lp->result->apply(i, m);
            if (m.finished) {
              --lp->pending;
              --open_requests;
              cv.notify_all();
            }
          });
          ++submitted;
        }
      } catch (const banyan::Error& e) {
        std::lock_guard lock(mu);
        l.pending -= job.prompts.size() - submitted;
        open_requests -= job.prompts.size() - submitted;
        for (size_t i = 0; i < submitted; ++i) engine->abort(job.id + "-" + std::to_string(i));
        const bool nf = e.code() == Code::not_found;
        srv::ApiError err(nf ? 404 : 400, e.what(), nf ? "not_found_error" : "invalid_request_error",
                          nf ? "model" : "", nf ? "model_not_found" : "");
        l.status = err.status();
        l.response_body = json::parse(err.body(srv::ErrorShape::openai));
      }
    } catch (const srv::ApiError& e) {
      l.status = e.status();
      l.response_body = json::parse(e.body(srv::ErrorShape::openai));
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open_requests == 0; });
  }
  size_t failed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    Line& l = *lines[i];
    json o = {{"id", ctx.new_id("batch_req")}, {"custom_id", l.custom_id}};
    if (l.error) {
      ++failed;
      o["response"] = nullptr;
      o["error"] = {{"code", "invalid_request"}, {"message", *l.error}};
    } else {
      json body;
      if (l.response_body) {
        body = *l.response_body;
      } else {
        body = json::parse(l.route.presenter->full_body(*l.result));
        for (const auto& p : l.result->prompts())
          if (p.error) l.status = 500;
      }
      if (l.status >= 400) ++failed;
      o["response"] = {{"status_code", l.status},
                       {"request_id", l.route.job ? l.route.job->id : ctx.new_id("req")},
                       {"body", body}};
      o["error"] = nullptr;
    }
    out << o.dump() << "\n";
  }
  out.flush();
  engine->shutdown(true);
  std::cerr << "run-batch: " << lines.size() << " requests, " << failed << " failed\n";
  return out ? 0 : 1;
}

}  // namespace

void register_run_batch(CLI::App& app) {
  static DeploymentFlags flags;
  static std::string in, out;
  auto* cmd = app.add_subcommand("run-batch", "Run an OpenAI Batch file (JSONL) offline");
  cmd->add_option("-i,--input-file", in, "Input JSONL (OpenAI Batch format)")->required();
  cmd->add_option("-o,--output-file", out, "Output JSONL")->required();
  flags.add_to(*cmd);
  cmd->callback([] {
    std::vector<core::ConfigIssue> issues;
    core::Config config = flags.resolve(issues);
    if (!DeploymentFlags::report(issues)) {
      g_exit_code = 2;
      return;
    }
    g_exit_code = run(config, in, out);
  });
}

}  // namespace banyan::cli
#endif
