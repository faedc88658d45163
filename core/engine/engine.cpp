#include "core/engine/engine_impl.h"

#include "core/adapters/adapter_manager.h"

#include "core/common/logging.h"
#include "core/quant/quantization.h"
#include "core/runtime/kv_cache.h"
#include "core/runtime/step_context.h"

#include <banyan/error.h>
#include <banyan/rng.h>

#include <chrono>

namespace banyan::core {

std::unique_ptr<Engine> Engine::create(const Config& config) {
  return std::make_unique<EngineImpl>(config);
}

namespace {
std::string resolve_device(const std::string& device) {
  if (device != "auto") return device;
  return default_device();  // "cuda" when the CUDA backend is built in and a GPU is usable
}
}  // namespace

EngineImpl::EngineImpl(const Config& config) : config_(config) {
  if (!config.has("model.path") || config.get_string("model.path").empty())
    throw Error(Code::invalid_argument, "no model: give --model DIR or model.path in the YAML");
  const std::string model = config.get_string("model.path");
  std::vector<std::filesystem::path> search = PluginHost::default_search_paths();
  for (const auto& p : config.get_strings("plugins.search_paths")) search.emplace_back(p);
  plugins_.scan(search);
  for (const auto& e : plugins_.errors()) log_warn("plugin refused: " + e);

  if (!config.get_bool("model.skip_tokenizer_init")) {
    std::string tok_dir = config.has("model.tokenizer") ? config.get_string("model.tokenizer") : model;
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(tok_dir));
  }

  ModelRunnerOptions opt;
  opt.model_dir = model;
  opt.device = resolve_device(config.get_string("device"));
  opt.block_size = static_cast<int32_t>(config.get_int("engine.block_size"));
  // The KV cache: engine.kv_cache_bytes when given; else on the CPU
  // engine.cpu_kv_cache_bytes, on a GPU what engine.gpu_memory_utilization leaves
  // after the weights, the largest step's activations and the adapter pool.
  const bool on_cpu = opt.device == "cpu";
  opt.kv_cache_bytes = config.has("engine.kv_cache_bytes") ? config.get_bytes("engine.kv_cache_bytes")
                       : on_cpu ? config.get_bytes("engine.cpu_kv_cache_bytes")
                                : 0;
  opt.gpu_memory_utilization = config.get_number("engine.gpu_memory_utilization");
  opt.profile_tokens = static_cast<int32_t>(config.get_int("engine.max_num_batched_tokens"));
  if (config.get_bool("adapters.enabled")) opt.device_reserve_bytes = config.get_bytes("adapters.pool_bytes");
  opt.cpu.threads = static_cast<int>(config.get_int("engine.num_threads"));
  // CUDA graphs for decode steps (decode_graphs.h), up to the largest batch scheduled.
  opt.graphs.mode = config.get_bool("engine.enforce_eager") ? GraphMode::eager : GraphMode::graphs;
  opt.graphs.max_batch_size = static_cast<int32_t>(config.get_int("engine.max_num_seqs"));
  opt.graphs.max_context_len = static_cast<int32_t>(config.get_int("engine.max_seq_len_to_capture"));
  // Weight quantization (quantization.method, or the checkpoint's quantization_config).
  Quantization quant = make_quantization(plugins_, {model, config.get_string("quantization.method"),
                                                    config.get_int("quantization.group_size"),
                                                    config.get_mapping_json("quantization.options")});
  opt.linear_factories = quant.factories;
  opt.linear_group_factories = quant.group_factories;
  opt.prepare_weights = quant.prepare_weights;
  runner_ = std::make_unique<ModelRunner>(plugins_, opt);
  if (config.get_bool("adapters.enabled")) {
    AdapterManagerOptions ao;
    ao.pool_bytes = config.get_bytes("adapters.pool_bytes");
    ao.host_pool_bytes = config.get_bytes("adapters.host_pool_bytes");
    ao.max_rank = static_cast<int32_t>(config.get_int("adapters.max_lora_rank"));
    ao.plugin = config.get_string("adapters.plugin");
    adapters_ = std::make_unique<AdapterManager>(plugins_, *runner_, ao);
    for (const auto& a : config.get_adapters("adapters.preload")) adapters_->load(a.name, a.path);
  }

  blocks_ = std::make_unique<BlockManager>(static_cast<int32_t>(runner_->num_blocks()),
                                           runner_->block_size(),
                                           config.get_bool("engine.prefix_caching"));
  SchedulerConfig sc;
  sc.max_num_seqs = static_cast<int32_t>(config.get_int("engine.max_num_seqs"));
  sc.max_num_batched_tokens = static_cast<int32_t>(config.get_int("engine.max_num_batched_tokens"));
  sc.max_loras = static_cast<int32_t>(config.get_int("adapters.max_loras"));
  sc.priority = config.get_string("engine.scheduling_policy") == "priority";
  scheduler_ = std::make_unique<Scheduler>(sc, *blocks_);

  max_model_len_ = runner_->spec().max_position > 0 ? runner_->spec().max_position : 2048;
  if (config.has("model.max_model_len")) {
    int64_t want = config.get_int("model.max_model_len");
    if (want > max_model_len_)
      throw Error(Code::invalid_argument,
                  "model.max_model_len " + std::to_string(want) + " exceeds the model's " +
                      "max_position_embeddings " + std::to_string(max_model_len_));
    max_model_len_ = want;
  }
  served_name_ = config.has("model.served_model_name") ? config.get_string("model.served_model_name")
                                                       : model;
  eos_ = runner_->eos_token_ids();
  if (eos_.empty() && tokenizer_) eos_ = tokenizer_->eos_token_ids();
  default_seed_ = static_cast<uint64_t>(config.get_int("engine.seed"));
  seed_state_ = default_seed_;
  decoders_ = std::make_unique<Decoders>(plugins_, config.get_string("decoding.strategy"),
                                         config.get_string("decoding.beam_strategy"),
                                         config.get_mapping_json("decoding.options"),
                                         config.get_string("decoding.parallel_strategy"));
  stats_.num_kv_blocks = runner_->num_blocks();
  log_info("engine ready: model " + model + " (" + runner_->model_type() + ", plugin " +
           runner_->plugin_name() + ") on " + opt.device + ", " +
           std::to_string(runner_->num_blocks()) + " KV blocks of " +
           std::to_string(runner_->block_size()) + " tokens, max_model_len " +
           std::to_string(max_model_len_));
  thread_ = std::thread([this] { loop(); });
}

EngineImpl::~EngineImpl() { shutdown(false); }

void EngineImpl::submit(GenerationRequest req, RequestSink sink) {
  const auto& p = req.params;
  p.validate();
  if (req.prompt_ids.empty()) throw Error(Code::invalid_argument, "prompt: must not be empty");
  const int32_t vocab = runner_->spec().vocab_size;
  for (int32_t t : req.prompt_ids)
    if (t < 0 || t >= vocab)
      throw Error(Code::invalid_argument, "prompt: token id " + std::to_string(t) +
                                              " is out of range [0, " + std::to_string(vocab) + ")");
  const int64_t total = static_cast<int64_t>(req.prompt_ids.size()) + p.max_tokens;
  if (total > max_model_len_)
    throw Error(Code::invalid_argument,
                "This model's maximum context length is " + std::to_string(max_model_len_) +
                    " tokens. However, you requested " + std::to_string(total) + " tokens (" +
                    std::to_string(req.prompt_ids.size()) + " in the prompt, " +
                    std::to_string(p.max_tokens) + " for the completion). Please reduce the length.");
  const int64_t bs = runner_->block_size();
  if ((total + bs - 1) / bs > runner_->num_blocks())
    throw Error(Code::invalid_argument,
                "the request needs " + std::to_string((total + bs - 1) / bs) +
                    " KV blocks but the cache has " + std::to_string(runner_->num_blocks()));
  if (!req.adapter.empty() && !adapters_)
    throw Error(Code::not_found, "The model `" + req.adapter + "` does not exist.");
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= vocab)
      throw Error(Code::invalid_argument, "stop_token_ids: " + std::to_string(t) + " is out of range");

  auto g = std::make_unique<SequenceGroup>();
  g->sink = std::move(sink);
  g->metrics.arrival = req.arrival;
  if (p.use_beam_search) {
    g->kind = GroupKind::beam;
    g->width = p.n;
  } else if (p.n > 1 || p.best_of.value_or(1) > 1) {
    g->kind = GroupKind::parallel;
    g->width = std::max(p.n, p.best_of.value_or(p.n));
  }
  auto s = std::make_unique<Sequence>();
  s->group = g.get();
  s->tokens = req.prompt_ids;
  s->prompt_len = static_cast<int32_t>(req.prompt_ids.size());
  g->request = std::move(req);
  // Counts the request against its adapter (and reads the adapter into the host tier
  // if needed); released by finish_group, or below if the request is refused.
  if (!g->request.adapter.empty()) g->adapter_id = adapters_->begin_request(g->request.adapter);
  try {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error(Code::unsupported, "the engine is shutting down");
    if (!known_ids_.insert(g->request.request_id).second)
      throw Error(Code::invalid_argument, "request id " + g->request.request_id + " is already in use");
    const uint64_t seed =
        g->request.params.seed ? *g->request.params.seed : rng::splitmix64(seed_state_);
    rng::seed(s->rng, seed);
    g->decode_params = std::make_unique<DecodeParams>(g->request.params, eos_);
    s->id = next_seq_id();
    g->seqs.push_back(std::move(s));
    incoming_.push_back(std::move(g));
  } catch (...) {
    if (g && g->adapter_id) adapters_->end_request(g->adapter_id, false, 0);
    throw;
  }
  cv_.notify_one();
}

void EngineImpl::abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    if (!known_ids_.count(request_id)) return;
    aborts_.push_back(request_id);
  }
  cv_.notify_one();
}

const Tokenizer& EngineImpl::tokenizer() const {
  if (!tokenizer_)
    throw Error(Code::unsupported, "this engine runs without a tokenizer (skip_tokenizer_init): "
                                   "send token ids and expect no text");
  return *tokenizer_;
}

EngineStats EngineImpl::stats() const {
  EngineStats s;
  {
    std::lock_guard lock(mu_);
    s = stats_;
  }
  if (adapters_) {  // its own lock
    const AdapterPoolStats a = adapters_->stats();
    s.adapters = true;
    s.adapter_page_bytes = static_cast<int64_t>(a.page_bytes);
    s.adapter_pages_used = a.device_pages;
    s.adapter_pages_budget = a.device_budget_pages;
    s.adapter_reserved_bytes = static_cast<int64_t>(a.device_reserved_bytes);
    s.adapter_host_bytes = static_cast<int64_t>(a.host_bytes);
    s.adapter_loads = a.loads;
    s.adapter_evictions = a.evictions;
    s.adapter_over_budget = a.over_budget;
  }
  return s;
}

std::vector<AdapterInfo> EngineImpl::adapters() const {
  std::vector<AdapterInfo> out;
  if (!adapters_) return out;
  for (const auto& a : adapters_->list())
    out.push_back({a.name, a.path, a.rank, a.tier == AdapterTier::device, a.requests, a.tokens});
  return out;
}

void EngineImpl::load_adapter(const std::string& name, const std::string& path) {
  if (!adapters_)
    throw Error(Code::unsupported, "adapter \"" + name + "\": adapters are disabled (start with "
                                   "--enable-lora, or adapters.enabled: true)");
  adapters_->load(name, path);
}

void EngineImpl::unload_adapter(const std::string& name) {
  if (!adapters_) throw Error(Code::not_found, "adapter \"" + name + "\" is not loaded");
  adapters_->unload(name);
}

void EngineImpl::bind_adapters(const SchedulerOutput& out) {
  if (!adapters_) return;
  for (const auto& ss : out.seqs) {
    SequenceGroup& g = *ss.seq->group;
    if (!g.adapter_id || g.adapter_slot >= 0 || g.error) continue;
    try {
      g.adapter_slot = adapters_->acquire(g.adapter_id);
    } catch (const std::exception& e) {
      fail_group(g, "adapter \"" + g.request.adapter + "\": " + e.what());
    }
  }
}

void EngineImpl::shutdown(bool drain) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_ = drain;
    } else if (!drain) {
      drain_ = false;
    }
  }
  cv_.notify_one();
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
}

void EngineImpl::take_incoming() {
  std::deque<std::unique_ptr<SequenceGroup>> incoming;
  std::vector<std::string> aborts;
  {
    std::lock_guard lock(mu_);
    incoming.swap(incoming_);
    aborts.swap(aborts_);
  }
  for (auto& g : incoming) scheduler_->add(std::move(g));
  for (const auto& id : aborts) {
    if (auto g = scheduler_->remove(id)) {
      g->aborted = true;
      finish_group(std::move(g));
    }
  }
}

void EngineImpl::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return !incoming_.empty() || !aborts_.empty() || stopping_ || scheduler_->has_work();
      });
      if (stopping_ && !drain_) {
        for (auto& g : incoming_) {
          g->aborted = true;
          scheduler_->add(std::move(g));
        }
        incoming_.clear();
      }
    }
    take_incoming();
    bool stop_now = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_ && !drain_) {
        stop_now = true;
      } else if (stopping_ && incoming_.empty() && !scheduler_->has_work()) {
        break;
      }
    }
    if (stop_now) {
      for (SequenceGroup* g : scheduler_->groups()) g->aborted = true;
      for (auto& g : scheduler_->collect_finished()) finish_group(std::move(g));
      break;
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A failed step fails the requests it carried; the engine keeps serving.
      log_error(std::string("engine step failed: ") + e.what());
      for (SequenceGroup* g : scheduler_->groups())
        if (!g->error) fail_group(*g, std::string("engine error: ") + e.what());
      for (auto& g : scheduler_->collect_finished()) finish_group(std::move(g));
    }
  }
}

ForwardBatch EngineImpl::build_batch(const SchedulerOutput& out, std::vector<int32_t>& row_of) const {
  ForwardBatch b;
  const int32_t bs = runner_->block_size();
  row_of.clear();
  int32_t rows = 0;
  for (const auto& ss : out.seqs) {
    const Sequence& s = *ss.seq;
    SeqSlice slice;
    slice.query_start = b.num_tokens();
    slice.query_len = ss.num_new;
    slice.context_len = s.num_computed + ss.num_new;
    slice.block_offset = static_cast<int32_t>(b.block_tables.size());
    slice.num_blocks = static_cast<int32_t>(s.blocks.size());
    const bool want_prompt_lp = s.group->request.params.prompt_logprobs.has_value() &&
                                s.num_computed < s.prompt_len && !s.group->forked;
    slice.logits_rows = want_prompt_lp ? ss.num_new : (ss.sample ? 1 : 0);
    slice.adapter_slot = s.group->adapter_slot;
    row_of.push_back(rows);
    rows += slice.logits_rows;
    for (int32_t i = 0; i < ss.num_new; ++i) {
      int32_t pos = s.num_computed + i;
      b.token_ids.push_back(s.tokens[pos]);
      b.positions.push_back(pos);
      b.slot_mapping.push_back(s.blocks[pos / bs] * bs + pos % bs);
      b.adapter_slots.push_back(slice.adapter_slot);
    }
    b.block_tables.insert(b.block_tables.end(), s.blocks.begin(), s.blocks.end());
    b.seqs.push_back(slice);
  }
  return b;
}

void EngineImpl::copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& copies) {
  if (copies.empty()) return;
  // Copy-on-write of shared partial blocks (forks, beams): device-to-device copies
  // queued on the backend's stream, no trip through the host.
  KvCache& kv = runner_->kv_cache();
  Backend& be = runner_->backend();
  const size_t block_bytes =
      KvCache::bytes_per_block(kv.config()) / (2 * static_cast<size_t>(kv.config().num_layers));
  for (int32_t layer = 0; layer < kv.config().num_layers; ++layer) {
    for (const Tensor& pool : {kv.key(layer), kv.value(layer)}) {
      char* base = static_cast<char*>(pool.data);
      for (auto [src, dst] : copies)
        be.copy_2d(base + static_cast<size_t>(dst) * block_bytes, block_bytes,
                   base + static_cast<size_t>(src) * block_bytes, block_bytes, block_bytes, 1);
    }
  }
}

void EngineImpl::step() {
  using namespace std::chrono;
  auto t0 = steady_clock::now();
  SchedulerOutput out = scheduler_->schedule();
  auto t1 = steady_clock::now();
  int64_t prompt_tokens = 0;
  bool on_device = false;
  if (!out.empty()) {
    copy_blocks(out.copies);
    bind_adapters(out);
    std::vector<int32_t> row_of;
    ForwardBatch batch = build_batch(out, row_of);
    on_device = samples_on_device(out);
    Tensor logits = runner_->execute(batch);
    std::vector<float> host;
    DecodeOps ops{&StepContext::ops(), runner_->decoding_context()};
    if (!on_device) {
      // Beams, parallel first tokens, prompt logprobs or a host-only plugin: the
      // whole [R, V] block comes to the host.
      if (logits.numel() > 0) host = runner_->to_host(logits);
      logits = Tensor(host.data(), DType::f32, {logits.ndim == 2 ? logits.shape[0] : 0,
                                                 static_cast<int64_t>(runner_->spec().vocab_size)});
    }
    scheduler_->mark_computed(out);
    // Counted before process(): beam search drops (frees) the beams it does not keep.
    for (const auto& ss : out.seqs) {
      const int32_t before = ss.seq->num_computed - ss.num_new;
      prompt_tokens += std::max(0, std::min(ss.seq->num_computed, ss.seq->prompt_len) - before);
    }
    process(out, logits, row_of, on_device ? &ops : nullptr);
  }
  auto done = scheduler_->collect_finished();
  auto t2 = steady_clock::now();
  {
    std::lock_guard lock(mu_);
    update_stats_locked(prompt_tokens, duration<double>(t2 - t0).count(),
                        duration<double>(t1 - t0).count(), !out.empty(), on_device);
  }
  // Sinks run after the statistics are current: a caller woken by its final message
  // sees the blocks of its request already freed.
  for (auto& g : done) finish_group(std::move(g));
}

bool EngineImpl::samples_on_device(const SchedulerOutput& out) const {
  if (!decoders_->sampling_on_device()) return false;
  for (const auto& ss : out.seqs) {
    const Sequence& s = *ss.seq;
    const SequenceGroup& g = *s.group;
    // As build_batch decides the rows (before mark_computed).
    if (g.request.params.prompt_logprobs.has_value() && s.num_computed < s.prompt_len && !g.forked)
      return false;
    if (ss.sample && (g.kind == GroupKind::beam || (g.kind == GroupKind::parallel && !g.forked)))
      return false;
    // The sampling op has no typical filter: typical_p rows are drawn on the host.
    if (ss.sample && g.request.params.typical_p < 1.0) return false;
  }
  return true;
}

void EngineImpl::update_stats_locked(int64_t prompt_tokens, double step_s, double sched_s, bool ran,
                                     bool on_device) {
  stats_.steps += ran ? 1 : 0;
  stats_.device_sampling_steps += ran && on_device ? 1 : 0;
  stats_.bytes_to_host = static_cast<int64_t>(runner_->backend().bytes_to_host());
  stats_.running = static_cast<int>(scheduler_->num_running());
  stats_.waiting = static_cast<int>(scheduler_->num_waiting() + incoming_.size());
  stats_.kv_usage = blocks_->usage();
  stats_.prefix_cache_queries = blocks_->queries();
  stats_.prefix_cache_hits = blocks_->hits();
  stats_.preemptions = scheduler_->preemptions();
  stats_.step_seconds += step_s;
  stats_.schedule_seconds += sched_s;
  stats_.prompt_tokens += prompt_tokens;
}

}  // namespace banyan::core
