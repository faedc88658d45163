// banyan_bench_cuda: decode and prefill throughput of a Llama-3-8B-shaped model on
// the CUDA backend, beside the HBM roofline and the peers of BASELINES, as JSON.
//   banyan_bench_cuda [--out FILE] [--batches 1,16,64,256] [--steps 128] [--prompt 128]
//                     [--prefill 2048,512] [--reps 3] [--pdl-ab] [--gemv-prefetch 0,16]
//                     [--gemv-bulk-prefetch 16384,65536] [--fuse-ab] [--attn-modes 0,1,2]
//                     [--gemv-blocks 2,4,8] [--attn-split 2,4,8] [--attn-group 4,2,1] [--gated-ab]
// Decode: B sequences with `prompt` tokens of (random) context each generate `steps`
// tokens, one CUDA-graph replay per step (the step's layout uploaded before each).
// Prefill: one sequence of N tokens in one step, run directly. Ablations time the
// same step with only the matmuls, only attention, or only the other ops.
// --pdl-ab: then the decode steps again with programmatic dependent launch off
// (cases decode_bN_pdl_off; BANYAN_PDL=0 turns it off for the whole run).
// --fuse-ab: then the decode steps and prefills again with q/k/v and gate/up as
// separate products (cases ..._unfused; the default runs them as the runtime does).
// --gated-ab: then the decode steps and prefills again with gate/up as one product of
// any row count, act_mul_halves reading its halves (core::set_gated_product_max_rows;
// cases ..._gated_halves; default: two products of more than 16 MiB apart).
// --attn-modes: then the decode steps with each decode attention mode (the bits of
// kernels::cuda::DecodeAttentionMode; cases decode_bN_attn_M).
// --gemv-blocks: then the decode steps with each count of blocks per SM below which
// the GEMV splits rows over warps (cases decode_bN_gemv_blocks_K).
// --attn-split: then the decode steps with each target of blocks per SM of the
// decode attention's split-KV plan (cases decode_bN_attn_split_K).
// --attn-group: then the decode steps with each cap on the query heads per block of
// the decode attention (cases decode_bN_attn_group_G).
// --gemv-prefetch: then batch-1 decode with each count of weight vectors per lane
// that the GEMV prefetches into L2 before its wait (cases decode_b1_prefetch_N);
// --gemv-bulk-prefetch: the same with bytes of one bulk prefetch per block
// (cases decode_b1_bulk_N).
#include "llama_harness.h"

#include "core/runtime/linear.h"
#include "kernels/cuda/kernels.h"

#include <banyan/error.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace banyan::bench {
namespace {

using kernels::cuda::CudaBackend;
using kernels::cuda::Event;
using kernels::cuda::Graph;

struct Options {
  std::string out = "cuda_bench.json";
  std::vector<int> batches = {1, 16, 64, 256};
  std::vector<int> prefill = {2048, 512};
  int steps = 128, prompt = 128, reps = 3;
  bool pdl_ab = false, fuse_ab = false, gated_ab = false;
  std::vector<int> gemv_prefetch, gemv_bulk_prefetch, attn_modes, gemv_blocks, attn_split, attn_group;
};

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(std::stoi(item));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--out") o.out = value();
    else if (a == "--batches") o.batches = int_list(value());
    else if (a == "--prefill") o.prefill = int_list(value());
    else if (a == "--steps") o.steps = std::stoi(value());
    else if (a == "--prompt") o.prompt = std::stoi(value());
    else if (a == "--reps") o.reps = std::stoi(value());
    else if (a == "--pdl-ab") o.pdl_ab = true;
    else if (a == "--fuse-ab") o.fuse_ab = true;
    else if (a == "--gated-ab") o.gated_ab = true;
    else if (a == "--attn-modes") o.attn_modes = int_list(value());
    else if (a == "--gemv-blocks") o.gemv_blocks = int_list(value());
    else if (a == "--attn-split") o.attn_split = int_list(value());
    else if (a == "--attn-group") o.attn_group = int_list(value());
    else if (a == "--gemv-prefetch") o.gemv_prefetch = int_list(value());
    else if (a == "--gemv-bulk-prefetch") o.gemv_bulk_prefetch = int_list(value());
    else throw Error("unknown argument " + a);
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

constexpr double kHbmBytesPerS = 3.03e12;  // measured device-to-device copy (BASELINES)
constexpr double kPeakFlops = 800e12;      // measured cuBLAS bf16 8192^3 (BASELINES)
constexpr int kBlock = 16;

/// One JSON object per case; `extra` holds further "key": value pairs.
struct Record {
  std::string case_name;
  int batch;
  double tok_s, roofline_tok_s;
  std::string extra;
};

class Bench {
 public:
  Bench(CudaBackend& b, const Options& o, LlamaHarness& h, const LlamaShape& s)
      : b_(b), o_(o), h_(h), s_(s) {}

  Graph capture(unsigned mask) {
    b_.begin_capture();
    try {
      h_.forward(mask);
    } catch (...) {
      (void)b_.end_capture();
      throw;
    }
    return b_.end_capture();
  }

  // The layout of decode step `step` for `batch` sequences: sequence i owns the
  // blocks [i * per_seq, (i + 1) * per_seq) and holds prompt + step tokens.
  void decode_layout(int batch, int step) {
    const int per_seq = (o_.prompt + o_.steps + kBlock - 1) / kBlock;
    std::vector<int32_t> ids(batch), pos(batch), slots(batch), info, tables, rows(batch);
    for (int i = 0; i < batch; ++i) {
      const int p = o_.prompt + step;
      ids[i] = static_cast<int32_t>(rng_() % s_.vocab);
      pos[i] = p;
      slots[i] = (i * per_seq + p / kBlock) * kBlock + p % kBlock;
      info.insert(info.end(), {i, 1, p + 1, i * per_seq});
      for (int j = 0; j < per_seq; ++j) tables.push_back(i * per_seq + j);
      rows[i] = i;
    }
    h_.set_step(ids, pos, slots, info, tables, rows, 1, o_.prompt + o_.steps);
  }

  // Milliseconds for all decode steps, one graph replay each.
  double time_decode(int batch, const Graph& g) {
    Event start = Event::create(true), stop = Event::create(true);
    start.record(b_.stream());
    for (int st = 0; st < o_.steps; ++st) {
      decode_layout(batch, st);
      b_.launch(g);
    }
    stop.record(b_.stream());
    stop.synchronize();
    return stop.since(start);
  }

  Record decode(int batch) {
    decode_layout(batch, 0);
    h_.forward();  // plans and workspaces before capture
    b_.synchronize();
    Graph all = capture(kAll), gemm = capture(kGemm), attn = capture(kAttention),
          other = capture(kOther);
    time_decode(batch, all);  // warm-up
    std::vector<double> runs;
    for (int r = 0; r < o_.reps; ++r) runs.push_back(time_decode(batch, all));
    const double ms = median(runs), per_step = ms / o_.steps;
    const double gemm_ms = time_decode(batch, gemm) / o_.steps;
    const double attn_ms = time_decode(batch, attn) / o_.steps;
    const double other_ms = time_decode(batch, other) / o_.steps;
    // Per projection type: 32 matmuls (one per layer, distinct weights) in a graph.
    std::ostringstream proj;
    const char* names[kProjections] = {"q", "k", "v", "o", "gate", "up", "down"};
    for (int p = 0; p < kProjections; ++p) {
      b_.begin_capture();
      h_.projections(static_cast<Proj>(p));
      Graph g = b_.end_capture();
      g.launch(b_.stream());
      Event start = Event::create(true), stop = Event::create(true);
      const int n = 10;
      start.record(b_.stream());
      for (int i = 0; i < n; ++i) b_.launch(g);
      stop.record(b_.stream());
      stop.synchronize();
      const double us = 1000.0 * stop.since(start) / (n * s_.layers);
      const int64_t out = p == kK || p == kV ? s_.kv_heads * s_.head_dim
                          : p == kGate || p == kUp ? s_.intermediate : s_.hidden;
      const int64_t in = p == kDown ? s_.intermediate : s_.hidden;
      proj << (p ? ", " : "") << "\"" << names[p] << "\": {\"us\": " << us
           << ", \"weight_tb_s\": " << 2.0 * out * in / (us * 1e-6) / 1e12 << "}";
    }
    const double ctx = o_.prompt + (o_.steps + 1) / 2.0;  // mean context over the steps
    const double bytes = s_.step_weight_bytes() + batch * ctx * kv_bytes_per_token();
    const double t_floor = std::max(bytes / kHbmBytesPerS, batch * s_.flops_per_token() / kPeakFlops);
    std::ostringstream e;
    e << "\"step_ms\": " << per_step << ", \"gemm_only_ms\": " << gemm_ms
      << ", \"attention_only_ms\": " << attn_ms << ", \"other_only_ms\": " << other_ms
      << ", \"bytes_per_step\": " << bytes << ", \"achieved_tb_s\": " << bytes / (per_step * 1e-3) / 1e12
      << ", \"projections_per_layer\": {" << proj.str() << "}"
      << ", \"pdl\": " << (kernels::cuda::pdl_enabled() ? "true" : "false")
      << ", \"runs_ms\": [" << join(runs) << "]";
    return {"decode_b" + std::to_string(batch), batch, batch * o_.steps / (ms * 1e-3),
            batch / t_floor, e.str()};
  }

  // The whole decode step only (no ablations), as captured now.
  Record decode_step(int batch, const std::string& name) {
    decode_layout(batch, 0);
    h_.forward();
    b_.synchronize();
    Graph all = capture(kAll);
    time_decode(batch, all);  // warm-up
    std::vector<double> runs;
    for (int r = 0; r < o_.reps; ++r) runs.push_back(time_decode(batch, all));
    const double ms = median(runs);
    const double ctx = o_.prompt + (o_.steps + 1) / 2.0;
    const double bytes = s_.step_weight_bytes() + batch * ctx * kv_bytes_per_token();
    const double t_floor = std::max(bytes / kHbmBytesPerS, batch * s_.flops_per_token() / kPeakFlops);
    std::ostringstream e;
    e << "\"step_ms\": " << ms / o_.steps << ", \"pdl\": " << (kernels::cuda::pdl_enabled() ? "true" : "false")
      << ", \"runs_ms\": [" << join(runs) << "]";
    return {name, batch, batch * o_.steps / (ms * 1e-3), batch / t_floor, e.str()};
  }

  Record prefill(int tokens, const std::string& name = "") {
    std::vector<int32_t> ids(tokens), pos(tokens), slots(tokens), tables;
    for (int i = 0; i < tokens; ++i) {
      ids[i] = static_cast<int32_t>(rng_() % s_.vocab);
      pos[i] = slots[i] = i;  // blocks 0.. in order
    }
    for (int j = 0; j < (tokens + kBlock - 1) / kBlock; ++j) tables.push_back(j);
    h_.set_step(ids, pos, slots, {0, tokens, tokens, 0}, tables, {tokens - 1}, tokens, tokens);
    auto time = [&](unsigned mask, int reps) {
      h_.forward(mask);
      std::vector<double> v;
      for (int r = 0; r < reps; ++r) {
        Event start = Event::create(true), stop = Event::create(true);
        start.record(b_.stream());
        h_.forward(mask);
        stop.record(b_.stream());
        stop.synchronize();
        v.push_back(stop.since(start));
      }
      return v;
    };
    const std::vector<double> runs = time(kAll, std::max(o_.reps, 5));
    const double ms = median(runs), gemm_ms = median(time(kGemm, 3));
    const double attn_ms = median(time(kAttention, 3)), other_ms = median(time(kOther, 3));
    const double T = tokens;
    const double attn_flops = 4.0 * s_.layers * s_.heads * s_.head_dim * (T * (T + 1) / 2);
    const double lm_head = 2.0 * s_.vocab * s_.hidden;
    const double flops = T * (s_.flops_per_token() - lm_head) + lm_head + attn_flops;
    std::ostringstream e;
    e << "\"step_ms\": " << ms << ", \"gemm_only_ms\": " << gemm_ms
      << ", \"attention_only_ms\": " << attn_ms << ", \"other_only_ms\": " << other_ms
      << ", \"cublas_gemm_only_tok_s\": " << T / (gemm_ms * 1e-3)
      << ", \"fraction_of_cublas\": " << gemm_ms / ms << ", \"tflop_s\": " << flops / (ms * 1e-3) / 1e12
      << ", \"attention_tflop_s\": " << attn_flops / (attn_ms * 1e-3) / 1e12
      << ", \"runs_ms\": [" << join(runs) << "]";
    return {name.empty() ? "prefill_" + std::to_string(tokens) : name, 1, T / (ms * 1e-3), T / (flops / kPeakFlops),
            e.str()};
  }

  double kv_bytes_per_token() const { return 2.0 * 2 * s_.layers * s_.kv_heads * s_.head_dim; }

  static std::string join(const std::vector<double>& v) {
    std::ostringstream s;
    for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
    return s.str();
  }

 private:
  CudaBackend& b_;
  const Options& o_;
  LlamaHarness& h_;
  const LlamaShape& s_;
  std::mt19937 rng_{42};
};

// Device-to-device copy: bytes read + written per second.
double copy_bandwidth(CudaBackend& b) {
  const size_t n = size_t{2} << 30;
  kernels::cuda::DeviceMemory src(n), dst(n);
  b.fill_zero(src.get(), n);
  Event start = Event::create(true), stop = Event::create(true);
  BANYAN_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), n, cudaMemcpyDeviceToDevice, b.stream()));
  start.record(b.stream());
  const int reps = 10;
  for (int i = 0; i < reps; ++i)
    BANYAN_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), n, cudaMemcpyDeviceToDevice, b.stream()));
  stop.record(b.stream());
  stop.synchronize();
  return 2.0 * n * reps / (stop.since(start) * 1e-3);
}

struct Peer {
  double llama_cpp, transformers;
};
Peer peers(const std::string& c) {  // BASELINES.md, same GPU kind
  if (c == "decode_b1") return {164.7, 16.3};
  if (c == "decode_b16") return {1931, 260};
  if (c == "decode_b64") return {6083, 994};
  if (c == "prefill_512") return {24700, 0};
  return {0, 0};
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  CudaBackend b;
  const std::string device = b.name();
  std::cerr << "device: " << device << "\n";
  const double copy_bw = copy_bandwidth(b);
  std::cerr << "device-to-device copy: " << copy_bw / 1e12 << " TB/s\n";
  LlamaShape s;
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  const int max_prefill = o.prefill.empty() ? 0 : *std::max_element(o.prefill.begin(), o.prefill.end());
  const int per_seq = (o.prompt + o.steps + kBlock - 1) / kBlock;
  const int64_t blocks = std::max<int64_t>(int64_t{max_batch} * per_seq, (max_prefill + kBlock - 1) / kBlock) + 1;
  LlamaHarness h(b, s, blocks, kBlock, std::max(max_batch, max_prefill), std::max(max_batch, 1),
                 std::max<int64_t>(int64_t{max_batch} * per_seq, blocks));
  auto [free_b, total_b] = b.memory_info();
  std::cerr << "weights and KV cache allocated; " << (free_b >> 20) << " MiB of " << (total_b >> 20)
            << " MiB free\n";
  Bench bench(b, o, h, s);
  std::vector<Record> records;
  for (int batch : o.batches) {
    records.push_back(bench.decode(batch));
    std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
  }
  if (o.pdl_ab) {
    const bool was = kernels::cuda::pdl_enabled();
    kernels::cuda::set_pdl(!was);
    for (int batch : o.batches) {
      records.push_back(bench.decode_step(
          batch, "decode_b" + std::to_string(batch) + (was ? "_pdl_off" : "_pdl_on")));
      std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
    }
    kernels::cuda::set_pdl(was);
  }
  if (o.fuse_ab) {
    h.set_fused(false);
    for (int batch : o.batches) {
      records.push_back(bench.decode_step(batch, "decode_b" + std::to_string(batch) + "_unfused"));
      std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
    }
    h.set_fused(true);
  }
  if (o.gated_ab) {
    const int64_t was = core::gated_product_max_rows();
    core::set_gated_product_max_rows(int64_t{1} << 30);
    for (int batch : o.batches) {
      records.push_back(bench.decode_step(batch, "decode_b" + std::to_string(batch) + "_gated_halves"));
      std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
    }
    for (int n : o.prefill) {
      records.push_back(bench.prefill(n, "prefill_" + std::to_string(n) + "_gated_halves"));
      std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
    }
    core::set_gated_product_max_rows(was);
  }
  // The decode steps of every batch (up to max_batch) with each value of a setting,
  // restored afterwards: cases decode_bN_<tag>_<value>.
  auto sweep = [&](const std::vector<int>& values, int (*get)(), void (*set)(int),
                   const std::string& tag, int64_t max_batch) {
    const int was = get();
    for (int v : values) {
      set(v);
      for (int batch : o.batches) {
        if (batch > max_batch) continue;
        records.push_back(bench.decode_step(
            batch, "decode_b" + std::to_string(batch) + "_" + tag + "_" + std::to_string(v)));
        std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
      }
    }
    set(was);
  };
  constexpr int64_t kAnyBatch = INT64_MAX;
  sweep(o.attn_modes, kernels::cuda::decode_attention_mode, kernels::cuda::set_decode_attention_mode,
        "attn", kAnyBatch);
  sweep(o.attn_split, kernels::cuda::decode_attention_split_blocks,
        kernels::cuda::set_decode_attention_split_blocks, "attn_split", kAnyBatch);
  sweep(o.attn_group, kernels::cuda::decode_attention_max_group,
        kernels::cuda::set_decode_attention_max_group, "attn_group", kAnyBatch);
  sweep(o.gemv_blocks, kernels::cuda::gemv_blocks_per_sm, kernels::cuda::gemv_set_blocks_per_sm,
        "gemv_blocks", kernels::cuda::kGemvMaxRows);
  const int prefetch = kernels::cuda::gemv_prefetch();
  for (int n : o.gemv_prefetch) {
    kernels::cuda::gemv_set_prefetch(n);
    records.push_back(bench.decode_step(1, "decode_b1_prefetch_" + std::to_string(n)));
    std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
  }
  kernels::cuda::gemv_set_prefetch(prefetch);
  const int bulk = kernels::cuda::gemv_bulk_prefetch();
  for (int n : o.gemv_bulk_prefetch) {
    kernels::cuda::gemv_set_bulk_prefetch(n);
    records.push_back(bench.decode_step(1, "decode_b1_bulk_" + std::to_string(n)));
    std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
  }
  kernels::cuda::gemv_set_bulk_prefetch(bulk);
  for (int n : o.prefill) {
    records.push_back(bench.prefill(n));
    std::cerr << records.back().case_name << ": " << records.back().tok_s << " tok/s\n";
  }
  std::ofstream out(o.out);
  out << "[\n";
  const std::string date = today();
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    const Peer p = peers(r.case_name);
    out << "  {\"date\": \"" << date << "\", \"device\": \"" << device << "\", \"case\": \""
        << r.case_name << "\", \"batch\": " << r.batch << ", \"tok_s\": " << r.tok_s
        << ", \"roofline_tok_s\": " << r.roofline_tok_s
        << ", \"fraction_of_roofline\": " << r.tok_s / r.roofline_tok_s;
    if (p.llama_cpp > 0) out << ", \"llama_cpp_tok_s\": " << p.llama_cpp;
    if (p.transformers > 0) out << ", \"transformers_tok_s\": " << p.transformers;
    out << ", \"copy_tb_s\": " << copy_bw / 1e12 << ", " << r.extra << "}"
        << (i + 1 < records.size() ? "," : "") << "\n";
  }
  out << "]\n";
  std::printf("%-14s %6s %12s %12s %8s %12s\n", "case", "batch", "tok/s", "roofline", "frac",
              "llama.cpp");
  for (const Record& r : records)
    std::printf("%-14s %6d %12.1f %12.1f %7.1f%% %12.1f\n", r.case_name.c_str(), r.batch, r.tok_s,
                r.roofline_tok_s, 100.0 * r.tok_s / r.roofline_tok_s, peers(r.case_name).llama_cpp);
  return 0;
}

}  // namespace
}  // namespace banyan::bench

int main(int argc, char** argv) {
  try {
    return banyan::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "banyan_bench_cuda: " << e.what() << "\n";
    return 1;
  }
}
