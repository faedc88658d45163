#include "core/runtime/model_runner.h"

#include "core/common/logging.h"
#include "core/plugin_host/plugin_host.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/decode_graphs.h"
#include "core/runtime/kv_cache.h"
#include "core/runtime/linear.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/step_context.h"
#include "core/runtime/step_layout.h"
#include "core/runtime/weight_store.h"

#include <banyan/error.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include <fstream>
#include <optional>
#include <sstream>

namespace banyan::core {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(Code::not_found, "cannot read " + path.string());
  try {
    json j = json::parse(in);
    if (!j.is_object()) throw Error(path.string() + ": expected a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
}

// eos_token_id may be an integer or a list of integers.
std::vector<int32_t> eos_ids(const json& j, const fs::path& file) {
  std::vector<int32_t> out;
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return out;
  auto one = [&](const json& v) {
    if (!v.is_number_integer())
      throw Error(file.string() + ": eos_token_id must be an integer or a list of integers");
    out.push_back(v.get<int32_t>());
  };
  if (it->is_array())
    for (const auto& v : *it) one(v);
  else
    one(*it);
  return out;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item.substr(item.find_first_not_of(' ')));
  return out;
}

// The model plugin for `model_type`: the one whose "model_types" option lists it,
// else the one named like it.
std::string pick_plugin(const PluginHost& host, const std::string& model_type,
                        const fs::path& config) {
  std::vector<std::string> known;
  for (const auto& p : host.plugins()) {
    if (p.kind != "model") continue;
    for (const auto& o : p.options) {
      if (o.name != "model_types" || o.default_json.empty()) continue;
      for (const auto& t : split_list(json::parse(o.default_json).get<std::string>())) {
        if (t == model_type) return p.name;
        known.push_back(t + " (" + p.name + ")");
      }
    }
  }
  if (host.find("model", model_type)) return model_type;
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  throw Error(Code::unsupported, config.string() + ": no model plugin handles model_type \"" +
                                     model_type + "\"" +
                                     (list.empty() ? "" : "; supported: " + list));
}

int32_t weight_info(void* ctx, const char* name, BanyanTensor* out) {
  if (!ctx || !name) return BANYAN_INVALID_ARGUMENT;
  try {
    Tensor t;
    if (!static_cast<WeightStore*>(ctx)->info(name, &t)) return BANYAN_NOT_FOUND;
    if (out) *out = t;
    return BANYAN_OK;
  } catch (const Error& e) {
    return static_cast<int32_t>(e.code());
  } catch (...) {
    return BANYAN_INTERNAL;
  }
}

}  // namespace

struct ModelRunner::Impl {
  std::unique_ptr<Backend> backend;
  std::optional<Checkpoint> checkpoint;
  std::optional<WeightStore> weights;
  std::optional<LinearRegistry> linears;
  BanyanHostV1 host{};
  PluginObject plugin;
  std::optional<KvCache> kv;
  std::optional<StepArena> arena;
  std::optional<RopeCache> rope;
  std::optional<DecodeGraphs> graphs;
  StepLayout layout;
  std::vector<int32_t> staging;
  uint64_t steps = 0;
  ForwardBatch no_batch;                       // what decoding_context() validates against
  std::unique_ptr<StepContext> decoding_ctx;  // created on first use (after KV sizing)

  ~Impl() {
    // The plugin goes first: it may hold views of weights and the host table.
    plugin = PluginObject();
  }
};

ModelRunner::ModelRunner(const PluginHost& plugins, const ModelRunnerOptions& o)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const fs::path config_path = o.model_dir / "config.json";
  json config = read_json(config_path);
  if (auto it = config.find("model_type"); it != config.end() && it->is_string())
    model_type_ = it->get<std::string>();
  if (model_type_.empty()) throw Error(config_path.string() + ": missing \"model_type\"");
  eos_ = eos_ids(config, config_path);
  if (fs::path gen = o.model_dir / "generation_config.json"; fs::exists(gen)) {
    auto ids = eos_ids(read_json(gen), gen);
    if (!ids.empty()) eos_ = ids;
  }

  m.backend = make_backend(o.device, o.cpu);
  m.checkpoint.emplace(o.model_dir);
  m.weights.emplace(*m.checkpoint, *m.backend);
  if (o.prepare_weights) o.prepare_weights(*m.weights);
  m.linears.emplace(*m.weights, *m.backend);
  if (o.fuse_linears) m.linears->set_fusion(*o.fuse_linears);
  for (const auto& f : o.linear_factories) m.linears->add_factory(f);
  for (const auto& f : o.linear_group_factories) m.linears->add_group_factory(f);

  plugin_name_ = o.plugin.empty() ? pick_plugin(plugins, model_type_, config_path) : o.plugin;
  const PluginInfo* info = plugins.find("model", plugin_name_);
  if (!info) throw Error(Code::not_found, "no model plugin named \"" + plugin_name_ + "\"");
  json user;
  try {
    user = json::parse(o.plugin_options.empty() ? "{}" : o.plugin_options);
  } catch (const json::exception& e) {
    throw Error("plugin options are not valid JSON: " + std::string(e.what()));
  }
  json opts = plugins.resolve_options(*info, user);
  opts["model_dir"] = o.model_dir.string();
  opts["config"] = config;
  opts["activation_dtype"] = std::string(dtype_name(m.backend->activation_dtype()));

  m.host.struct_size = sizeof(BanyanHostV1);
  m.host.abi_major = BANYAN_ABI_MAJOR;
  m.host.abi_minor = BANYAN_ABI_MINOR;
  m.host.log = &banyan_host_log;
  m.host.ops = &StepContext::ops();
  m.host.weights_ctx = &*m.weights;
  m.host.weight_info = &weight_info;
  m.plugin = plugins.create("model", plugin_name_, &m.host, opts.dump());

  BanyanError err{};
  spec_.struct_size = sizeof(BanyanModelSpec);
  check(m.plugin.iface<BanyanModelV1>()->describe(m.plugin.get(), &spec_, &err), err);
  if (spec_.num_layers <= 0 || spec_.num_kv_heads <= 0 || spec_.head_dim <= 0 ||
      spec_.vocab_size <= 0)
    throw Error(Code::internal, "model plugin \"" + plugin_name_ + "\" described an invalid model");

  KvCacheConfig kc;
  kc.num_layers = spec_.num_layers;
  kc.num_kv_heads = spec_.num_kv_heads;
  kc.head_dim = spec_.head_dim;
  kc.block_size = o.block_size;
  kc.dtype = m.backend->activation_dtype();
  if (o.block_size <= 0) throw Error("block_size must be positive");
  const auto memory = device_memory_info(*m.backend);
  const bool from_memory = o.num_blocks <= 0 && o.kv_cache_bytes == 0 && memory.has_value();
  const int32_t profile_tokens =
      static_cast<int32_t>(std::clamp<int64_t>(o.profile_tokens, 1, std::max<int64_t>(spec_.max_position, 1)));
  if (from_memory) {
    // A provisional cache for the warm-up and profile steps; resized below.
    kc.num_blocks = (profile_tokens + o.block_size - 1) / o.block_size + 1;
  } else if (o.num_blocks > 0) {
    kc.num_blocks = o.num_blocks;
  } else if (o.kv_cache_bytes > 0) {
    kc.num_blocks = KvCache::blocks_for_bytes(kc, o.kv_cache_bytes);
    if (kc.num_blocks == 0)
      throw Error("kv_cache_bytes " + std::to_string(o.kv_cache_bytes) +
                  " holds no block (one takes " + std::to_string(KvCache::bytes_per_block(kc)) +
                  " bytes)");
  } else {
    const int64_t per_seq = (std::max<int64_t>(spec_.max_position, 1) + o.block_size - 1) / o.block_size;
    kc.num_blocks = std::max<int64_t>(1, std::min<int64_t>(4 * per_seq, KvCache::blocks_for_bytes(kc, size_t{1} << 30)));
  }
  m.kv.emplace(*m.backend, kc);
  m.arena.emplace(*m.backend);
  m.rope.emplace(*m.backend);
  m.graphs.emplace(*m.backend, o.graphs);
  log_info("model " + o.model_dir.string() + ": " + model_type_ + " via plugin \"" + plugin_name_ +
           "\" on " + m.backend->name() + ", " + std::to_string(spec_.num_layers) + " layers, KV cache " +
           std::to_string(kc.num_blocks) + " blocks x " + std::to_string(kc.block_size) +
           " tokens (" + std::to_string(m.kv->bytes() >> 20) + " MiB)");

  if (o.warm_up || from_memory) {
    ForwardBatch b;
    b.token_ids = {0};
    b.positions = {0};
    b.slot_mapping = {0};
    b.block_tables = {0};
    b.seqs = {SeqSlice{0, 1, 1, 0, 1, 1, -1}};
    execute(b);
    log_info("weights on " + m.backend->name() + ": " +
             std::to_string(m.weights->device_bytes() >> 20) + " MiB");
  }
  if (from_memory) size_kv_from_memory(o, profile_tokens);
}

void ModelRunner::size_kv_from_memory(const ModelRunnerOptions& o, int32_t profile_tokens) {
  Impl& m = *impl_;
  if (profile_tokens > 1) {  // the activation peak of the largest step
    ForwardBatch b;
    const int32_t blocks = (profile_tokens + o.block_size - 1) / o.block_size;
    for (int32_t i = 0; i < profile_tokens; ++i) {
      b.token_ids.push_back(0);
      b.positions.push_back(i);
      b.slot_mapping.push_back(i);
    }
    for (int32_t j = 0; j < blocks; ++j) b.block_tables.push_back(j);
    b.seqs = {SeqSlice{0, profile_tokens, profile_tokens, 0, blocks, 1, -1}};
    execute(b);
  }
  m.backend->synchronize();
  const auto [free, total] = *device_memory_info(*m.backend);
  KvCacheConfig kc = m.kv->config();
  const double keep_free = (1.0 - o.gpu_memory_utilization) * static_cast<double>(total) +
                           static_cast<double>(o.device_reserve_bytes);
  const double budget = static_cast<double>(free) + static_cast<double>(m.kv->bytes()) - keep_free;
  const double per_block = static_cast<double>(KvCache::bytes_per_block(kc));
  const int64_t blocks = budget > per_block ? static_cast<int64_t>(budget / per_block) : 0;
  if (blocks < 1)
    throw Error(Code::out_of_memory,
                "no GPU memory left for the KV cache: " + std::to_string(free >> 20) + " MiB free of " +
                    std::to_string(total >> 20) + " MiB after loading the model, gpu_memory_utilization " +
                    std::to_string(o.gpu_memory_utilization) + " keeps " +
                    std::to_string(static_cast<int64_t>(keep_free) >> 20) +
                    " MiB free (adapter pool included); raise it or use a smaller model");
  kc.num_blocks = blocks;
  m.decoding_ctx.reset();
  m.kv.reset();
  m.kv.emplace(*m.backend, kc);
  log_info("KV cache sized from GPU memory: " + std::to_string(blocks) + " blocks x " +
           std::to_string(kc.block_size) + " tokens (" + std::to_string(m.kv->bytes() >> 20) +
           " MiB; " + std::to_string(free >> 20) + " MiB were free of " + std::to_string(total >> 20) +
           ", gpu_memory_utilization " + std::to_string(o.gpu_memory_utilization) + ")");
}

ModelRunner::~ModelRunner() = default;

Tensor ModelRunner::execute(const ForwardBatch& batch) {
  Impl& m = *impl_;
  validate_batch(batch, {m.kv->num_blocks(), m.kv->block_size(), spec_.vocab_size});
  const uint64_t step_id = ++m.steps;
  // The model on one (batch, layout): what eager steps run and graphs capture.
  auto forward = [&](const ForwardBatch& b, const StepLayout& layout) {
    StepContext step({*m.backend, *m.arena, *m.weights, *m.linears, *m.kv, *m.rope}, b, layout);
    BanyanTensor out{};
    BanyanError err{};
    int32_t rc = m.plugin.iface<BanyanModelV1>()->forward(m.plugin.get(), &StepContext::ops(),
                                                          &step, &out, &err);
    if (rc != BANYAN_OK)
      throw Error(static_cast<Code>(rc), "model plugin \"" + plugin_name_ + "\": " + err.message);
    step.finish();
    return check_logits(Tensor(out), b.num_logits_rows());
  };
  const DecodeGraphs::Env env{*m.arena, m.kv->key(0).data, m.kv->num_blocks(), m.kv->block_size(),
                              m.linears->adapter_hook(), m.rope->host_rows(batch)};
  if (auto logits = m.graphs->run(batch, env, step_id, m.layout, forward)) return *logits;
  m.arena->reset();
  m.layout = upload_layout(batch, *m.backend, *m.arena, m.staging);
  m.layout.step_id = step_id;
  return forward(batch, m.layout);
}

Tensor ModelRunner::check_logits(const Tensor& logits, int64_t R) const {
  if (logits.type() != DType::f32 || logits.ndim != 2 || logits.shape[0] != R)
    throw Error(Code::internal, "model plugin \"" + plugin_name_ + "\" returned logits " +
                                    std::string(dtype_name(logits.type())) +
                                    logits.shape_string() + ", expected F32[" +
                                    std::to_string(R) + ", V]");
  return logits;
}

BanyanStepContext* ModelRunner::decoding_context() {
  Impl& m = *impl_;
  if (!m.decoding_ctx)
    m.decoding_ctx = std::make_unique<StepContext>(
        StepResources{*m.backend, *m.arena, *m.weights, *m.linears, *m.kv, *m.rope}, m.no_batch,
        m.layout);
  return m.decoding_ctx.get();
}

std::vector<float> ModelRunner::to_host(const Tensor& t) {
  if (t.type() != DType::f32) throw Error("to_host: expected an f32 tensor");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  impl_->backend->download(out.data(), t.data, t.nbytes());
  return out;
}

void ModelRunner::set_graph_mode(GraphMode mode) { impl_->graphs->set_mode(mode); }
DecodeGraphs::Stats ModelRunner::graph_stats() const { return impl_->graphs->stats(); }

Device ModelRunner::device() const { return impl_->backend->device(); }
int32_t ModelRunner::block_size() const { return impl_->kv->block_size(); }
int64_t ModelRunner::num_blocks() const { return impl_->kv->num_blocks(); }
Backend& ModelRunner::backend() { return *impl_->backend; }
KvCache& ModelRunner::kv_cache() { return *impl_->kv; }
LinearRegistry& ModelRunner::linears() { return *impl_->linears; }
WeightStore& ModelRunner::weights() { return *impl_->weights; }

}  // namespace banyan::core
