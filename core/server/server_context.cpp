#include "core/server/server_context.h"

#include "core/engine/engine.h"
#include "core/server/api_error.h"

#include <chrono>
#include <cstdio>
#include <random>

namespace banyan::core::server {

namespace {
int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ServerContext::ServerContext(Engine& e, const TextCodec& c, ServerOptions o, ServerMetrics& m,
                             Admission& a)
    : engine(e),
      codec(c),
      options(std::move(o)),
      metrics(m),
      admission(a),
      created(unix_now()),
      model_name(e.served_model_name()) {
  std::random_device rd;
  salt_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

std::string ServerContext::new_id(const char* prefix) {
  uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  // splitmix64 of the counter, keyed by a per-process salt: unique and unguessable enough.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(mix(n ^ salt_)),
                static_cast<unsigned long long>(n));
  return std::string(prefix) + "-" + buf;
}

bool ServerContext::has_adapter(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    if (adapter_names_.count(name)) return true;
  }
  std::set<std::string> names;
  for (const auto& a : engine.adapters()) names.insert(a.name);
  std::lock_guard lock(mu_);
  adapter_names_ = std::move(names);
  return adapter_names_.count(name) > 0;
}

void ServerContext::forget_adapters() {
  std::lock_guard lock(mu_);
  adapter_names_.clear();
}

std::string ServerContext::resolve_model(const std::optional<std::string>& model,
                                         const char* param) {
  if (!model || model->empty() || *model == model_name || *model == options.model_path) return "";
  // TGI serves one model and ignores `model`; its clients send "tgi" or the endpoint URL.
  if (*model == "tgi" || model->rfind("http://", 0) == 0 || model->rfind("https://", 0) == 0)
    return "";
  if (options.adapters_enabled && has_adapter(*model)) return *model;
  throw ApiError(404, "The model `" + *model + "` does not exist.", "not_found_error", param,
                 "model_not_found");
}

}  // namespace banyan::core::server
