#include "core/server/adapter_routes.h"

#include "core/engine/engine.h"
#include "core/server/openai_common.h"
#include "core/server/server_context.h"

#include <banyan/error.h>

namespace banyan::core::server {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& p, const fs::path& root) {
  auto pi = p.begin();
  for (auto ri = root.begin(); ri != root.end(); ++ri, ++pi) {
    if (ri->empty()) continue;  // trailing separator
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

void require_adapters(const ServerContext& ctx) {
  if (!ctx.options.adapters_enabled)
    throw ApiError(400, "adapters are not enabled on this server (start it with --enable-lora)");
}

void check_name(const std::string& name, const ServerContext& ctx) {
  if (name.empty() || name.size() > 256) throw bad_field("lora_name", "must be 1 to 256 characters");
  for (unsigned char ch : name)
    if (ch < 0x20 || ch == 0x7f) throw bad_field("lora_name", "must not hold control characters");
  if (name == ctx.model_name)
    throw bad_field("lora_name", "\"" + name + "\" is the base model's name");
}

HttpReply text_reply(std::string text) {
  HttpReply r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(text);
  return r;
}

// engine errors: not_found -> 404, anything else about the adapter -> 400.
[[noreturn]] void rethrow_engine(const banyan::Error& e, const std::string& param) {
  if (e.code() == banyan::Code::not_found)
    throw ApiError(404, e.what(), "not_found_error", param, "adapter_not_found");
  if (e.code() == banyan::Code::internal || e.code() == banyan::Code::out_of_memory)
    throw ApiError(500, e.what(), "server_error", param);
  throw ApiError(400, e.what(), "invalid_request_error", param);
}

}  // namespace

fs::path confine_path(const std::string& path, const std::vector<std::string>& roots,
                      const std::string& param) {
  if (path.empty()) throw bad_field(param, "the path is empty");
  if (path.find('\0') != std::string::npos) throw bad_field(param, "the path holds a NUL byte");
  if (roots.empty())
    throw ApiError(403,
                   "loading adapters from paths is not allowed: no adapters.allowed_roots "
                   "(--allowed-lora-roots) configured",
                   "permission_error", param, "path_not_allowed");
  std::error_code ec;
  fs::path resolved = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) throw ApiError(400, "cannot resolve path: " + ec.message(), "invalid_request_error", param);
  bool ok = false;
  for (const auto& r : roots) {
    std::error_code rec;
    fs::path root = fs::weakly_canonical(fs::absolute(r, rec), rec);
    if (!rec && inside(resolved, root)) ok = true;
  }
  if (!ok)
    throw ApiError(403, "path \"" + path + "\" is outside the allowed adapter roots",
                   "permission_error", param, "path_not_allowed");
  if (!fs::is_directory(resolved, ec))
    throw ApiError(404, "no adapter directory at \"" + path + "\"", "not_found_error", param,
                   "adapter_not_found");
  return resolved;
}

HttpReply load_lora_adapter(ServerContext& ctx, const json& body) {
  require_adapters(ctx);
  Fields f(body);
  auto name = f.string("lora_name");
  auto path = f.string("lora_path");
  if (!name) throw bad_field("lora_name", "is required");
  if (!path) throw bad_field("lora_path", "is required");
  check_name(*name, ctx);
  fs::path dir = confine_path(*path, ctx.options.allowed_roots, "lora_path");
  if (ctx.has_adapter(*name))
    throw ApiError(400, "The lora adapter '" + *name + "' has already been loaded.",
                   "invalid_request_error", "lora_name", "adapter_exists");
  try {
    ctx.engine.load_adapter(*name, dir.string());
  } catch (const banyan::Error& e) {
    rethrow_engine(e, "lora_path");
  }
  ctx.forget_adapters();
  return text_reply("Success: LoRA adapter '" + *name + "' added successfully.");
}

HttpReply unload_lora_adapter(ServerContext& ctx, const json& body) {
  require_adapters(ctx);
  Fields f(body);
  auto name = f.string("lora_name");
  if (!name) throw bad_field("lora_name", "is required");
  if (!ctx.has_adapter(*name))
    throw ApiError(404, "The lora adapter '" + *name + "' cannot be found.", "not_found_error",
                   "lora_name", "adapter_not_found");
  try {
    ctx.engine.unload_adapter(*name);
  } catch (const banyan::Error& e) {
    rethrow_engine(e, "lora_name");
  }
  ctx.forget_adapters();
  return text_reply("Success: LoRA adapter '" + *name + "' removed successfully.");
}

HttpReply list_models(ServerContext& ctx) {
  json data = json::array();
  data.push_back({{"id", ctx.model_name},
                  {"object", "model"},
                  {"created", ctx.created},
                  {"owned_by", "banyan"},
                  {"root", ctx.options.model_path},
                  {"parent", nullptr},
                  {"max_model_len", ctx.engine.max_model_len()}});
  if (ctx.options.adapters_enabled) {
    for (const auto& a : ctx.engine.adapters()) {
      data.push_back({{"id", a.name},
                      {"object", "model"},
                      {"created", ctx.created},
                      {"owned_by", "banyan"},
                      {"root", a.path},
                      {"parent", ctx.model_name},
                      {"max_model_len", ctx.engine.max_model_len()}});
    }
  }
  return json_reply(200, dump(json{{"object", "list"}, {"data", std::move(data)}}));
}

std::string local_adapter(ServerContext& ctx, const std::string& path, const std::string& param) {
  require_adapters(ctx);
  fs::path dir = confine_path(path, ctx.options.allowed_roots, param);
  std::string name = dir.string();
  if (ctx.has_adapter(name)) return name;
  try {
    ctx.engine.load_adapter(name, name);
  } catch (const banyan::Error& e) {
    ctx.forget_adapters();
    if (ctx.has_adapter(name)) return name;  // another request registered it meanwhile
    rethrow_engine(e, param);
  }
  ctx.forget_adapters();
  return name;
}

}  // namespace banyan::core::server
