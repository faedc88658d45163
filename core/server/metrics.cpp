#include "core/server/metrics.h"

#include <cstdio>

namespace banyan::core::server {

namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.12g", v);
  return buf;
}

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + num(v) + "\n";
}

void single(std::string& out, const std::string& name, const char* type, const std::string& help,
            double v) {
  header(out, name, type, help);
  sample(out, name, "", v);
}

}  // namespace

std::string escape_label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  header(out, name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    sample(out, name + "_bucket", "le=\"" + num(bounds_[i]) + "\"", static_cast<double>(cum));
  }
  sample(out, name + "_bucket", "le=\"+Inf\"", static_cast<double>(count_));
  sample(out, name + "_sum", "", sum_);
  sample(out, name + "_count", "", static_cast<double>(count_));
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
            1.0, 2.5, 5.0, 10.0, 20.0}),
      e2e_({0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
            60.0, 120.0, 240.0, 480.0, 960.0}),
      queue_({0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
              40.0, 80.0, 160.0}) {}

void ServerMetrics::http_request(const std::string& route, int status) {
  std::lock_guard lock(mu_);
  ++http_[{route, status}];
}

void ServerMetrics::rejected(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++rejected_[reason];
}

void ServerMetrics::client_disconnect() {
  std::lock_guard lock(mu_);
  ++disconnects_;
}

void ServerMetrics::request_finished(const std::vector<std::string>& reasons, int prompt_tokens,
                                     int generation_tokens, const RequestTiming& t) {
  std::lock_guard lock(mu_);
  for (const auto& r : reasons) ++finished_[r];
  prompt_tokens_ += static_cast<uint64_t>(std::max(prompt_tokens, 0));
  generation_tokens_ += static_cast<uint64_t>(std::max(generation_tokens, 0));
  if (t.queue >= 0) queue_.observe(t.queue);
  if (t.ttft >= 0) ttft_.observe(t.ttft);
  if (t.e2e >= 0) e2e_.observe(t.e2e);
  for (double g : t.inter_token) itl_.observe(g);
}

std::string ServerMetrics::render(const EngineStats& s, const std::vector<AdapterInfo>& adapters,
                                  const ServerGauges& g) const {
  std::string out;
  out.reserve(8192);
  {
    std::lock_guard lock(mu_);
    header(out, "banyan_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (const auto& [key, n] : http_)
      sample(out, "banyan_http_requests_total",
             "route=\"" + escape_label(key.first) + "\",code=\"" + std::to_string(key.second) + "\"",
             static_cast<double>(n));
    header(out, "banyan_http_requests_rejected_total", "counter",
           "Requests refused before reaching the engine, by reason.");
    for (const auto& [reason, n] : rejected_)
      sample(out, "banyan_http_requests_rejected_total", "reason=\"" + escape_label(reason) + "\"",
             static_cast<double>(n));
    single(out, "banyan_client_disconnects_total", "counter",
           "Requests aborted because their client went away.", static_cast<double>(disconnects_));
    header(out, "banyan_request_success_total", "counter",
           "Completions finished, by finish_reason (stop, length, abort).");
    for (const auto& [reason, n] : finished_)
      sample(out, "banyan_request_success_total", "finished_reason=\"" + escape_label(reason) + "\"",
             static_cast<double>(n));
    single(out, "banyan_request_prompt_tokens_total", "counter",
           "Prompt tokens of requests served over HTTP.", static_cast<double>(prompt_tokens_));
    single(out, "banyan_request_generation_tokens_total", "counter",
           "Generated tokens of requests served over HTTP.", static_cast<double>(generation_tokens_));
    ttft_.render(out, "banyan_time_to_first_token_seconds",
                 "Time from arrival to the first generated token.");
    itl_.render(out, "banyan_inter_token_latency_seconds",
                "Time between consecutive outputs of a request.");
    e2e_.render(out, "banyan_e2e_request_latency_seconds", "Time from arrival to the last token.");
    queue_.render(out, "banyan_request_queue_time_seconds",
                  "Time from arrival to first scheduling (server queue plus engine queue).");
  }
  single(out, "banyan_server_requests_active", "gauge",
         "Generation requests admitted (in the engine).", g.active);
  single(out, "banyan_server_requests_queued", "gauge",
         "Generation requests waiting in the server for admission.", g.queued);
  single(out, "banyan_server_serving", "gauge", "1 while serving, 0 while draining.",
         g.serving ? 1 : 0);
  single(out, "banyan_num_requests_running", "gauge", "Sequences groups running in the engine.",
         s.running);
  single(out, "banyan_num_requests_waiting", "gauge", "Requests waiting in the engine.", s.waiting);
  single(out, "banyan_num_requests_swapped", "gauge", "Requests swapped out.", s.swapped);
  single(out, "banyan_kv_cache_usage_ratio", "gauge", "Fraction of KV-cache blocks in use.",
         s.kv_usage);
  single(out, "banyan_kv_cache_blocks", "gauge", "KV-cache blocks in the pool.",
         static_cast<double>(s.num_kv_blocks));
  single(out, "banyan_prefix_cache_queries_total", "counter", "Blocks looked up in the prefix cache.",
         static_cast<double>(s.prefix_cache_queries));
  single(out, "banyan_prefix_cache_hits_total", "counter", "Blocks found in the prefix cache.",
         static_cast<double>(s.prefix_cache_hits));
  single(out, "banyan_prompt_tokens_total", "counter", "Prompt tokens processed by the engine.",
         static_cast<double>(s.prompt_tokens));
  single(out, "banyan_generation_tokens_total", "counter", "Tokens generated by the engine.",
         static_cast<double>(s.generation_tokens));
  single(out, "banyan_engine_requests_finished_total", "counter", "Requests the engine finished.",
         static_cast<double>(s.requests_finished));
  single(out, "banyan_num_preemptions_total", "counter", "Sequences preempted.",
         static_cast<double>(s.preemptions));
  single(out, "banyan_engine_step_seconds_total", "counter", "Wall time of engine steps.",
         s.step_seconds);
  single(out, "banyan_engine_schedule_seconds_total", "counter",
         "Of which: time spent scheduling.", s.schedule_seconds);
  header(out, "banyan_adapter_requests_total", "counter", "Requests per adapter.");
  for (const auto& a : adapters)
    sample(out, "banyan_adapter_requests_total", "adapter=\"" + escape_label(a.name) + "\"",
           static_cast<double>(a.requests));
  header(out, "banyan_adapter_generation_tokens_total", "counter", "Tokens generated per adapter.");
  for (const auto& a : adapters)
    sample(out, "banyan_adapter_generation_tokens_total", "adapter=\"" + escape_label(a.name) + "\"",
           static_cast<double>(a.tokens));
  header(out, "banyan_adapter_resident", "gauge", "1 when the adapter's weights are on the device.");
  for (const auto& a : adapters)
    sample(out, "banyan_adapter_resident", "adapter=\"" + escape_label(a.name) + "\"",
           a.resident ? 1 : 0);
  header(out, "banyan_adapter_rank", "gauge", "LoRA rank of each registered adapter.");
  for (const auto& a : adapters)
    sample(out, "banyan_adapter_rank", "adapter=\"" + escape_label(a.name) + "\"", a.rank);
  single(out, "banyan_adapters_registered", "gauge", "Adapters registered.",
         static_cast<double>(adapters.size()));
  if (s.adapters) {
    auto d = [](int64_t v) { return static_cast<double>(v); };
    single(out, "banyan_adapter_pool_page_bytes", "gauge", "Bytes per page of the device adapter pool.",
           d(s.adapter_page_bytes));
    single(out, "banyan_adapter_pool_pages_used", "gauge",
           "Pages of the device adapter pool holding adapters.", d(s.adapter_pages_used));
    single(out, "banyan_adapter_pool_pages_budget", "gauge",
           "Pages adapters.pool_bytes allows.", d(s.adapter_pages_budget));
    single(out, "banyan_adapter_pool_reserved_bytes", "gauge",
           "Device memory the adapter pool holds (chunks, free pages included).",
           d(s.adapter_reserved_bytes));
    single(out, "banyan_adapter_host_tier_bytes", "gauge", "Adapter images in the host tier.",
           d(s.adapter_host_bytes));
    single(out, "banyan_adapter_loads_total", "counter", "Adapters made device-resident.",
           d(s.adapter_loads));
    single(out, "banyan_adapter_evictions_total", "counter",
           "Adapters evicted from the device to make room.", d(s.adapter_evictions));
    single(out, "banyan_adapter_pool_over_budget_total", "counter",
           "Loads beyond adapters.pool_bytes (every resident adapter was in use).",
           d(s.adapter_over_budget));
  }
  return out;
}

}  // namespace banyan::core::server
