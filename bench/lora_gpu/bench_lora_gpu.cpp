// banyan_bench_lora_gpu: multi-LoRA decode throughput of a Llama-3-8B-shaped model
// on the CUDA backend (random bf16 weights made on the GPU), against the base model
// alone in the same run and against transformers + peft (BASELINES.md), as JSON.
//   banyan_bench_lora_gpu [--out FILE] [--batch 64] [--adapters 1,8,64,512]
//                         [--big-batch 512] [--steps 64] [--prompt 128] [--reps 3]
//                         [--ranks 16,64,8,32] [--prefill 2048] [--ablate 1] [--fuse-ab 0]
// Every adapter adapts all 7 projections of all 32 layers; adapter i has rank
// ranks[i % 4] (mixed in every batch, never padded). Decode: B sequences with
// `prompt` tokens of context generate `steps` tokens, one CUDA-graph replay per step
// (the step's layout, adapter slots included, uploaded before each). Token i of step
// s uses slot (i + s * B) % N: with N >= B every token of a step has its own
// adapter, and N > B rotates through all of them. Adapter images are allocated until
// the free memory is used (a budget, like the adapter pool's); when N exceeds the
// images that fit, slot j reads image j % images (reported: the bytes a step reads
// stay those of distinct adapters, as images repeat only across steps). --ablate 1
// (default): the decode cases of 1, 8 and 64 adapters are also timed with one change
// undone at a time (the merge, the distinct-adapter variants, the side stream, PDL).
// --fuse-ab 1: only the first two of those (the fused group's modules on one side
// stream; the harness's fusion off), also with --ablate 0.
#include "bench/cuda/llama_harness.h"
#include "core/runtime/step_arena.h"
#include "kernels/cuda/cuda_lora_kernels.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/lora.h"

#include <banyan/error.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace banyan::bench {
namespace {

using kernels::cuda::CudaBackend;
using kernels::cuda::DeviceMemory;
using kernels::cuda::Event;
using kernels::cuda::Graph;

constexpr double kHbmBytesPerS = 3.03e12;  // measured device-to-device copy (BASELINES)
constexpr double kPeftTokS = 153.7;        // transformers + peft, b64, 8 adapters r16 (BASELINES)
constexpr int kBlock = 16;

struct Options {
  std::string out = "lora_bench.json";
  int batch = 64, big_batch = 512, steps = 64, prompt = 128, reps = 3, prefill = 2048;
  bool ablate = true, fuse_ab = false;
  std::vector<int> adapters = {1, 8, 64, 512};
  std::vector<int> ranks = {16, 64, 8, 32};
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
    else if (a == "--batch") o.batch = std::stoi(value());
    else if (a == "--big-batch") o.big_batch = std::stoi(value());
    else if (a == "--adapters") o.adapters = int_list(value());
    else if (a == "--steps") o.steps = std::stoi(value());
    else if (a == "--prompt") o.prompt = std::stoi(value());
    else if (a == "--reps") o.reps = std::stoi(value());
    else if (a == "--ranks") o.ranks = int_list(value());
    else if (a == "--prefill") o.prefill = std::stoi(value());
    else if (a == "--ablate") o.ablate = std::stoi(value()) != 0;
    else if (a == "--fuse-ab") o.fuse_ab = std::stoi(value()) != 0;
    else throw Error("unknown argument " + a);
  }
  if (o.ranks.empty()) throw Error("--ranks is empty");
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string join(const std::vector<double>& v) {
  std::ostringstream s;
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  return s.str();
}

/// One adapter's weights for every (layer, projection), in one device buffer.
struct Image {
  DeviceMemory memory;
  int32_t rank = 0;
  size_t bytes = 0;
  std::vector<core::LoraSlotWeights> modules;  // [layer * kProjections + p]
};

struct Record {
  std::string case_name;
  int batch = 0, adapters = 0;
  double tok_s = 0, base_tok_s = 0;
  std::string extra;
};

class LoraBench {
 public:
  LoraBench(CudaBackend& b, const Options& o, LlamaHarness& h, const LlamaShape& s)
      : b_(b), o_(o), h_(h), s_(s), arena_(b, size_t{1} << 20),
        kernels_(kernels::cuda::make_cuda_lora_kernels(b)) {
    for (int p = 0; p < kProjections; ++p) {
      in_[p] = p == kO ? s.heads * s.head_dim : p == kDown ? s.intermediate : s.hidden;
      out_[p] = p == kK || p == kV ? s.kv_heads * s.head_dim
                : p == kGate || p == kUp ? s.intermediate : s.hidden;
    }
    // DoRA magnitudes / norms (around 1), one vector per projection shape, shared.
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> d(0.9f, 1.1f);
    for (int p = 0; p < kProjections; ++p) {
      std::vector<float> v(static_cast<size_t>(out_[p]));
      for (auto& x : v) x = d(rng);
      dora_[p] = DeviceMemory(v.size() * sizeof(float));
      b_.upload(dora_[p].get(), v.data(), v.size() * sizeof(float));
    }
    h_.set_linear_hook([this](int64_t layer, Proj p, const Tensor& x, Tensor& y, bool before) {
      if (!h_.layout().has_adapters) return;  // as the runtime's LinearRegistry
      core::LinearContext ctx{b_, arena_, h_.layout(), batch_, h_.layout().adapter_slots, true};
      const auto module = static_cast<int32_t>(layer * kProjections + p);
      if (before)
        kernels_->prepare(module, ctx, x, y);
      else
        kernels_->apply(module, ctx, x, y);
    });
  }

  size_t image_bytes(int32_t rank) const {
    size_t n = 0;
    for (int p = 0; p < kProjections; ++p)
      n += 2 * static_cast<size_t>(rank) * static_cast<size_t>(in_[p] + out_[p]) + 512;  // + alignment
    return n * static_cast<size_t>(s_.layers);
  }

  /// Allocates images (rank ranks[i % 4]) while `budget` bytes last, up to `max`.
  void make_images(size_t budget, int max) {
    uint64_t seed = 1000;
    for (int i = 0; i < max; ++i) {
      const int32_t r = o_.ranks[static_cast<size_t>(i) % o_.ranks.size()];
      const size_t bytes = image_bytes(r);
      if (bytes > budget) break;
      budget -= bytes;
      Image img;
      img.rank = r;
      img.bytes = bytes;
      img.memory = DeviceMemory(bytes);
      auto* at = img.memory.as<uint16_t>();
      for (int64_t l = 0; l < s_.layers; ++l)
        for (int p = 0; p < kProjections; ++p) {
          core::LoraSlotWeights w;
          w.rank = r;
          w.scaling = 2.0f;
          w.dtype = DType::bf16;
          const int64_t na = r * in_[p], nb = r * out_[p];
          kernels::cuda::fill_uniform_bf16(at, na, seed++, std::sqrt(3.0f / static_cast<float>(in_[p])), b_.stream());
          w.a = at;
          at += (na + 127) / 128 * 128;
          kernels::cuda::fill_uniform_bf16(at, nb, seed++, 0.02f, b_.stream());
          w.bt = at;
          at += (nb + 127) / 128 * 128;
          img.modules.push_back(w);
        }
      images_.push_back(std::move(img));
    }
    b_.synchronize();
  }
  int num_images() const { return static_cast<int>(images_.size()); }

  /// Binds slot j to image image_of(j) for j < n (and clears the other slots).
  template <class F>
  void bind(int n, F image_of, bool dora) {
    const int32_t modules = static_cast<int32_t>(s_.layers * kProjections);
    kernels_->resize(modules, std::max(n, kernels_->slots()));
    for (int32_t j = 0; j < kernels_->slots(); ++j)
      for (int32_t m = 0; m < modules; ++m) {
        core::LoraSlotWeights w;
        if (j < n) {
          w = images_[static_cast<size_t>(image_of(j))].modules[static_cast<size_t>(m)];
          if (dora) w.dora_scale = dora_[m % kProjections].as<float>();
        }
        kernels_->set(m, j, w);
      }
    kernels::cuda::flush_lora_tables(*kernels_);
  }

  // Decode step `step` of `batch` sequences; slots per token (empty: base model).
  void decode_layout(int batch, int step, int adapters) {
    const int per_seq = (o_.prompt + o_.steps + kBlock - 1) / kBlock;
    std::vector<int32_t> ids(batch), pos(batch), kv(batch), info, tables, rows(batch), slots;
    for (int i = 0; i < batch; ++i) {
      const int p = o_.prompt + step;
      ids[i] = static_cast<int32_t>(rng_() % s_.vocab);
      pos[i] = p;
      kv[i] = (i * per_seq + p / kBlock) * kBlock + p % kBlock;
      info.insert(info.end(), {i, 1, p + 1, i * per_seq});
      for (int j = 0; j < per_seq; ++j) tables.push_back(i * per_seq + j);
      rows[i] = i;
      if (adapters > 0) slots.push_back(slot_of(i, step, batch, adapters));
    }
    batch_.adapter_slots = slots;  // the host copy, as the runtime passes it
    h_.set_step(ids, pos, kv, info, tables, rows, 1, o_.prompt + o_.steps, slots);
  }
  static int32_t slot_of(int i, int step, int batch, int adapters) {
    return static_cast<int32_t>((static_cast<int64_t>(i) + static_cast<int64_t>(step) * batch) % adapters);
  }

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

  double time_decode(int batch, int adapters, const Graph& g) {
    Event start = Event::create(true), stop = Event::create(true);
    start.record(b_.stream());
    for (int st = 0; st < o_.steps; ++st) {
      decode_layout(batch, st, adapters);
      b_.launch(g);
    }
    stop.record(b_.stream());
    stop.synchronize();
    return stop.since(start);
  }

  /// Median ms per step over reps, and the runs (ms for all steps).
  std::pair<double, std::vector<double>> run_decode(int batch, int adapters, unsigned mask) {
    decode_layout(batch, 0, adapters);
    h_.forward(mask);  // plans, workspaces and LoRA buffers before the capture
    b_.synchronize();
    Graph g = capture(mask);
    time_decode(batch, adapters, g);  // warm-up
    std::vector<double> runs;
    for (int r = 0; r < o_.reps; ++r) runs.push_back(time_decode(batch, adapters, g));
    return {median(runs) / o_.steps, runs};
  }

  double base(int batch) {
    const double ms = run_decode(batch, 0, kAll).first;
    base_ms_[batch] = ms;
    std::cerr << "base b" << batch << ": " << batch / (ms * 1e-3) << " tok/s (" << ms << " ms/step)\n";
    return ms;
  }

  template <class F>
  Record lora(const std::string& name, int batch, int adapters, F image_of, bool dora,
              bool ablate = false) {
    bind(adapters, image_of, dora);
    const auto stats0 = kernels::cuda::lora_stats(*kernels_);
    auto [ms, runs] = run_decode(batch, adapters, kAll);
    const auto stats1 = kernels::cuda::lora_stats(*kernels_);  // a warm-up step and the capture
    const double lora_only = run_decode(batch, adapters, kLora).first;
    // Bytes a step reads: weights, KV cache, and each distinct adapter of step 0 once.
    std::set<int> distinct;
    double adapter_bytes = 0, rank_sum = 0;
    for (int i = 0; i < batch; ++i) {
      const int j = slot_of(i, 0, batch, adapters);
      const Image& img = images_[static_cast<size_t>(image_of(j))];
      rank_sum += img.rank;
      if (distinct.insert(j).second) adapter_bytes += static_cast<double>(img.bytes);
    }
    const double ctx = o_.prompt + (o_.steps + 1) / 2.0;
    const double kv = batch * ctx * 2.0 * 2 * s_.layers * s_.kv_heads * s_.head_dim;
    const double base_bytes = s_.step_weight_bytes() + kv;
    const double base_ms = base_ms_.at(batch);
    std::set<int> used_images;
    for (int j = 0; j < adapters; ++j) used_images.insert(image_of(j));
    Record r{name, batch, adapters, batch / (ms * 1e-3), batch / (base_ms * 1e-3), ""};
    std::ostringstream e;
    e << "\"ratio_to_base\": " << r.tok_s / r.base_tok_s << ", \"step_ms\": " << ms
      << ", \"base_step_ms\": " << base_ms << ", \"lora_only_ms\": " << lora_only
      << ", \"distinct_adapters_per_step\": " << distinct.size()
      << ", \"mean_rank_per_token\": " << rank_sum / batch << ", \"dora\": " << (dora ? "true" : "false")
      << ", \"adapter_images\": " << used_images.size()
      << ", \"adapter_bytes_per_step\": " << adapter_bytes
      << ", \"roofline_tok_s\": " << batch / ((base_bytes + adapter_bytes) / kHbmBytesPerS)
      << ", \"base_roofline_tok_s\": " << batch / (base_bytes / kHbmBytesPerS)
      << ", \"runs_ms\": [" << join(runs) << "]"
      << ", \"claimed_ahead_per_forward\": " << (stats1.ahead_claimed - stats0.ahead_claimed) / 2.0;
    if (batch == 64) e << ", \"peft_tok_s\": " << kPeftTokS << ", \"x_peft\": " << r.tok_s / kPeftTokS;
    const bool fuse_ab = ablate || (o_.fuse_ab && batch == o_.batch && !dora &&
                                    (adapters == 1 || adapters == 8 || adapters == 64));
    if (fuse_ab) {
      // The fused q/k/v group's modules one after another on one side stream
      // (default: one stream each), and the harness's fusion off (q/k/v one product
      // each, as adapter steps ran before the lora-fuse branch; also the rotary
      // embedding apart from attention).
      kernels::cuda::set_lora_group_streams(*kernels_, false);
      const double one_stream = run_decode(batch, adapters, kAll).first;
      kernels::cuda::set_lora_group_streams(*kernels_, true);
      h_.set_fused(false);
      const double unfused = run_decode(batch, adapters, kAll).first;
      h_.set_fused(true);
      e << ", \"group_one_stream_step_ms\": " << one_stream << ", \"fusion_off_step_ms\": " << unfused;
      std::cerr << "  group on one side stream: " << one_stream << " ms/step; fusion off: " << unfused << "\n";
    }
    if (ablate) {
      // The same binary with one change undone at a time: the first merge (one
      // thread per column), the 16-byte merge also launched with programmatic dependent launch,
      // the late expand (only the shrink beside the product; default off) for steps of
      // tiles of several rows and for every step, lookahead off (k and v, up: deltas launched at their own prepare()) and on
      // in every step (default: steps of distinct adapters only), shrink warps of ~1k
      // input features for both variants (default: ~2k for the lean one) and ~2k for both, the
      // kernels' one-pass variants only (no distinct-adapter variant); then
      // without the side stream (shrink and expand after the base product), and
      // also without programmatic dependent launch.
      kernels::cuda::lora_set_merge_mode(0);
      const double merge_v1 = run_decode(batch, adapters, kAll).first;
      kernels::cuda::lora_set_merge_mode(2);
      const double merge_pdl = run_decode(batch, adapters, kAll).first;
      kernels::cuda::lora_set_merge_mode(1);
      kernels::cuda::set_lora_late_expand(*kernels_, kernels::cuda::LoraLateExpand::shared);
      const double shared_late = run_decode(batch, adapters, kAll).first;
      kernels::cuda::set_lora_late_expand(*kernels_, kernels::cuda::LoraLateExpand::always);
      const double always_late = run_decode(batch, adapters, kAll).first;
      kernels::cuda::set_lora_late_expand(*kernels_, kernels::cuda::LoraLateExpand::off);
      kernels::cuda::set_lora_lookahead(*kernels_, kernels::cuda::LoraLookahead::off);
      const double no_ahead = run_decode(batch, adapters, kAll).first;
      kernels::cuda::set_lora_lookahead(*kernels_, kernels::cuda::LoraLookahead::always);
      const double always_ahead = run_decode(batch, adapters, kAll).first;
      kernels::cuda::set_lora_lookahead(*kernels_, kernels::cuda::LoraLookahead::distinct);
      kernels::cuda::lora_set_shrink_features(1024, 1024);
      const double shrink_1k = run_decode(batch, adapters, kAll).first;
      kernels::cuda::lora_set_shrink_features(2048, 2048);
      const double shrink_2k = run_decode(batch, adapters, kAll).first;
      kernels::cuda::lora_set_shrink_features(2048, 1024);
      kernels::cuda::lora_set_distinct_variant(false);
      const double one_variant = run_decode(batch, adapters, kAll).first;
      const double one_variant_lora = run_decode(batch, adapters, kLora).first;
      kernels::cuda::lora_set_distinct_variant(true);
      kernels::cuda::set_lora_overlap(*kernels_, false);
      const double serial = run_decode(batch, adapters, kAll).first;
      kernels::cuda::lora_set_pdl(false);
      const double plain = run_decode(batch, adapters, kAll).first;
      const double plain_lora = run_decode(batch, adapters, kLora).first;
      kernels::cuda::lora_set_pdl(true);
      kernels::cuda::set_lora_overlap(*kernels_, true);
      e << ", \"merge_v1_step_ms\": " << merge_v1 << ", \"merge_pdl_step_ms\": " << merge_pdl
        << ", \"shared_late_expand_step_ms\": " << shared_late << ", \"always_late_expand_step_ms\": " << always_late << ", \"no_lookahead_step_ms\": " << no_ahead << ", \"always_lookahead_step_ms\": " << always_ahead
        << ", \"shrink_1k_step_ms\": " << shrink_1k << ", \"shrink_2k_step_ms\": " << shrink_2k
        << ", \"no_distinct_variant_step_ms\": " << one_variant
        << ", \"no_distinct_variant_lora_only_ms\": " << one_variant_lora
        << ", \"no_overlap_step_ms\": " << serial << ", \"no_overlap_no_pdl_step_ms\": " << plain
        << ", \"no_overlap_no_pdl_lora_only_ms\": " << plain_lora;
      std::cerr << "  first merge: " << merge_v1 << " ms/step; 16-byte merge with PDL: " << merge_pdl
                << "; late expand for shared tiles: " << shared_late << ", always: " << always_late << "; lookahead off: " << no_ahead << ", always: " << always_ahead
                << "; shrink warps of 1k features (all): " << shrink_1k << ", 2k (all): " << shrink_2k
                << "; without the distinct-adapter variant: " << one_variant << " (LoRA kernels alone "
                << one_variant_lora << " ms); without the side stream: " << serial
                << "; also without PDL: " << plain << " (LoRA kernels alone " << plain_lora << " ms)\n";
    }
    r.extra = e.str();
    std::cerr << name << ": " << r.tok_s << " tok/s, " << r.tok_s / r.base_tok_s << "x base ("
              << ms << " ms/step, LoRA kernels alone " << lora_only << " ms, " << distinct.size()
              << " adapters per step, " << adapter_bytes / 1e9 << " GB of adapters)\n";
    return r;
  }

  /// One prefill step of `tokens` tokens (one sequence) with adapter slot 0, or none.
  double prefill_ms(int tokens, bool adapter) {
    std::vector<int32_t> ids(tokens), pos(tokens), kv(tokens), tables, slots;
    for (int i = 0; i < tokens; ++i) {
      ids[i] = static_cast<int32_t>(rng_() % s_.vocab);
      pos[i] = kv[i] = i;
      if (adapter) slots.push_back(0);
    }
    for (int j = 0; j < (tokens + kBlock - 1) / kBlock; ++j) tables.push_back(j);
    batch_.adapter_slots = slots;  // a run of `tokens` rows: the dense (cuBLASLt) path
    h_.set_step(ids, pos, kv, {0, tokens, tokens, 0}, tables, {tokens - 1}, tokens, tokens, slots);
    h_.forward();
    std::vector<double> v;
    for (int r = 0; r < 5; ++r) {
      Event start = Event::create(true), stop = Event::create(true);
      start.record(b_.stream());
      h_.forward();
      stop.record(b_.stream());
      stop.synchronize();
      v.push_back(stop.since(start));
    }
    return median(v);
  }

 private:
  CudaBackend& b_;
  const Options& o_;
  LlamaHarness& h_;
  const LlamaShape& s_;
  core::StepArena arena_;  // LinearContext needs one; the CUDA LoRA kernels do not use it
  core::ForwardBatch batch_;
  std::unique_ptr<core::LoraKernels> kernels_;
  int64_t in_[kProjections], out_[kProjections];
  DeviceMemory dora_[kProjections];
  std::vector<Image> images_;
  std::map<int, double> base_ms_;
  std::mt19937 rng_{42};
};

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  CudaBackend b;
  const std::string device = b.name();
  std::cerr << "device: " << device << "\n";
  LlamaShape s;
  const int max_batch = std::max(o.batch, o.big_batch);
  const int per_seq = (o.prompt + o.steps + kBlock - 1) / kBlock;
  const int64_t blocks = std::max<int64_t>(int64_t{max_batch} * per_seq, (o.prefill + kBlock - 1) / kBlock) + 1;
  LlamaHarness h(b, s, blocks, kBlock, std::max(max_batch, o.prefill), max_batch,
                 std::max<int64_t>(int64_t{max_batch} * per_seq, blocks));
  LoraBench bench(b, o, h, s);
  const int max_adapters = std::max(o.big_batch, *std::max_element(o.adapters.begin(), o.adapters.end()));
  auto [free_b, total_b] = b.memory_info();
  const size_t reserve = size_t{3} << 30;  // graphs, workspaces, LoRA scratch
  bench.make_images(free_b > reserve ? free_b - reserve : 0, max_adapters);
  const int images = bench.num_images();
  std::cerr << "weights and KV cache: " << ((total_b - free_b) >> 20) << " MiB; " << images
            << " adapter images (ranks cycling";
  for (int r : o.ranks) std::cerr << " " << r;
  std::cerr << ") in the remaining memory\n";
  if (images < std::min(4, max_adapters)) throw Error("too little device memory for adapter images");
  auto cyclic = [images](int j) { return j % images; };

  std::vector<Record> records;
  // One failing case is reported and the others still run.
  auto guarded = [&](const std::string& name, const auto& make) {
    try {
      records.push_back(make());
    } catch (const std::exception& e) {
      std::cerr << name << ": FAILED: " << e.what() << "\n";
    }
  };
  const std::string pre = "decode_b" + std::to_string(o.batch);
  bench.base(o.batch);
  for (int n : o.adapters)
    guarded(pre + "_a" + std::to_string(n),
            [&] { return bench.lora(pre + "_a" + std::to_string(n), o.batch, n, cyclic, false,
                                                     o.ablate && (n == 1 || n == 8 || n == 64)); });
  // The peft baseline's configuration: 8 adapters of rank 16 (images 0, 4, 8, ...).
  if (o.ranks[0] == 16 && images >= 32)
    guarded(pre + "_a8_r16",
            [&] { return bench.lora(pre + "_a8_r16", o.batch, 8, [](int j) { return 4 * j; }, false); });
  guarded(pre + "_a64_dora", [&] { return bench.lora(pre + "_a64_dora", o.batch, 64, cyclic, true); });
  if (o.big_batch > 0) {
    const std::string big = "decode_b" + std::to_string(o.big_batch) + "_a" + std::to_string(o.big_batch);
    bench.base(o.big_batch);
    guarded(big, [&] { return bench.lora(big, o.big_batch, o.big_batch, cyclic, false); });
  }
  double prefill_base = 0, prefill_lora = 0;
  if (o.prefill > 0) {
    bench.bind(1, cyclic, false);
    prefill_base = bench.prefill_ms(o.prefill, false);
    prefill_lora = bench.prefill_ms(o.prefill, true);
    Record r{"prefill_" + std::to_string(o.prefill) + "_a1", 1, 1, o.prefill / (prefill_lora * 1e-3),
             o.prefill / (prefill_base * 1e-3), ""};
    std::ostringstream e;
    e << "\"ratio_to_base\": " << r.tok_s / r.base_tok_s << ", \"step_ms\": " << prefill_lora
      << ", \"base_step_ms\": " << prefill_base << ", \"rank\": " << o.ranks[0];
    r.extra = e.str();
    std::cerr << r.case_name << ": " << r.tok_s << " tok/s vs base " << r.base_tok_s << "\n";
    records.push_back(r);
  }

  std::ofstream out(o.out);
  out << "[\n";
  const std::string date = today();
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    out << "  {\"date\": \"" << date << "\", \"device\": \"" << device << "\", \"case\": \"" << r.case_name
        << "\", \"batch\": " << r.batch << ", \"adapters\": " << r.adapters << ", \"tok_s\": " << r.tok_s
        << ", \"base_tok_s\": " << r.base_tok_s << ", " << r.extra << "}" << (i + 1 < records.size() ? "," : "")
        << "\n";
  }
  out << "]\n";
  std::printf("%-22s %6s %9s %12s %12s %8s %8s\n", "case", "batch", "adapters", "tok/s", "base tok/s",
              "x base", "x peft");
  for (const Record& r : records)
    std::printf("%-22s %6d %9d %12.1f %12.1f %8.3f %8.1f\n", r.case_name.c_str(), r.batch, r.adapters,
                r.tok_s, r.base_tok_s, r.tok_s / r.base_tok_s, r.batch == 64 ? r.tok_s / kPeftTokS : 0.0);
  return 0;
}

}  // namespace
}  // namespace banyan::bench

int main(int argc, char** argv) {
  try {
    return banyan::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "banyan_bench_lora_gpu: " << e.what() << "\n";
    return 1;
  }
}
