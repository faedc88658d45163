// The outcome of routing one HTTP request: either a reply ready to send, or a
// generation job plus the presenter that will show its outputs.
#pragma once

#include "core/server/generation_job.h"
#include "core/server/presenter.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace banyan::core::server {

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct RouteResult {
  std::optional<HttpReply> reply;
  std::unique_ptr<GenerationJob> job;
  std::unique_ptr<Presenter> presenter;
  std::string route;  ///< the route's path pattern, for metrics and the access log
};

struct HttpRequestView {
  std::string_view method;
  std::string_view target;
  std::string_view body;
  std::string_view authorization;
};

/// A JSON reply.
HttpReply json_reply(int status, std::string body);
/// An error reply in the given shape; 429 and 503 carry Retry-After.
HttpReply error_reply(const ApiError& e, ErrorShape shape);

}  // namespace banyan::core::server
