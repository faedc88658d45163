// vLLM's own routes: POST /generate (the api_server's {"prompt", "stream", sampling
// fields} -> {"text": [prompt + output, ...]}), POST /tokenize, POST /detokenize.
#pragma once

#include "core/server/json_fields.h"
#include "core/server/route_result.h"

namespace banyan::core::server {

class ServerContext;

RouteResult vllm_generate(ServerContext& ctx, const json& body);
HttpReply vllm_tokenize(ServerContext& ctx, const json& body);
HttpReply vllm_detokenize(ServerContext& ctx, const json& body);

}  // namespace banyan::core::server
