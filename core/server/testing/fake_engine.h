// A scripted Engine for protocol tests: no model, one engine thread that emits one
// token per step for every running request. Completion i of a request repeats the
// prompt's bytes (special tokens left out) from offset i, so each stream's expected
// text is known; '#' in the prompt acts as EOS. Stop strings, logprobs, n, aborts,
// adapters and KV-block accounting behave like the real engine's contract.
#pragma once

#include "core/engine/engine.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace banyan::core::server::testing {

class FakeEngine : public Engine {
 public:
  struct Options {
    std::string name = "fake-model";
    int64_t max_model_len = 4096;
    std::chrono::microseconds step{200};
    int max_running = 1 << 20;
    int block_size = 16;
    int64_t num_blocks = 1 << 20;
  };
  explicit FakeEngine(Options options);
  ~FakeEngine() override;

  void submit(GenerationRequest request, RequestSink sink) override;
  void abort(const std::string& request_id) override;
  const Tokenizer& tokenizer() const override;
  bool has_tokenizer() const override { return false; }
  std::string served_model_name() const override { return options_.name; }
  int64_t max_model_len() const override { return options_.max_model_len; }
  EngineStats stats() const override;
  std::vector<AdapterInfo> adapters() const override;
  void load_adapter(const std::string& name, const std::string& path) override;
  void unload_adapter(const std::string& name) override;
  void shutdown(bool drain) override;

  /// Stops producing tokens until resume() (requests stay running).
  void pause();
  void resume();
  int64_t blocks_in_use() const;
  int64_t submitted() const { return submitted_; }
  int64_t aborted() const { return aborted_; }
  /// CPU time the engine thread spent inside sinks, and the number of sink calls.
  double sink_seconds() const { return sink_ns_ * 1e-9; }
  int64_t sink_calls() const { return sink_calls_; }
  /// The last request submitted (copy), for tests of the parsing.
  GenerationRequest last_request() const;

 private:
  struct Running;
  void loop();
  bool step(Running& r, RequestOutput& out);
  int64_t blocks_of(const Running& r) const;

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Running>> requests_;
  std::map<std::string, AdapterInfo> adapters_;
  GenerationRequest last_;
  bool paused_ = false, stopping_ = false, accepting_ = true;
  std::atomic<int64_t> sink_ns_{0}, sink_calls_{0};
  std::atomic<int64_t> submitted_{0}, aborted_{0}, generated_{0}, prompt_tokens_{0}, finished_{0};
  std::thread thread_;
};

}  // namespace banyan::core::server::testing
