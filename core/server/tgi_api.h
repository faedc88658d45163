// Text Generation Inference routes: POST /generate with {"inputs", "parameters"},
// POST /generate_stream (SSE token events), POST / (stream flag decides), GET /info.
// Parameters include adapter_id and LoRAX's adapter_source "local" with a path.
// Errors use TGI's shape {"error", "error_type"}; validation errors are 422.
#pragma once

#include "core/server/json_fields.h"
#include "core/server/route_result.h"

namespace banyan::core::server {

class ServerContext;

enum class TgiMode { generate, stream, compat };

RouteResult tgi_generate(ServerContext& ctx, const json& body, TgiMode mode);
HttpReply tgi_info(ServerContext& ctx);

}  // namespace banyan::core::server
