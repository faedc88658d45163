#include "core/server/testing/fake_engine.h"

#include "core/server/testing/byte_codec.h"

#include <banyan/error.h>

#include <algorithm>
#include <ctime>

namespace banyan::core::server::testing {

namespace {
int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

struct FakeEngine::Running {
  GenerationRequest req;
  RequestSink sink;
  std::vector<int32_t> source;  // prompt bytes as ids, specials left out
  struct Choice {
    int produced = 0;
    std::string pending;  // text held back while it may start a stop string
    bool done = false;
    double cum = 0;
  };
  std::vector<Choice> choices;
  bool started = false, aborted = false, sent_prompt_logprobs = false;
  RequestMetrics metrics;
};

FakeEngine::FakeEngine(Options o) : options_(std::move(o)) {
  thread_ = std::thread([this] { loop(); });
}

FakeEngine::~FakeEngine() { shutdown(false); }

const Tokenizer& FakeEngine::tokenizer() const {
  throw banyan::Error(Code::unsupported, "the fake engine has no tokenizer");
}

void FakeEngine::submit(GenerationRequest request, RequestSink sink) {
  if (request.prompt_ids.empty()) throw banyan::Error("prompt is empty");
  if (static_cast<int64_t>(request.prompt_ids.size()) + request.params.max_tokens >
      options_.max_model_len)
    throw banyan::Error("prompt + max_tokens over max_model_len");
  std::lock_guard lock(mu_);
  if (!accepting_) throw banyan::Error(Code::unsupported, "engine is shutting down");
  if (!request.adapter.empty() && !adapters_.count(request.adapter))
    throw banyan::Error(Code::not_found, "unknown adapter " + request.adapter);
  if (requests_.count(request.request_id))
    throw banyan::Error("duplicate request id " + request.request_id);
  auto r = std::make_unique<Running>();
  for (auto id : request.prompt_ids)
    if (id >= ByteCodec::kOffset) r->source.push_back(id);
  if (r->source.empty()) r->source.push_back(ByteCodec::kOffset + '.');
  int width = std::max(request.params.n, request.params.best_of.value_or(1));
  r->choices.resize(static_cast<size_t>(request.params.n));
  (void)width;
  r->metrics.arrival = request.arrival;
  r->sink = std::move(sink);
  if (!request.adapter.empty()) ++adapters_[request.adapter].requests;
  last_ = request;
  r->req = std::move(request);
  prompt_tokens_ += static_cast<int64_t>(r->req.prompt_ids.size());
  requests_[r->req.request_id] = std::move(r);
  ++submitted_;
  cv_.notify_all();
}

void FakeEngine::abort(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(id);
  if (it != requests_.end()) it->second->aborted = true;
  cv_.notify_all();
}

// Advances one request by one token per unfinished choice. Returns true when the
// request has finished.
bool FakeEngine::step(Running& r, RequestOutput& out) {
  const auto& p = r.req.params;
  auto now = Clock::now();
  if (!r.started) {
    r.started = true;
    r.metrics.first_scheduled = now;
  }
  out.request_id = r.req.request_id;
  out.prompt_tokens = static_cast<int>(r.req.prompt_ids.size());
  if (p.prompt_logprobs && !r.sent_prompt_logprobs) {
    r.sent_prompt_logprobs = true;
    out.prompt_logprobs.push_back(std::nullopt);
    // Each prompt token at -1.0, below its prompt_logprobs alternatives 'A', 'B', ...
    // (at -0.1, -0.2, ...), so ranked after them.
    const int alts = *p.prompt_logprobs;
    for (size_t k = 1; k < r.req.prompt_ids.size(); ++k) {
      TokenLogprob t{r.req.prompt_ids[k], -1.0f, {}};
      for (int a = 0; a < alts; ++a)
        t.top.push_back({ByteCodec::kOffset + 'A' + a, -0.1f * static_cast<float>(a + 1)});
      t.rank = alts + 1;
      out.prompt_logprobs.push_back(std::move(t));
    }
  }
  size_t max_stop = 0;
  for (const auto& s : p.stop) max_stop = std::max(max_stop, s.size());
  bool all_done = true;
  for (size_t i = 0; i < r.choices.size(); ++i) {
    auto& c = r.choices[i];
    if (c.done) continue;
    CompletionDelta d;
    d.index = static_cast<int>(i);
    int32_t tok = r.source[(static_cast<size_t>(c.produced) + i) % r.source.size()];
    bool eos = !p.ignore_eos && tok == ByteCodec::kOffset + '#' && c.produced >= p.min_tokens;
    if (eos) tok = ByteCodec::kEos;
    ++c.produced;
    ++generated_;
    d.token_ids.push_back(tok);
    if (p.logprobs) {
      TokenLogprob lp{tok, -0.25f, {}};
      for (int k = 0; k < *p.logprobs; ++k)
        lp.top.push_back({k == 0 ? tok : ByteCodec::kOffset + 'a' + k, -0.25f - k});
      d.logprobs.push_back(lp);
      c.cum += -0.25;
    }
    d.cumulative_logprob = c.cum;
    if (eos) {
      d.text = c.pending;
      d.finish_reason = "stop";
      c.done = true;
    } else {
      c.pending.push_back(static_cast<char>(tok - ByteCodec::kOffset));
      for (const auto& s : p.stop) {
        auto pos = c.pending.find(s);
        if (pos != std::string::npos) {
          d.text = c.pending.substr(0, p.include_stop_str_in_output ? pos + s.size() : pos);
          d.finish_reason = "stop";
          d.stop_reason = s;
          c.done = true;
          break;
        }
      }
      if (!c.done && c.produced >= p.max_tokens) {
        d.text = c.pending;
        d.finish_reason = "length";
        c.done = true;
      } else if (!c.done) {
        size_t keep = max_stop > 0 ? max_stop - 1 : 0;
        if (c.pending.size() > keep) {
          d.text = c.pending.substr(0, c.pending.size() - keep);
          c.pending.erase(0, c.pending.size() - keep);
        }
      }
    }
    out.outputs.push_back(std::move(d));
    if (!c.done) all_done = false;
  }
  if (r.metrics.first_token == Clock::time_point{}) r.metrics.first_token = now;
  int total = 0;
  for (const auto& c : r.choices) total += c.produced;
  out.completion_tokens = total;
  if (!r.req.adapter.empty()) {
    auto it = adapters_.find(r.req.adapter);
    if (it != adapters_.end()) it->second.tokens += static_cast<int64_t>(r.choices.size());
  }
  return all_done;
}

void FakeEngine::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, options_.step, [&] { return stopping_; });
    if (stopping_ && requests_.empty()) return;
    std::vector<std::pair<RequestSink, RequestOutput>> sends;
    int running = 0;
    for (auto it = requests_.begin(); it != requests_.end();) {
      auto& r = *it->second;
      RequestOutput out;
      bool finished = false;
      if (r.aborted) {
        out.request_id = r.req.request_id;
        out.prompt_tokens = static_cast<int>(r.req.prompt_ids.size());
        for (size_t i = 0; i < r.choices.size(); ++i)
          if (!r.choices[i].done) {
            CompletionDelta d;
            d.index = static_cast<int>(i);
            d.finish_reason = "abort";
            out.outputs.push_back(d);
          }
        finished = true;
        ++aborted_;
      } else if (!paused_ && running < options_.max_running) {
        ++running;
        finished = step(r, out);
      } else {
        ++it;
        continue;
      }
      if (finished) {
        out.finished = true;
        r.metrics.finished = Clock::now();
        out.metrics = r.metrics;
        sends.emplace_back(std::move(r.sink), std::move(out));
        it = requests_.erase(it);
        ++finished_;
      } else {
        out.metrics = r.metrics;
        sends.emplace_back(r.sink, std::move(out));
        ++it;
      }
    }
    lock.unlock();
    int64_t t0 = thread_cpu_ns();
    for (auto& [sink, out] : sends) sink(std::move(out));
    sink_ns_ += thread_cpu_ns() - t0;
    sink_calls_ += static_cast<int64_t>(sends.size());
    lock.lock();
  }
}

int64_t FakeEngine::blocks_of(const Running& r) const {
  int64_t tokens = static_cast<int64_t>(r.req.prompt_ids.size());
  for (const auto& c : r.choices) tokens += c.produced;
  return (tokens + options_.block_size - 1) / options_.block_size;
}

int64_t FakeEngine::blocks_in_use() const {
  std::lock_guard lock(mu_);
  int64_t b = 0;
  for (const auto& [id, r] : requests_) b += blocks_of(*r);
  return b;
}

EngineStats FakeEngine::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s;
  int64_t blocks = 0;
  for (const auto& [id, r] : requests_) {
    if (r->started) ++s.running;
    else ++s.waiting;
    blocks += blocks_of(*r);
  }
  s.num_kv_blocks = options_.num_blocks;
  s.kv_usage = static_cast<double>(blocks) / static_cast<double>(options_.num_blocks);
  s.prompt_tokens = prompt_tokens_;
  s.generation_tokens = generated_;
  s.requests_finished = finished_;
  return s;
}

std::vector<AdapterInfo> FakeEngine::adapters() const {
  std::lock_guard lock(mu_);
  std::vector<AdapterInfo> out;
  for (const auto& [name, a] : adapters_) out.push_back(a);
  return out;
}

void FakeEngine::load_adapter(const std::string& name, const std::string& path) {
  std::lock_guard lock(mu_);
  if (adapters_.count(name)) throw banyan::Error("adapter " + name + " is already registered");
  adapters_[name] = AdapterInfo{name, path, 8, false, 0, 0};
}

void FakeEngine::unload_adapter(const std::string& name) {
  std::lock_guard lock(mu_);
  if (!adapters_.erase(name)) throw banyan::Error(Code::not_found, "unknown adapter " + name);
}

void FakeEngine::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void FakeEngine::resume() {
  std::lock_guard lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

GenerationRequest FakeEngine::last_request() const {
  std::lock_guard lock(mu_);
  return last_;
}

void FakeEngine::shutdown(bool drain) {
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    paused_ = false;
    if (!drain)
      for (auto& [id, r] : requests_) r->aborted = true;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace banyan::core::server::testing
