// Decode graphs: the padding and bucketing logic on the host; padded decode steps
// give the same logits as plain ones (CPU); on a GPU (BANYAN_TEST_DEVICE=cuda),
// captured and replayed steps give bit for bit the logits of the same padded step
// run op by op, for random batches of every size and context bucket, with an
// adapter hook on and off, and capture again when the hook's memory moves.
#include "core/runtime/decode_graphs.h"

#include "core/runtime/device_buffer.h"
#include "core/runtime/linear.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/runner_test_util.h"
#include "core/runtime/test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <iostream>
#include <numeric>
#include <optional>
#include <random>

namespace banyan::core {
namespace {

using test::TempDir;

// ----------------------------------------------------------------- host logic --

TEST(DecodeGraphs, CaptureSizes) {
  EXPECT_EQ(capture_sizes(256), (std::vector<int32_t>{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256}));
  EXPECT_EQ(capture_sizes(64), (std::vector<int32_t>{1, 2, 4, 8, 16, 24, 32, 48, 64}));
  EXPECT_EQ(capture_sizes(100), (std::vector<int32_t>{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 100}));
  EXPECT_EQ(capture_sizes(3), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(capture_sizes(1), (std::vector<int32_t>{1}));
  EXPECT_TRUE(capture_sizes(0).empty());
}

TEST(DecodeGraphs, PaddedSizeAndContextBound) {
  const std::vector<int32_t> sizes = capture_sizes(64);
  EXPECT_EQ(padded_size(sizes, 1), 1);
  EXPECT_EQ(padded_size(sizes, 3), 4);
  EXPECT_EQ(padded_size(sizes, 17), 24);
  EXPECT_EQ(padded_size(sizes, 33), 48);
  EXPECT_EQ(padded_size(sizes, 64), 64);
  EXPECT_EQ(padded_size(sizes, 65), 0);
  EXPECT_EQ(context_bound(1), 256);
  EXPECT_EQ(context_bound(256), 256);
  EXPECT_EQ(context_bound(257), 512);
  EXPECT_EQ(context_bound(5000), 8192);
}

TEST(DecodeGraphs, PureDecode) {
  ForwardBatch b;
  EXPECT_FALSE(is_pure_decode(b));
  b.seqs = {SeqSlice{0, 1, 5, 0, 2, 1, -1}, SeqSlice{1, 1, 9, 2, 3, 1, 0}};
  EXPECT_TRUE(is_pure_decode(b));
  b.seqs[1].logits_rows = 0;  // a one-token prefill chunk that wants no logits
  EXPECT_FALSE(is_pure_decode(b));
  b.seqs[1] = SeqSlice{1, 2, 9, 2, 3, 1, 0};
  EXPECT_FALSE(is_pure_decode(b));
}

TEST(DecodeGraphs, PadsAndPacksAtFixedOffsets) {
  // Block size 4. Sequence 0: context 5 over blocks {7, 3, 9} (one more than it
  // needs); sequence 1: context 2 over block {4}; sequence 2: context 9 over
  // {1, 2, 6}. Padded to 4 sequences, bound 256 (64 blocks per sequence).
  ForwardBatch b;
  b.token_ids = {11, 12, 13};
  b.positions = {4, 1, 8};
  b.slot_mapping = {3 * 4 + 0, 4 * 4 + 1, 6 * 4 + 0};
  b.block_tables = {7, 3, 9, 4, 1, 2, 6};
  b.seqs = {SeqSlice{0, 1, 5, 0, 3, 1, 2}, SeqSlice{1, 1, 2, 3, 1, 1, -1}, SeqSlice{2, 1, 9, 4, 3, 1, 0}};
  const DecodeGraphKey key{4, 256, true};
  ForwardBatch p;
  pad_decode_batch(b, key, 4, p);
  EXPECT_EQ(p.token_ids, (std::vector<int32_t>{11, 12, 13, 0}));
  EXPECT_EQ(p.positions, (std::vector<int32_t>{4, 1, 8, 0}));
  EXPECT_EQ(p.slot_mapping, (std::vector<int32_t>{12, 17, 24, -1}));  // padding writes no KV
  EXPECT_EQ(p.adapter_slots, (std::vector<int32_t>{2, -1, 0, -1}));
  EXPECT_EQ(p.block_tables, (std::vector<int32_t>{7, 3, 4, 1, 2, 6, 0}));  // cut to the context
  ASSERT_EQ(p.seqs.size(), 4u);
  const int32_t want[4][6] = {{0, 1, 5, 0, 2, 1}, {1, 1, 2, 2, 1, 1}, {2, 1, 9, 3, 3, 1}, {3, 1, 1, 6, 1, 1}};
  for (int s = 0; s < 4; ++s) {
    const SeqSlice& q = p.seqs[s];
    EXPECT_EQ((std::vector<int32_t>{q.query_start, q.query_len, q.context_len, q.block_offset,
                                    q.num_blocks, q.logits_rows}),
              std::vector<int32_t>(want[s], want[s] + 6))
        << "sequence " << s;
  }
  EXPECT_EQ(p.num_logits_rows(), 4);

  EXPECT_EQ(decode_layout_capacity(key, 4), 4u * 11 + 4u * 64);
  std::vector<int32_t> device(decode_layout_capacity(key, 4), -7);  // stands for the device
  std::vector<int32_t> st;
  StepLayout l = pack_decode_layout(p, key, 4, Device{}, device.data(), st);
  EXPECT_EQ(st.size(), 4u * 11 + 7);  // only the used table entries are uploaded
  std::copy(st.begin(), st.end(), device.begin());
  EXPECT_EQ(l.num_tokens, 4);
  EXPECT_EQ(l.num_seqs, 4);
  EXPECT_EQ(l.max_query_len, 1);
  EXPECT_EQ(l.max_context_len, 256);  // the bound, not the longest context (9)
  EXPECT_TRUE(l.has_adapters);
  auto at = [&](const Tensor& t) { return static_cast<int32_t*>(t.data) - device.data(); };
  auto ints = [](const Tensor& t) {
    const auto* v = static_cast<const int32_t*>(t.data);
    return std::vector<int32_t>(v, v + t.numel());
  };
  EXPECT_EQ(at(l.token_ids), 0);
  EXPECT_EQ(at(l.positions), 4);
  EXPECT_EQ(at(l.slot_mapping), 8);
  EXPECT_EQ(at(l.adapter_slots), 12);
  EXPECT_EQ(at(l.token_seq), 16);
  EXPECT_EQ(at(l.seq_info), 20);
  EXPECT_EQ(at(l.logits_rows), 36);
  EXPECT_EQ(at(l.logits_adapter_slots), 40);
  EXPECT_EQ(at(l.block_tables), 44);
  EXPECT_EQ(l.block_tables.numel(), 4 * 64);
  EXPECT_EQ(ints(l.token_ids), p.token_ids);
  EXPECT_EQ(ints(l.slot_mapping), p.slot_mapping);
  EXPECT_EQ(ints(l.token_seq), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(ints(l.seq_info), (std::vector<int32_t>{0, 1, 5, 0, 1, 1, 2, 2, 2, 1, 9, 3, 3, 1, 1, 6}));
  EXPECT_EQ(ints(l.logits_rows), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(ints(l.logits_adapter_slots), p.adapter_slots);
  EXPECT_EQ(std::vector<int32_t>(device.begin() + 44, device.begin() + 51), p.block_tables);

  // A batch larger than its key, or a layout of another key, is refused.
  EXPECT_THROW(pad_decode_batch(b, DecodeGraphKey{2, 256, true}, 4, p), Error);
  pad_decode_batch(b, key, 4, p);
  EXPECT_THROW(pack_decode_layout(p, DecodeGraphKey{8, 256, true}, 4, Device{}, device.data(), st), Error);
}

// ------------------------------------------------------------- through models --

/// Sequences with their own blocks (each a run of `per_seq` blocks) and contexts.
struct Sequences {
  int32_t block_size = 16, per_seq = 0, vocab = 0;
  std::vector<int32_t> lens;  // tokens in the cache

  int32_t block(int32_t s, int32_t i) const { return s * per_seq + i; }
  int32_t slot(int32_t s, int32_t pos) const { return block(s, pos / block_size) * block_size + pos % block_size; }

  ForwardBatch prefill(int32_t s, std::mt19937& rng) const {
    ForwardBatch b;
    const int32_t n = lens[s];
    for (int32_t p = 0; p < n; ++p) {
      b.token_ids.push_back(static_cast<int32_t>(rng() % vocab));
      b.positions.push_back(p);
      b.slot_mapping.push_back(slot(s, p));
    }
    for (int32_t i = 0; i < per_seq; ++i) b.block_tables.push_back(block(s, i));
    b.seqs = {SeqSlice{0, n, n, 0, per_seq, 1, -1}};
    return b;
  }

  // One new token per sequence of `which` at position lens[s] (the same position
  // every time, so that any batch may follow any other), each with its whole
  // block table (more than the context needs).
  ForwardBatch decode(const std::vector<int32_t>& which, std::mt19937& rng,
                      const std::vector<int32_t>& adapters = {}) const {
    ForwardBatch b;
    for (size_t i = 0; i < which.size(); ++i) {
      const int32_t s = which[i], p = lens[s];
      b.token_ids.push_back(static_cast<int32_t>(rng() % vocab));
      b.positions.push_back(p);
      b.slot_mapping.push_back(slot(s, p));
      const int32_t offset = static_cast<int32_t>(b.block_tables.size());
      for (int32_t j = 0; j < per_seq; ++j) b.block_tables.push_back(block(s, j));
      b.seqs.push_back(SeqSlice{static_cast<int32_t>(i), 1, p + 1, offset, per_seq, 1,
                                adapters.empty() ? -1 : adapters[i]});
    }
    return b;
  }
};

std::vector<int32_t> pick(int32_t n, int32_t from, std::mt19937& rng) {
  std::vector<int32_t> all(static_cast<size_t>(from));
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(n));
  return all;
}

std::vector<float> logits(ModelRunner& r, const ForwardBatch& b, GraphMode mode) {
  r.set_graph_mode(mode);
  return r.to_host(r.execute(b));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = a.size() == b.size() ? 0.0f : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

float max_abs(const std::vector<float>& a) {
  float m = 0;
  for (float v : a) m = std::max(m, std::fabs(v));
  return m;
}

std::unique_ptr<ModelRunner> open_runner(const std::filesystem::path& dir, const std::string& device,
                                         int32_t block_size, int64_t blocks, int32_t max_batch) {
  ModelRunnerOptions o;
  o.model_dir = dir;
  o.device = device;
  o.block_size = block_size;
  o.num_blocks = blocks;
  o.graphs.max_batch_size = max_batch;
  return std::make_unique<ModelRunner>(test::plugins(), o);
}

TEST(DecodeGraphs, PaddedDecodeStepsMatchPlainOnesOnTheCpu) {
  TempDir dir;
  RandomLlamaSpec spec;
  spec.fast = true;
  write_random_llama(dir.path(), spec);
  Sequences q{4, 80, static_cast<int32_t>(spec.vocab), {3, 9, 17, 30, 2, 300, 12}};
  auto r = open_runner(dir.path(), "cpu", q.block_size, 7 * q.per_seq, 16);
  std::mt19937 rng(3);
  for (int32_t s = 0; s < 7; ++s) r->execute(q.prefill(s, rng));
  const DecodeGraphs::Stats before = r->graph_stats();
  for (int32_t n : {1, 3, 5, 7}) {
    SCOPED_TRACE(n);
    const ForwardBatch b = q.decode(pick(n, 7, rng), rng);
    const auto plain = logits(*r, b, GraphMode::eager);
    const auto padded = logits(*r, b, GraphMode::padded_eager);
    ASSERT_EQ(plain.size(), static_cast<size_t>(n) * spec.vocab);  // padding rows left out
    EXPECT_LE(max_abs_diff(plain, padded), 1e-5f * (1 + max_abs(plain)));
    // No graphs on the CPU: graphs mode is the plain path.
    EXPECT_TRUE(same_bits(logits(*r, b, GraphMode::graphs), plain));
  }
  const DecodeGraphs::Stats after = r->graph_stats();
  EXPECT_EQ(after.padded_eager - before.padded_eager, 4);
  EXPECT_EQ(after.captures, 0);
  EXPECT_EQ(after.replays, 0);
}

// --------------------------------------------------------------------- GPU ------

std::string gpu_device() {
  const char* d = std::getenv("BANYAN_TEST_DEVICE");
  const std::string dev = d ? d : "";
  return dev.rfind("cuda", 0) == 0 && default_device() == "cuda" ? dev : "";
}

#define REQUIRE_GPU()                                                                        \
  if (gpu_device().empty())                                                                  \
  GTEST_SKIP() << "decode graphs need a GPU: run with BANYAN_TEST_DEVICE=cuda on a machine " \
                  "with one (CUDA backend built in)"

// A hook that adds x · D^T to every bf16 linear output, D random per (in, out)
// shape, made on first use (an eager step) in device memory; reload() replaces
// every D with new memory and new values, and moves the generation (or not).
class TestHook final : public LinearAdapterHook {
 public:
  explicit TestHook(Backend& b, bool capture_safe) : b_(b), safe_(capture_safe) {}
  void apply(const std::string&, const LinearContext& ctx, const Tensor& x, Tensor& out) override {
    if (out.type() != DType::bf16) return;
    const int64_t in = x.shape[1], n = out.shape[1];
    auto it = d_.find({in, n});
    if (it == d_.end()) it = d_.emplace(std::pair{in, n}, make(in, n)).first;
    ctx.backend.matmul(x, it->second.tensor, false, nullptr, out, true);
  }
  std::optional<uint64_t> graph_generation() override {
    return safe_ ? std::optional<uint64_t>(generation_) : std::nullopt;
  }
  void reload() {
    ++seed_;
    std::map<std::pair<int64_t, int64_t>, Weight> fresh;
    for (const auto& [k, w] : d_) fresh.emplace(k, make(k.first, k.second));
    b_.synchronize();
    d_ = std::move(fresh);
    ++generation_;
  }

 private:
  struct Weight {
    DeviceBuffer buffer;
    Tensor tensor;
  };
  Weight make(int64_t in, int64_t n) {
    Weight w;
    w.buffer = DeviceBuffer(b_, static_cast<size_t>(in * n) * 2);
    w.tensor = w.buffer.view(DType::bf16, {n, in});
    const auto host = test::random_floats(static_cast<size_t>(in * n), seed_ * 977 + static_cast<uint32_t>(in + n),
                                          -0.05f, 0.05f);
    b_.load_weight(host.data(), DType::f32, w.tensor);
    return w;
  }
  Backend& b_;
  bool safe_;
  uint64_t generation_ = 1;
  uint32_t seed_ = 1;
  std::map<std::pair<int64_t, int64_t>, Weight> d_;
};

struct GpuModel {
  TempDir dir;
  RandomLlamaSpec spec;
  Sequences q;
  std::unique_ptr<ModelRunner> runner;
  std::mt19937 rng{7};

  explicit GpuModel(int32_t seqs = 72) {
    spec.hidden = 256;
    spec.intermediate = 512;
    spec.heads = 8;
    spec.kv_heads = 2;
    spec.vocab = 1000;
    spec.max_position = 2048;
    write_random_llama(dir.path(), spec);
    q.block_size = 16;
    q.per_seq = 48;  // 768 tokens
    q.vocab = static_cast<int32_t>(spec.vocab);
    // Contexts in the 256, 512 and 1024 buckets.
    for (int32_t s = 0; s < seqs; ++s) q.lens.push_back(1 + static_cast<int32_t>(rng() % 700));
    runner = open_runner(dir.path(), gpu_device(), q.block_size, int64_t{seqs} * q.per_seq, 64);
    for (int32_t s = 0; s < seqs; ++s) runner->execute(q.prefill(s, rng));
  }
};

TEST(DecodeGraphsGpu, ReplaysMatchThePaddedStepRunOpByOpBitForBit) {
  REQUIRE_GPU();
  GpuModel m;
  ModelRunner& r = *m.runner;
  const int32_t seqs = static_cast<int32_t>(m.q.lens.size());
  float worst_vs_plain = 0, scale = 0;
  for (int32_t n : {1, 2, 3, 5, 8, 13, 16, 24, 31, 33, 48, 64}) {
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE("batch " + std::to_string(n) + ", round " + std::to_string(round));
      const ForwardBatch b = m.q.decode(pick(n, seqs, m.rng), m.rng);
      const auto want = logits(r, b, GraphMode::padded_eager);
      ASSERT_EQ(want.size(), static_cast<size_t>(n) * m.spec.vocab);
      // First of a key: op by op; second: captured and launched; then replays.
      for (int i = 0; i < 3; ++i) ASSERT_TRUE(same_bits(logits(r, b, GraphMode::graphs), want)) << "run " << i;
      // The plain step (exact context, no padding) differs only by rounding.
      const auto plain = logits(r, b, GraphMode::eager);
      worst_vs_plain = std::max(worst_vs_plain, max_abs_diff(plain, want));
      scale = std::max(scale, max_abs(plain));
    }
  }
  EXPECT_LE(worst_vs_plain, 0.05f * scale) << "graphs vs plain eager: " << worst_vs_plain;
  const DecodeGraphs::Stats st = r.graph_stats();
  EXPECT_EQ(st.capture_failures, 0);
  EXPECT_GE(st.captures, 9);  // at least one per batch size
  EXPECT_GE(st.replays, 24);
  std::cout << "[ graphs ] captures " << st.captures << ", replays " << st.replays << ", padded eager "
            << st.padded_eager << ", invalidations " << st.invalidations << ", graphs " << st.graphs
            << "; max |graph - plain eager| " << worst_vs_plain << " (logits up to " << scale << ")\n";

  // Larger than the largest size, and prefill: the plain path, bit for bit.
  const ForwardBatch big = m.q.decode(pick(seqs, seqs, m.rng), m.rng);
  EXPECT_TRUE(same_bits(logits(r, big, GraphMode::graphs), logits(r, big, GraphMode::eager)));
  EXPECT_EQ(r.graph_stats().replays, st.replays);
  EXPECT_EQ(r.graph_stats().captures, st.captures);
}

TEST(DecodeGraphsGpu, AdapterStepsCaptureTheHookAndCaptureAgainWhenItMoves) {
  REQUIRE_GPU();
  GpuModel m(40);
  ModelRunner& r = *m.runner;
  TestHook hook(r.backend(), true);
  r.linears().set_adapter_hook(&hook);
  auto adapters = [&](int32_t n) {
    std::vector<int32_t> a;
    for (int32_t i = 0; i < n; ++i) a.push_back(i % 3 == 1 ? -1 : i % 2);  // slot 0 first
    return a;
  };
  std::vector<ForwardBatch> batches;
  for (int32_t n : {1, 5, 16, 24}) batches.push_back(m.q.decode(pick(n, 40, m.rng), m.rng, adapters(n)));
  std::vector<std::vector<float>> first;
  for (const auto& b : batches) {
    const auto want = logits(r, b, GraphMode::padded_eager);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(same_bits(logits(r, b, GraphMode::graphs), want));
    first.push_back(want);
  }
  // The same batches without adapters: other graphs, the hook left out.
  for (const auto& b0 : batches) {
    ForwardBatch b = b0;
    for (auto& s : b.seqs) s.adapter_slot = -1;
    const auto want = logits(r, b, GraphMode::padded_eager);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(same_bits(logits(r, b, GraphMode::graphs), want));
  }
  const int64_t captures = r.graph_stats().captures;
  EXPECT_EQ(r.graph_stats().capture_failures, 0);

  // New adapter memory and values, a new generation: captured again, never stale.
  hook.reload();
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto want = logits(r, batches[i], GraphMode::padded_eager);
    EXPECT_FALSE(same_bits(want, first[i]));  // the adapters changed the logits
    for (int k = 0; k < 2; ++k) ASSERT_TRUE(same_bits(logits(r, batches[i], GraphMode::graphs), want));
  }
  EXPECT_GE(r.graph_stats().captures, captures + static_cast<int64_t>(batches.size()));

  // A hook without a generation: its steps run op by op, never captured.
  TestHook eager_hook(r.backend(), false);
  r.linears().set_adapter_hook(&eager_hook);
  const DecodeGraphs::Stats before = r.graph_stats();
  for (const auto& b : batches) {
    const auto want = logits(r, b, GraphMode::padded_eager);
    ASSERT_TRUE(same_bits(logits(r, b, GraphMode::graphs), want));
  }
  EXPECT_EQ(r.graph_stats().captures, before.captures);
  EXPECT_EQ(r.graph_stats().replays, before.replays);
  r.linears().set_adapter_hook(nullptr);
}


// Not a test: decode throughput of the runner with and without graphs, for
// bench/results. BANYAN_GRAPHS_BENCH=FILE.json writes one object per case;
// BANYAN_GRAPHS_BENCH_SHAPES lists 1b (Llama-3.2-1B shape, lm_head untied) and/or
// 8b (Llama-3-8B shape); default 1b. B sequences with 128-token prompts decode 128
// tokens, one synchronized step each (as the engine waits for each step's tokens).
TEST(DecodeGraphsGpu, DecodeThroughput) {
  REQUIRE_GPU();
  const char* out_path = std::getenv("BANYAN_GRAPHS_BENCH");
  if (!out_path || !*out_path) GTEST_SKIP() << "a benchmark: set BANYAN_GRAPHS_BENCH=FILE.json to run it";
  const char* shapes_env = std::getenv("BANYAN_GRAPHS_BENCH_SHAPES");
  const std::string shapes = shapes_env && *shapes_env ? shapes_env : "1b";
  constexpr int32_t kPrompt = 128, kSteps = 128;
  constexpr double kCopyTbS = 3.03;  // device-to-device copy, ../shared/BASELINES.md
  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); };
  char date[16];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  nlohmann::json results = nlohmann::json::array();
  for (const std::string shape : {"1b", "8b"}) {
    if (shapes.find(shape) == std::string::npos) continue;
    TempDir dir;
    RandomLlamaSpec spec;
    spec.fast = true;
    spec.vocab = 128256;
    spec.max_position = 8192;
    spec.heads = 32;
    spec.kv_heads = 8;
    if (shape == "1b") {
      spec.hidden = 2048, spec.intermediate = 8192, spec.layers = 16;
    } else {
      spec.hidden = 4096, spec.intermediate = 14336, spec.layers = 32;
    }
    auto t0 = Clock::now();
    write_random_llama(dir.path(), spec);
    const double write_s = secs(t0);
    const int64_t D = spec.hidden / spec.heads, QD = spec.heads * D, KD = spec.kv_heads * D;
    const double weight_bytes =
        2.0 * (static_cast<double>(spec.layers) *
                   (2.0 * spec.hidden * QD + 2.0 * spec.hidden * KD + 3.0 * spec.hidden * spec.intermediate) +
               static_cast<double>(spec.vocab) * spec.hidden);
    const double kv_token_bytes = 2.0 * 2.0 * spec.layers * KD;
    const int32_t max_batch = 64;
    Sequences q;
    q.block_size = 16;
    q.per_seq = (kPrompt + kSteps + q.block_size - 1) / q.block_size;
    q.vocab = static_cast<int32_t>(spec.vocab);
    t0 = Clock::now();
    auto r = open_runner(dir.path(), gpu_device(), q.block_size, int64_t{max_batch} * q.per_seq, 256);
    std::cout << "[ bench ] " << shape << ": checkpoint written in " << write_s << " s, loaded in " << secs(t0)
              << " s on " << r->backend().name() << "\n";
    std::mt19937 rng(11);
    for (int32_t batch : {1, 16, 64}) {
      q.lens.assign(static_cast<size_t>(batch), kPrompt);
      for (int32_t s = 0; s < batch; ++s) r->execute(q.prefill(s, rng));
      std::vector<int32_t> all(static_cast<size_t>(batch));
      std::iota(all.begin(), all.end(), 0);
      double eager_tok_s = 0;
      for (GraphMode mode : {GraphMode::eager, GraphMode::graphs}) {
        r->set_graph_mode(mode);
        auto step = [&](int32_t i) {
          q.lens.assign(static_cast<size_t>(batch), kPrompt + i);
          r->execute(q.decode(all, rng));
          r->backend().synchronize();
        };
        for (int32_t i = 0; i < 3; ++i) step(i);  // plans; graphs: warm, capture, replay
        const auto t = Clock::now();
        for (int32_t i = 0; i < kSteps; ++i) step(i);
        const double s = secs(t);
        const double tok_s = batch * kSteps / s;
        const double bytes = weight_bytes + batch * kv_token_bytes * (kPrompt + kSteps / 2.0);
        const double roofline = batch / (bytes / (kCopyTbS * 1e12));
        const bool graphs = mode == GraphMode::graphs;
        if (!graphs) eager_tok_s = tok_s;
        nlohmann::json j = {{"date", date},
                            {"device", r->backend().name()},
                            {"case", "runner_decode_" + shape + "_b" + std::to_string(batch) +
                                         (graphs ? "_graphs" : "_eager")},
                            {"shape", shape == "1b" ? "Llama-3.2-1B (untied lm_head)" : "Llama-3-8B"},
                            {"batch", batch},
                            {"graphs", graphs},
                            {"tok_s", tok_s},
                            {"step_ms", 1e3 * s / kSteps},
                            {"roofline_tok_s", roofline},
                            {"fraction_of_roofline", tok_s / roofline},
                            {"bytes_per_step", bytes},
                            {"prompt", kPrompt},
                            {"steps", kSteps}};
        if (graphs) j["speedup_vs_eager"] = tok_s / eager_tok_s;
        std::cout << "[ bench ] " << j.dump() << "\n";
        results.push_back(j);
      }
    }
    const DecodeGraphs::Stats st = r->graph_stats();
    EXPECT_EQ(st.capture_failures, 0);
    EXPECT_GT(st.replays, 0);
  }
  std::ofstream(out_path) << results.dump(2) << "\n";
}

}  // namespace
}  // namespace banyan::core
