// The ModelRunner owns all device work of one model: the backend, the checkpoint's
// weights, the model plugin, the paged KV cache storage and the step arena. The
// engine builds a ForwardBatch per step (which blocks hold which sequence is the
// engine's decision) and calls execute().
//
// Thread-safety: not thread-safe; one engine thread drives it. Not copyable.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/decode_graphs.h"
#include "core/runtime/forward_batch.h"

#include <banyan/abi.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace banyan::core {

class PluginHost;
class KvCache;
class LinearRegistry;
class LinearProvider;
class WeightStore;
struct LinearSource;
struct LinearGroupSource;
struct FusedLinear;

struct ModelRunnerOptions {
  /// A Hugging Face model directory: config.json, model.safetensors (or shards with
  /// model.safetensors.index.json), optionally generation_config.json.
  std::filesystem::path model_dir;
  /// "cpu" (CUDA later: "cuda", "cuda:N").
  std::string device = "cpu";
  /// Model plugin name; empty: the model plugin whose "model_types" option lists
  /// config.json's model_type, else the plugin named like the model_type.
  std::string plugin;
  /// Plugin options as a JSON object, validated against the plugin's manifest.
  std::string plugin_options = "{}";
  /// Tokens per KV block.
  int32_t block_size = 16;
  /// KV cache blocks. 0: as many as kv_cache_bytes holds.
  int64_t num_blocks = 0;
  /// KV cache budget in bytes, used when num_blocks is 0. 0: on a GPU, what
  /// gpu_memory_utilization leaves after a warm-up (below); on the CPU, enough for
  /// four sequences of max_position_embeddings tokens, capped at 1 GiB.
  uint64_t kv_cache_bytes = 0;
  /// GPU sizing (num_blocks and kv_cache_bytes 0): after the weights are loaded and
  /// a profile step of profile_tokens tokens (the largest step the engine runs, for
  /// its activation peak) has run, the KV cache takes the free memory minus
  /// (1 - gpu_memory_utilization) of the total and minus device_reserve_bytes
  /// (e.g. the adapter pool, allocated later).
  double gpu_memory_utilization = 0.9;
  uint64_t device_reserve_bytes = 0;
  int32_t profile_tokens = 0;
  /// Run one token through the model at construction so every weight is loaded
  /// (and converted) before the first request.
  bool warm_up = true;
  /// CUDA graphs for decode steps (decode_graphs.h); mode eager: engine.enforce_eager.
  DecodeGraphOptions graphs;
  CpuBackendOptions cpu;
  /// Keep the weights of linears a model computes together (linear_n: q/k/v,
  /// gate/up) side by side and run them as one product (LinearRegistry::forward_n).
  /// Unset: the backend's preference (on for CUDA, off for the CPU).
  std::optional<bool> fuse_linears;
  /// Linear factories (quantizers) installed before the warm-up step, so that the
  /// modules they take never get a dense device copy. See linear.h (LinearFactory).
  std::vector<std::function<std::unique_ptr<LinearProvider>(const LinearSource&)>> linear_factories;
  /// Group factories (a quantizer's, fusing q/k/v or gate/up), installed with them.
  /// See linear.h (LinearGroupFactory).
  std::vector<std::function<FusedLinear(const LinearGroupSource&)>> linear_group_factories;
  /// Runs once the checkpoint is open, before the model plugin is created: e.g. a
  /// pre-quantized checkpoint declares the logical shapes of its packed weights
  /// (WeightStore::declare), so that the model checks them as usual.
  std::function<void(WeightStore&)> prepare_weights;
};

class ModelRunner {
 public:
  /// Loads everything. Throws banyan::Error naming the file, tensor, key or plugin.
  ModelRunner(const PluginHost& plugins, const ModelRunnerOptions& options);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  /// Runs one step and returns logits [R, V] f32 on the device, where
  /// R = batch.num_logits_rows(): for each sequence in batch.seqs order, the logits
  /// of its last logits_rows new tokens, in token order. Valid until the next call.
  /// Throws banyan::Error (invalid_argument) on an inconsistent batch, before any
  /// device work, and on a plugin failure (its message).
  Tensor execute(const ForwardBatch& batch);
  /// A step context for the ops that read the last step's logits (BanyanOpsV1.sample)
  /// from a decoding plugin, valid until the next execute(). Its other ops refuse
  /// (no batch).
  BanyanStepContext* decoding_context();
  /// Copies a device tensor of f32 (e.g. the logits) into host memory.
  std::vector<float> to_host(const Tensor& t);

  const BanyanModelSpec& spec() const { return spec_; }
  /// End-of-sequence ids: generation_config.json's eos_token_id, else config.json's.
  const std::vector<int32_t>& eos_token_ids() const { return eos_; }
  Device device() const;
  const std::string& model_type() const { return model_type_; }
  const std::string& plugin_name() const { return plugin_name_; }

  int32_t block_size() const;
  int64_t num_blocks() const;
  Backend& backend();
  KvCache& kv_cache();
  /// Where quantizers (factories) and adapters (hook) plug into linear layers.
  LinearRegistry& linears();
  WeightStore& weights();
  /// Decode graphs: the mode can change between steps (tests compare them).
  void set_graph_mode(GraphMode mode);
  DecodeGraphs::Stats graph_stats() const;

 private:
  void size_kv_from_memory(const ModelRunnerOptions& options, int32_t profile_tokens);
  /// Throws Error(internal) unless the plugin returned F32 [R, V] logits.
  Tensor check_logits(const Tensor& logits, int64_t R) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  BanyanModelSpec spec_{};
  std::vector<int32_t> eos_;
  std::string model_type_, plugin_name_;
};

}  // namespace banyan::core
