#include "core/server/router.h"

#include "core/engine/engine.h"
#include "core/server/adapter_routes.h"
#include "core/server/admission.h"
#include "core/server/metrics.h"
#include "core/server/openai_api.h"
#include "core/server/server_context.h"
#include "core/server/tgi_api.h"
#include "core/server/vllm_api.h"

#include <banyan/error.h>

namespace banyan::core::server {

namespace {

bool is_tgi_path(std::string_view path) {
  return path == "/generate_stream" || path == "/" || path == "/info";
}

HttpReply not_found(std::string_view path) {
  return error_reply(ApiError(404, "no route for " + std::string(path), "not_found_error", "",
                              "route_not_found"),
                     ErrorShape::openai);
}

HttpReply method_not_allowed(std::string_view allow) {
  auto r = error_reply(ApiError(405, "method not allowed; use " + std::string(allow)),
                       ErrorShape::openai);
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

RouteResult reply(HttpReply r, std::string route) {
  RouteResult out;
  out.reply = std::move(r);
  out.route = std::move(route);
  return out;
}

bool generation_path(std::string_view p) {
  return p == "/v1/completions" || p == "/v1/chat/completions" || p == "/generate" ||
         p == "/generate_stream" || p == "/";
}

RouteResult dispatch(ServerContext& ctx, std::string_view method, std::string_view path,
                     std::string_view body, ErrorShape& shape) {
  std::string route(path);
  if (method == "GET" || method == "HEAD") {
    if (path == "/health") {
      if (ctx.draining)
        throw ApiError(503, "the server is shutting down", "service_unavailable");
      HttpReply r;
      r.content_type = "application/json";
      return reply(std::move(r), route);
    }
    if (path == "/metrics") {
      ServerGauges g{ctx.admission.active(), ctx.admission.waiting(), !ctx.draining};
      HttpReply r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = ctx.metrics.render(ctx.engine.stats(), ctx.engine.adapters(), g);
      return reply(std::move(r), route);
    }
    if (path == "/v1/models") return reply(list_models(ctx), route);
    if (path == "/info") return reply(tgi_info(ctx), route);
    if (path == "/version")
      return reply(json_reply(200, json{{"version", BANYAN_SERVER_VERSION}}.dump()), route);
    if (generation_path(path) || path == "/tokenize" || path == "/detokenize" ||
        path == "/v1/load_lora_adapter" || path == "/v1/unload_lora_adapter")
      return reply(method_not_allowed("POST"), route);
    return reply(not_found(path), "other");
  }
  if (method != "POST") {
    if (path == "/health" || path == "/metrics" || path == "/v1/models" || path == "/info")
      return reply(method_not_allowed("GET"), route);
    return reply(method_not_allowed("GET, POST"), "other");
  }
  bool known = generation_path(path) || path == "/tokenize" || path == "/detokenize" ||
               path == "/v1/load_lora_adapter" || path == "/v1/unload_lora_adapter";
  if (!known) {
    if (path == "/health" || path == "/metrics" || path == "/v1/models" || path == "/info")
      return reply(method_not_allowed("GET"), route);
    return reply(not_found(path), "other");
  }
  if (ctx.draining && generation_path(path))
    throw ApiError(503, "the server is shutting down", "service_unavailable");
  json j = parse_body_object(std::string(body));
  if (path == "/generate") {
    if (j.contains("inputs")) {
      shape = ErrorShape::tgi;
      return tgi_generate(ctx, j, TgiMode::generate);
    }
    return vllm_generate(ctx, j);
  }
  if (path == "/generate_stream") return tgi_generate(ctx, j, TgiMode::stream);
  if (path == "/") return tgi_generate(ctx, j, TgiMode::compat);
  if (path == "/v1/completions") return openai_completions(ctx, j);
  if (path == "/v1/chat/completions") return openai_chat(ctx, j);
  if (path == "/tokenize") return reply(vllm_tokenize(ctx, j), route);
  if (path == "/detokenize") return reply(vllm_detokenize(ctx, j), route);
  if (path == "/v1/load_lora_adapter") return reply(load_lora_adapter(ctx, j), route);
  return reply(unload_lora_adapter(ctx, j), route);
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Compare over the longer length so the time reveals nothing but the lengths.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

RouteResult route_request(ServerContext& ctx, const HttpRequestView& req) {
  std::string_view path = req.target.substr(0, req.target.find('?'));
  ErrorShape shape = is_tgi_path(path) ? ErrorShape::tgi : ErrorShape::openai;
  std::string route = generation_path(path) || path == "/health" || path == "/metrics" ||
                              path == "/v1/models" || path == "/info" || path == "/tokenize" ||
                              path == "/detokenize" || path == "/version" ||
                              path == "/v1/load_lora_adapter" || path == "/v1/unload_lora_adapter"
                          ? std::string(path)
                          : "other";
  try {
    if (!ctx.options.api_key.empty() && path != "/health" && path != "/metrics") {
      constexpr std::string_view kBearer = "Bearer ";
      std::string_view auth = req.authorization;
      bool ok = auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
                constant_time_equal(auth.substr(kBearer.size()), ctx.options.api_key);
      if (!ok) {
        ctx.metrics.rejected("unauthorized");
        auto r = error_reply(ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)",
                                      "authentication_error", "", "invalid_api_key"),
                             shape);
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return reply(std::move(r), route);
      }
    }
    return dispatch(ctx, req.method, path, req.body, shape);
  } catch (const ApiError& e) {
    if (e.status() == 503) ctx.metrics.rejected("draining");
    return reply(error_reply(e, shape), route);
  } catch (const banyan::Error& e) {
    int status = e.code() == banyan::Code::not_found       ? 404
                 : e.code() == banyan::Code::invalid_argument ? 400
                 : e.code() == banyan::Code::unsupported      ? 400
                                                              : 500;
    return reply(error_reply(ApiError(status, e.what(), status == 500 ? "server_error"
                                                                      : "invalid_request_error"),
                             shape),
                 route);
  } catch (const std::exception& e) {
    return reply(error_reply(ApiError(500, std::string("internal error: ") + e.what(), "server_error"),
                             shape),
                 route);
  }
}

HttpReply json_reply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpReply error_reply(const ApiError& e, ErrorShape shape) {
  HttpReply r = json_reply(e.status(), e.body(shape));
  if (e.status() == 429 || e.status() == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace banyan::core::server
