// The engine's implementation. engine.cpp: start-up, the request queue and the
// loop (schedule -> run -> process); step_process.cpp: turning logits into tokens,
// forks, beams, finish checks and the messages to each sink.
#pragma once

#include "core/engine/block_manager.h"
#include "core/engine/engine.h"
#include "core/engine/decoding.h"
#include "core/engine/scheduler.h"
#include "core/plugin_host/plugin_host.h"
#include "core/runtime/model_runner.h"
#include "core/tokenizer/tokenizer.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace banyan::core {

class AdapterManager;

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const Config& config);
  ~EngineImpl() override;

  void submit(GenerationRequest request, RequestSink sink) override;
  void abort(const std::string& request_id) override;
  const Tokenizer& tokenizer() const override;
  bool has_tokenizer() const override { return tokenizer_ != nullptr; }
  std::string served_model_name() const override { return served_name_; }
  int64_t max_model_len() const override { return max_model_len_; }
  EngineStats stats() const override;
  std::vector<AdapterInfo> adapters() const override;
  void load_adapter(const std::string& name, const std::string& path) override;
  void unload_adapter(const std::string& name) override;
  void shutdown(bool drain) override;
  /// The adapter manager (null unless adapters.enabled), for tests and metrics.
  const AdapterManager* adapter_manager() const { return adapters_.get(); }

 private:
  void loop();
  void step();
  void take_incoming();
  ForwardBatch build_batch(const SchedulerOutput& out, std::vector<int32_t>& row_of) const;
  void update_stats_locked(int64_t prompt_tokens, double step_s, double sched_s, bool ran,
                           bool on_device);
  /// Whether every logits row of the step is a plain sampling row and the sampling
  /// plugin takes device logits: then the logits stay where the step left them.
  bool samples_on_device(const SchedulerOutput& out) const;
  void copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& copies);
  /// Gives each newly scheduled group with an adapter its device slot (adapters).
  void bind_adapters(const SchedulerOutput& out);
  // step_process.cpp
  /// `logits`: host memory, or (with `on`) where the step left them, for steps
  /// samples_on_device() accepted.
  void process(const SchedulerOutput& out, const Tensor& logits, const std::vector<int32_t>& row_of,
               const DecodeOps* on);
  void process_beam(SequenceGroup& g, const Tensor& logits,
                    const std::vector<std::pair<Sequence*, int32_t>>& rows);
  void append_token(Sequence& s, const DecodedToken& t);
  void emit(SequenceGroup& g, bool final_message);
  void finish_group(std::unique_ptr<SequenceGroup> g);
  void fail_group(SequenceGroup& g, const std::string& message);
  int64_t next_seq_id() { return ++seq_counter_; }

  Config config_;
  PluginHost plugins_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<AdapterManager> adapters_;  ///< null unless adapters.enabled
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Decoders> decoders_;
  std::string served_name_;
  int64_t max_model_len_ = 0;
  std::vector<int32_t> eos_;
  uint64_t default_seed_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<SequenceGroup>> incoming_;
  std::vector<std::string> aborts_;
  std::set<std::string> known_ids_;  // submitted and not finished
  bool stopping_ = false, drain_ = true;
  EngineStats stats_;
  std::thread thread_;
  int64_t seq_counter_ = 0;
  uint64_t seed_state_ = 0;
};

}  // namespace banyan::core
