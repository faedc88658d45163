// CPU throughput of the model runner: prefill and decode tokens/s at batch 1 and
// 16, for the demo model and a ~0.5B-parameter Llama shape with random bf16
// weights, beside this machine's measured rooflines (memory read bandwidth for
// decode, sgemm throughput for prefill). Prints a Markdown report.
//
//   banyan_bench_cpu [--model DIR]... [--random-0.5b] [--prompt N] [--decode N]
//                    [--reps N] [--weights bf16|f32|both] [--threads N] [--batch N] [--matmul]
#include "core/plugin_host/plugin_host.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/weight_store.h"
#include "core/runtime/checkpoint.h"
#include "core/common/logging.h"
#include "kernels/cpu/kernels.h"

#include <banyan/error.h>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace banyan;
using namespace banyan::core;

namespace {

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Stats {
  double best = 0, median = 0;
};
Stats stats(std::vector<double> v) {  // v: rates, higher is better
  std::sort(v.begin(), v.end());
  return {v.back(), v[v.size() / 2]};
}

// ---------------------------------------------------------------- rooflines --
struct Rooflines {
  double read_gbs = 0, copy_gbs = 0, sgemm_gflops = 0;
};

Rooflines measure_rooflines() {
  Rooflines r;
  const size_t n = size_t{1} << 27;  // 512 MiB of f32: far beyond the caches
  auto* a = static_cast<float*>(std::aligned_alloc(64, n * 4));
  auto* b = static_cast<float*>(std::aligned_alloc(64, n * 4));
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) a[i] = b[i] = static_cast<float>(i & 1023);
  std::vector<double> reads, copies;
  volatile float sink = 0;
  for (int rep = 0; rep < 10; ++rep) {
    double t0 = now();
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      float acc[64] = {};  // four vectors of partial sums: bandwidth-bound, not latency-bound
#pragma omp for schedule(static)
      for (size_t i = 0; i < n; i += 64)
        for (int j = 0; j < 64; ++j) acc[j] += a[i + j];
      for (float v : acc) total += v;
    }
    double t1 = now();
    sink = sink + total;
#pragma omp parallel
    {
      const size_t parts = static_cast<size_t>(omp_get_num_threads());
      const size_t id = static_cast<size_t>(omp_get_thread_num());
      const size_t lo = n * id / parts, hi = n * (id + 1) / parts;
      std::memcpy(b + lo, a + lo, (hi - lo) * 4);
    }
    double t2 = now();
    reads.push_back(n * 4.0 / (t1 - t0) / 1e9);
    copies.push_back(2 * n * 4.0 / (t2 - t1) / 1e9);  // bytes read + written
  }
  r.read_gbs = stats(reads).best;
  r.copy_gbs = stats(copies).best;
  std::free(a);
  std::free(b);

  // sgemm throughput: one single-threaded sgemm per OpenMP thread, as the backend
  // runs them (BLAS is kept single-threaded by the CPU backend).
  const int m = 1024;
  std::vector<double> flops;
  for (int rep = 0; rep < 4; ++rep) {
    double t0 = 0;
    int threads = 1;
#pragma omp parallel
    {
      std::vector<float> x(size_t(m) * m, 0.5f), y(size_t(m) * m, 0.25f), z(size_t(m) * m);
#pragma omp barrier
#pragma omp single
      {
        threads = omp_get_num_threads();
        t0 = now();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, m, 1.0f, x.data(), m, y.data(),
                  m, 0.0f, z.data(), m);
    }
    flops.push_back(2.0 * m * m * m * threads / (now() - t0) / 1e9);
  }
  r.sgemm_gflops = stats(flops).best;
  return r;
}

// ---------------------------------------------------------------- model runs --
std::vector<int> g_batches = {1, 16};

struct Row {
  std::string model, weights, phase;
  int batch;
  Stats tok_s;
  double roofline;
};

// One step: each of `batch` sequences appends `n` tokens after `done` cached ones.
ForwardBatch step(int batch, int done, int n, int per_seq_blocks, int bs, int vocab,
                  std::mt19937& rng, const std::vector<int32_t>* next = nullptr) {
  ForwardBatch b;
  std::uniform_int_distribution<int32_t> tok(3, vocab - 1);
  for (int s = 0; s < batch; ++s) {
    SeqSlice q;
    q.query_start = b.num_tokens();
    q.query_len = n;
    q.context_len = done + n;
    q.block_offset = static_cast<int32_t>(b.block_tables.size());
    q.num_blocks = (q.context_len + bs - 1) / bs;
    for (int j = 0; j < q.num_blocks; ++j) b.block_tables.push_back(s * per_seq_blocks + j);
    for (int i = 0; i < n; ++i) {
      const int p = done + i;
      b.token_ids.push_back(next ? (*next)[s] : tok(rng));
      b.positions.push_back(p);
      b.slot_mapping.push_back((s * per_seq_blocks + p / bs) * bs + p % bs);
    }
    b.seqs.push_back(q);
  }
  return b;
}

std::vector<int32_t> argmax_rows(ModelRunner& r, const Tensor& logits) {
  auto h = r.to_host(logits);
  const int64_t V = logits.shape[1];
  std::vector<int32_t> out;
  for (int64_t i = 0; i < logits.shape[0]; ++i)
    out.push_back(static_cast<int32_t>(
        std::max_element(h.begin() + i * V, h.begin() + (i + 1) * V) - (h.begin() + i * V)));
  return out;
}

void bench_model(const PluginHost& plugins, const fs::path& dir, const std::string& label,
                 bool keep_bf16, int prompt, int decode, int reps, const Rooflines& roof,
                 std::vector<Row>& rows) {
  ModelRunnerOptions o;
  o.model_dir = dir;
  o.cpu.keep_bf16_weights = keep_bf16;
  const int bs = 16, max_batch = 16;
  const int per_seq = (prompt + decode + bs - 1) / bs;
  o.num_blocks = per_seq * max_batch;
  double t0 = now();
  ModelRunner r(plugins, o);
  const double load_s = now() - t0;
  const BanyanModelSpec& sp = r.spec();
  const int vocab = sp.vocab_size;

  // Bytes a decode step must read: every weight except the embedding table (only
  // its rows are read, unless it doubles as the lm_head), plus the KV cache.
  const Checkpoint& ck = r.weights().checkpoint();
  const bool tied = !ck.find("lm_head.weight");
  Tensor emb;
  r.weights().info("model.embed_tokens.weight", &emb);
  const double weight_bytes = static_cast<double>(r.weights().device_bytes()) -
                              (tied ? 0.0 : static_cast<double>(emb.nbytes()));
  const double kv_token_bytes = 2.0 * sp.num_layers * sp.num_kv_heads * sp.head_dim * 4;
  // FLOPs per prefill token: 2 per linear weight (the lm_head only for the last token).
  int64_t linear_params = 0;
  for (const auto& n : ck.names())
    if (n.size() > 12 && n.compare(n.size() - 12, 12, "_proj.weight") == 0) {
      int64_t p = 1;
      for (auto d : ck.get(n).shape) p *= d;
      linear_params += p;
    }
  // The final projection runs once per logits row (every decode token, one per prefill).
  int64_t head_params = 0;
  if (const auto* t = ck.find(tied ? "model.embed_tokens.weight" : "lm_head.weight")) {
    head_params = 1;
    for (auto d : t->shape) head_params *= d;
  }
  std::printf("  %s (%s weights): %lld linear params, %.0f MiB read per decode step, loaded in %.1f s\n",
              label.c_str(), keep_bf16 ? "bf16" : "f32", static_cast<long long>(linear_params),
              weight_bytes / (1 << 20), load_s);

  std::mt19937 rng(7);
  for (int batch : g_batches) {
    std::vector<double> pre, dec;
    for (int rep = 0; rep < reps; ++rep) {
      ForwardBatch b = step(batch, 0, prompt, per_seq, bs, vocab, rng);
      double t = now();
      auto next = argmax_rows(r, r.execute(b));
      pre.push_back(batch * prompt / (now() - t));
      t = now();
      for (int d = 0; d < decode; ++d) {
        ForwardBatch db = step(batch, prompt + d, 1, per_seq, bs, vocab, rng, &next);
        next = argmax_rows(r, r.execute(db));
      }
      dec.push_back(batch * decode / (now() - t));
    }
    const double avg_ctx = prompt + decode / 2.0;
    const double step_bytes = weight_bytes + batch * avg_ctx * kv_token_bytes;
    // q·k and p·v over on average prompt/2 keys, for hidden_size query dims.
    const double attn_flops = 4.0 * sp.num_layers * (prompt / 2.0) * sp.hidden_size;
    const double prefill_flops = 2.0 * linear_params + attn_flops + 2.0 * head_params / prompt;
    rows.push_back({label, keep_bf16 ? "bf16" : "f32", "prefill", batch, stats(pre),
                    roof.sgemm_gflops * 1e9 / prefill_flops});
    // Decode is bound by reading the weights and KV once per step, or by compute.
    const double decode_flops = 2.0 * (linear_params + head_params) + 4.0 * sp.num_layers * avg_ctx * sp.hidden_size;
    const double memory_bound = batch * roof.read_gbs * 1e9 / step_bytes;
    const double compute_bound = roof.sgemm_gflops * 1e9 / decode_flops;
    rows.push_back({label, keep_bf16 ? "bf16" : "f32",
                    memory_bound <= compute_bound ? "decode (memory-bound)" : "decode (compute-bound)",
                    batch, stats(dec), std::min(memory_bound, compute_bound)});
  }
}

// Time per matmul of the two kernels across row counts (bf16 and f32 weights).
void bench_matmul() {
  namespace kc = banyan::kernels::cpu;
  const int64_t saved = kc::small_m_threshold();
  std::printf("\n| K x N | weights | M | streaming GB/s | streaming GFLOP/s | sgemm tiles GFLOP/s |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  for (auto [K, N] : {std::pair<int64_t, int64_t>{1280, 3456}, {3456, 1280}, {1280, 32000}}) {
    std::vector<float> wf(static_cast<size_t>(K * N), 0.01f), x(static_cast<size_t>(64 * K), 0.5f),
        out(static_cast<size_t>(64 * N));
    std::vector<uint16_t> wb(static_cast<size_t>(K * N), 0x3c00);
    for (auto wt : {kc::WeightType::bf16, kc::WeightType::f32}) {
      const void* w = wt == kc::WeightType::bf16 ? static_cast<const void*>(wb.data()) : wf.data();
      const double wbytes = double(K * N) * (wt == kc::WeightType::bf16 ? 2 : 4);
      for (int64_t M : {1, 2, 4, 8, 12, 16, 24, 32}) {
        double best[2] = {0, 0};
        for (int path = 0; path < 2; ++path) {
          kc::set_small_m_threshold(path == 0 ? 1 << 20 : 0);
          for (int rep = 0; rep < 5; ++rep) {
            double t = now();
            kc::matmul(x.data(), M, K, w, wt, false, N, nullptr, out.data(), false);
            best[path] = std::max(best[path], 1.0 / (now() - t));
          }
        }
        std::printf("| %lldx%lld | %s | %lld | %.1f | %.1f | %.1f |\n", static_cast<long long>(K),
                    static_cast<long long>(N), wt == kc::WeightType::bf16 ? "bf16" : "f32",
                    static_cast<long long>(M), wbytes * best[0] / 1e9,
                    2.0 * M * K * N * best[0] / 1e9, 2.0 * M * K * N * best[1] / 1e9);
      }
    }
  }
  kc::set_small_m_threshold(saved);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines show up in logs at once
  std::vector<fs::path> models;
  bool random05 = false;
  int prompt = 128, decode = 32, reps = 3;
  std::string weights = "both";
  bool matmul = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--model") models.emplace_back(val());
    else if (a == "--random-0.5b") random05 = true;
    else if (a == "--prompt") prompt = std::stoi(val());
    else if (a == "--decode") decode = std::stoi(val());
    else if (a == "--reps") reps = std::stoi(val());
    else if (a == "--weights") weights = val();
    else if (a == "--matmul") matmul = true;
    else if (a == "--batch") g_batches = {std::stoi(val())};
    else if (a == "--threads") omp_set_num_threads(std::stoi(val()));
    else {
      std::cerr << "usage: banyan_bench_cpu [--model DIR]... [--random-0.5b] [--prompt N] "
                   "[--decode N] [--reps N] [--weights bf16|f32|both] [--threads N] [--batch N] [--matmul]\n";
      return 2;
    }
  }
  try {
    set_log_level("warn");
    auto backend = make_backend("cpu");  // sets BLAS single-threaded, like the runner
    PluginHost plugins;
    plugins.scan(PluginHost::default_search_paths());
    std::printf("threads: %d (OpenMP), load average at start: %s\n", omp_get_max_threads(),
                loadavg().c_str());
    Rooflines roof = measure_rooflines();
    std::printf("memory read %.1f GB/s, copy %.1f GB/s (read+write), sgemm %.0f GFLOP/s\n",
                roof.read_gbs, roof.copy_gbs, roof.sgemm_gflops);

    if (matmul) bench_matmul();
    std::vector<std::pair<fs::path, std::string>> todo;
    for (const auto& m : models) todo.emplace_back(m, m.filename().string());
    std::unique_ptr<fs::path> tmp;
    if (random05) {
      tmp = std::make_unique<fs::path>(fs::temp_directory_path() / "banyan-bench-llama-0.5b");
      RandomLlamaSpec s;
      s.hidden = 1280;
      s.intermediate = 3456;
      s.layers = 24;
      s.heads = 20;
      s.kv_heads = 4;
      s.vocab = 32000;
      s.max_position = 4096;
      double t = now();
      int64_t params = write_random_llama(*tmp, s);
      std::printf("random llama: %.0fM parameters written in %.1f s\n", params / 1e6, now() - t);
      todo.emplace_back(*tmp, "llama-0.5b-random");
    }
    std::vector<Row> rows;
    for (const auto& [dir, label] : todo)
      for (bool bf16 : {true, false})
        if (weights == "both" || (weights == "bf16") == bf16)
          bench_model(plugins, dir, label, bf16, prompt, decode, reps, roof, rows);
    if (tmp) fs::remove_all(*tmp);
    std::printf("load average at end: %s\n", loadavg().c_str());

    std::printf("\n| model | weights | phase | batch | tok/s best | tok/s median | roofline tok/s | best / roofline |\n");
    std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
    for (const auto& r : rows)
      std::printf("| %s | %s | %s | %d | %.1f | %.1f | %.1f | %.0f%% |\n", r.model.c_str(),
                  r.weights.c_str(), r.phase.c_str(), r.batch, r.tok_s.best, r.tok_s.median,
                  r.roofline, 100.0 * r.tok_s.best / r.roofline);
  } catch (const std::exception& e) {
    std::cerr << "banyan_bench_cpu: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
