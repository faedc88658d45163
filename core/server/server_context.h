// What every route handler may use: the engine, the text codec, the options, the
// metrics and the admission queue, plus model-name resolution and response ids.
//
// Thread-safety: every method may be called from any I/O thread.
#pragma once

#include "core/server/server_options.h"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace banyan::core {
class Engine;
}

namespace banyan::core::server {

class TextCodec;
class ServerMetrics;
class Admission;

class ServerContext {
 public:
  ServerContext(Engine& engine, const TextCodec& codec, ServerOptions options,
                ServerMetrics& metrics, Admission& admission);

  Engine& engine;
  const TextCodec& codec;
  const ServerOptions options;
  ServerMetrics& metrics;
  Admission& admission;
  const int64_t created;            ///< unix time the server started
  const std::string model_name;     ///< the served model name
  std::atomic<bool> draining{false};

  /// "prefix-<32 hex>", unique in this process.
  std::string new_id(const char* prefix);

  /// The adapter that a request's `model` (OpenAI) names: "" for the base model
  /// (also when absent). Throws ApiError 404 (model_not_found) for unknown names.
  std::string resolve_model(const std::optional<std::string>& model, const char* param = "model");
  /// Whether an adapter of this name is registered (refreshes from the engine).
  bool has_adapter(const std::string& name);
  /// Records a change made through the server (load or unload).
  void forget_adapters();

 private:
  std::atomic<uint64_t> counter_{0};
  uint64_t salt_;
  std::mutex mu_;
  std::set<std::string> adapter_names_;
};

}  // namespace banyan::core::server
