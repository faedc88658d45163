// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions and
// GET /v1/models. Parsing (JSON body -> GenerationJob) and presentation (JobResult
// -> JSON / SSE) only; no sockets.
#pragma once

#include "core/server/json_fields.h"
#include "core/server/route_result.h"

namespace banyan::core::server {

class ServerContext;

/// POST /v1/completions.
RouteResult openai_completions(ServerContext& ctx, const json& body);
/// POST /v1/chat/completions.
RouteResult openai_chat(ServerContext& ctx, const json& body);
/// GET /v1/models.
HttpReply openai_models(ServerContext& ctx);

}  // namespace banyan::core::server
