#include "core/engine/llm.h"

#include "core/tokenizer/tokenizer.h"

#include <banyan/error.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace banyan {
namespace {
core::Config config_for(const std::string& model, const std::string& device) {
  core::Config c;
  std::vector<core::ConfigIssue> issues;
  c.set_from_text("model.path", {model}, "LLM(model)", issues);
  c.set_from_text("device", {device}, "LLM(device)", issues);
  if (!issues.empty()) throw Error(issues.front().str());
  return c;
}
std::atomic<uint64_t> g_counter{0};
}  // namespace

LLM::LLM(const std::string& model, const std::string& device)
    : LLM(config_for(model, device)) {}
LLM::LLM(const core::Config& config) : engine_(core::Engine::create(config)) {}
LLM::~LLM() = default;

std::vector<RequestOutput> LLM::generate(const std::vector<std::string>& prompts,
                                         const SamplingParams& params, const std::string& adapter) {
  std::vector<std::vector<int32_t>> ids;
  for (const auto& p : prompts) ids.push_back(engine_->tokenizer().encode(p, true));
  auto out = generate(ids, params, adapter);
  for (size_t i = 0; i < out.size(); ++i) out[i].prompt = prompts[i];
  return out;
}

std::vector<RequestOutput> LLM::generate(const std::vector<std::vector<int32_t>>& prompts,
                                         const SamplingParams& params, const std::string& adapter) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    std::vector<core::RequestResult> results;
  };
  auto shared = std::make_shared<Shared>();
  shared->results.resize(prompts.size());
  size_t submitted = 0;
  const uint64_t batch = ++g_counter;
  std::optional<Error> failure;
  for (size_t i = 0; i < prompts.size(); ++i) {
    core::GenerationRequest req;
    req.request_id = "llm-" + std::to_string(batch) + "-" + std::to_string(i);
    req.prompt_ids = prompts[i];
    req.params = params;
    req.adapter = adapter;
    try {
      engine_->submit(std::move(req), [shared, i](core::RequestOutput&& m) {
        std::lock_guard lock(shared->mu);
        bool fin = m.finished;
        shared->results[i].add(std::move(m));
        if (fin) {
          ++shared->done;
          shared->cv.notify_all();
        }
      });
      ++submitted;
    } catch (const Error& e) {
      failure = Error(e.code(), "prompt " + std::to_string(i) + ": " + e.what());
      break;
    }
  }
  if (failure) {  // abort what was queued, wait for it, report the refusal
    for (size_t i = 0; i < submitted; ++i)
      engine_->abort("llm-" + std::to_string(batch) + "-" + std::to_string(i));
  }
  std::unique_lock lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done == submitted; });
  if (failure) throw *failure;
  std::vector<RequestOutput> out(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto& r = shared->results[i];
    if (r.error) throw Error(Code::internal, "prompt " + std::to_string(i) + ": " + *r.error);
    out[i].request_id = r.request_id;
    out[i].prompt_token_ids = prompts[i];
    out[i].outputs = std::move(r.outputs);
    out[i].prompt_logprobs = std::move(r.prompt_logprobs);
    if (engine_->has_tokenizer()) out[i].prompt = engine_->tokenizer().decode(prompts[i], false);
  }
  return out;
}

}  // namespace banyan
