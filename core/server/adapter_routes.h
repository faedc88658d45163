// Adapters over HTTP: vLLM's POST /v1/load_lora_adapter and /v1/unload_lora_adapter,
// GET /v1/models (the base model and every adapter, with "parent"), and LoRAX's
// on-demand local adapters. Every path is confined to adapters.allowed_roots.
#pragma once

#include "core/server/json_fields.h"
#include "core/server/route_result.h"

#include <filesystem>
#include <string>
#include <vector>

namespace banyan::core::server {

class ServerContext;

/// Resolves `path` (symlinks and "..") and checks that it lies inside one of
/// `roots` (resolved the same way). 403 outside every root, 404 when inside but
/// missing. `param` names the request field in errors.
std::filesystem::path confine_path(const std::string& path, const std::vector<std::string>& roots,
                                   const std::string& param);

HttpReply load_lora_adapter(ServerContext& ctx, const json& body);
HttpReply unload_lora_adapter(ServerContext& ctx, const json& body);
HttpReply list_models(ServerContext& ctx);

/// The adapter name for a LoRAX `adapter_source: "local"` path: registers the
/// confined directory on first use (named by its resolved path).
std::string local_adapter(ServerContext& ctx, const std::string& path, const std::string& param);

}  // namespace banyan::core::server
