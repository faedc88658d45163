// Prometheus metrics of the server (GET /metrics). Counters and histograms are fed
// by the sessions; engine gauges (running, waiting, KV usage, prefix cache, adapters)
// are read from Engine::stats() and Engine::adapters() when scraped. Every name is
// listed in docs/http-api.md.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include "core/engine/engine.h"

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace banyan::core::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);  ///< not locked: callers hold the metrics lock
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  ///< per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

/// Timings of one finished engine request, in seconds (negative: unknown).
struct RequestTiming {
  double queue = -1, ttft = -1, e2e = -1;
  std::vector<double> inter_token;
};

struct ServerGauges {
  int active = 0;   ///< generation requests admitted
  int queued = 0;   ///< waiting for admission
  bool serving = true;
};

class ServerMetrics {
 public:
  ServerMetrics();

  void http_request(const std::string& route, int status);
  void rejected(const std::string& reason);
  /// One engine request ended (per prompt of a job).
  void request_finished(const std::vector<std::string>& finish_reasons, int prompt_tokens,
                        int generation_tokens, const RequestTiming& timing);
  void client_disconnect();

  std::string render(const EngineStats& stats, const std::vector<AdapterInfo>& adapters,
                     const ServerGauges& gauges) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> http_;
  std::map<std::string, uint64_t> rejected_;
  std::map<std::string, uint64_t> finished_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0, disconnects_ = 0;
  Histogram ttft_, itl_, e2e_, queue_;
};

/// A Prometheus label value with \, " and newlines escaped.
std::string escape_label(const std::string& v);

}  // namespace banyan::core::server
