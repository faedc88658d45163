// The engine: one thread that drives the device. Requests enter from any thread
// (submit), each with a sink receiving its streamed output; any request can be
// aborted at any time. Every step is schedule -> run -> process.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include "core/config/config.h"
#include "core/engine/request.h"

#include <memory>
#include <string>
#include <vector>

namespace banyan::core {

class Tokenizer;

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int swapped = 0;
  double kv_usage = 0;                ///< fraction of KV blocks in use
  int64_t num_kv_blocks = 0;
  int64_t prefix_cache_queries = 0;   ///< blocks looked up
  int64_t prefix_cache_hits = 0;      ///< blocks found
  int64_t prompt_tokens = 0;          ///< totals since start
  int64_t generation_tokens = 0;
  int64_t requests_finished = 0;
  int64_t preemptions = 0;
  double step_seconds = 0;            ///< total wall time of steps
  double schedule_seconds = 0;        ///< of which: scheduling
  int64_t steps = 0;                  ///< steps that ran the model
  int64_t bytes_to_host = 0;          ///< device → host copies (logits, sampled tokens)
  int64_t device_sampling_steps = 0;  ///< steps sampled where the logits are (no logits copy)
  /// The adapter pool (adapters.enabled only; see AdapterPoolStats): device pages.
  bool adapters = false;
  int64_t adapter_page_bytes = 0, adapter_pages_used = 0, adapter_pages_budget = 0;
  int64_t adapter_reserved_bytes = 0;  ///< device chunks held, free pages included
  int64_t adapter_host_bytes = 0;      ///< host tier
  int64_t adapter_loads = 0, adapter_evictions = 0, adapter_over_budget = 0;
};

struct AdapterInfo {
  std::string name;
  std::string path;
  int rank = 0;
  bool resident = false;   ///< on the device now
  int64_t requests = 0;
  int64_t tokens = 0;
};

class Engine {
 public:
  /// Loads the model, tokenizer and plugins named by the configuration and starts
  /// the engine thread. Throws banyan::Error naming what failed.
  static std::unique_ptr<Engine> create(const Config& config);
  virtual ~Engine() = default;

  /// Queues a request. Throws banyan::Error (invalid_argument) when it cannot run:
  /// prompt + max_tokens over max_model_len, bad parameters, unknown adapter.
  virtual void submit(GenerationRequest request, RequestSink sink) = 0;
  /// Aborts a request: its sink gets a final message with finish_reason "abort" and
  /// its KV blocks are freed at the next step. Unknown ids are ignored.
  virtual void abort(const std::string& request_id) = 0;

  /// Throws banyan::Error when the engine runs without a tokenizer
  /// (model.skip_tokenizer_init).
  virtual const Tokenizer& tokenizer() const = 0;
  virtual bool has_tokenizer() const = 0;
  virtual std::string served_model_name() const = 0;
  virtual int64_t max_model_len() const = 0;
  virtual EngineStats stats() const = 0;
  virtual std::vector<AdapterInfo> adapters() const = 0;
  /// Registers an adapter at runtime (path already confined by the caller).
  virtual void load_adapter(const std::string& name, const std::string& path) = 0;
  virtual void unload_adapter(const std::string& name) = 0;

  /// Stops accepting requests, lets running ones finish (drain) or aborts them,
  /// and joins the engine thread.
  virtual void shutdown(bool drain) = 0;
};

}  // namespace banyan::core
