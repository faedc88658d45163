// The sampling op on the GPU (CudaBackend::sample) against the CPU backend's op,
// which is banyan::logits::sample_row: fresh random logits for every parameter
// combination (greedy, temperature, top_k, top_p, min_p, penalties, logit_bias,
// min_tokens, logprobs), ties, rows with every logit masked. With
// BANYAN_SAMPLING_BENCH=<file.json> it also times the op against the old path (the
// logits copied to the host and sampled there, row by row) and writes the figures.
#include "kernels/cuda/cuda_test_util.h"

#include <banyan/logits.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>

namespace banyan::kernels::cuda::test {
namespace {

struct Case {
  std::string name;
  BanyanDecodeParams p;
};

std::vector<Case> cases() {
  auto base = [] {
    BanyanDecodeParams p{};
    p.struct_size = sizeof p;
    p.temperature = 1.0;
    p.top_p = 1.0;
    p.repetition_penalty = 1.0;
    return p;
  };
  std::vector<Case> c;
  auto add = [&](std::string name, auto f) {
    BanyanDecodeParams p = base();
    f(p);
    c.push_back({std::move(name), p});
  };
  add("greedy", [](auto& p) { p.temperature = 0; });
  add("greedy+logprobs", [](auto& p) { p.temperature = 0, p.num_logprobs = 5; });
  add("temperature", [](auto& p) { p.temperature = 0.7; });
  add("temperature 1.3", [](auto& p) { p.temperature = 1.3; });
  add("top_k", [](auto& p) { p.top_k = 40; });
  add("top_k 1", [](auto& p) { p.top_k = 1; });
  add("top_p", [](auto& p) { p.temperature = 0.8, p.top_p = 0.9; });
  add("top_p small", [](auto& p) { p.top_p = 0.05; });
  add("min_p", [](auto& p) { p.min_p = 0.05; });
  add("top_k+top_p+min_p", [](auto& p) { p.top_k = 100, p.top_p = 0.8, p.min_p = 0.02, p.temperature = 0.6; });
  add("repetition", [](auto& p) { p.repetition_penalty = 1.3; });
  add("presence+frequency", [](auto& p) { p.presence_penalty = 0.5, p.frequency_penalty = 0.7; });
  add("greedy+penalties", [](auto& p) {
    p.temperature = 0, p.repetition_penalty = 1.2, p.presence_penalty = 0.4, p.frequency_penalty = 0.3;
  });
  add("bias", [](auto& p) { p.num_bias = 3; });
  add("min_tokens", [](auto& p) { p.min_tokens = 1000, p.num_eos = 2, p.num_stop_token_ids = 1; });
  add("logprobs 20+top_p", [](auto& p) { p.num_logprobs = 20, p.top_p = 0.95; });
  add("everything", [](auto& p) {
    p.temperature = 0.9, p.top_k = 50, p.top_p = 0.9, p.min_p = 0.01, p.repetition_penalty = 1.1,
    p.presence_penalty = 0.2, p.frequency_penalty = 0.1, p.num_bias = 3, p.min_tokens = 1000,
    p.num_eos = 2, p.num_logprobs = 3;
  });
  return c;
}

struct Batch {
  int64_t V = 0;
  std::vector<float> logits;  // [R, V]
  std::vector<BanyanSampleRow> rows;
  std::vector<BanyanLogitEdit> edits;
  std::vector<std::string> names;
};

/// One row per case (times `repeat`), logits N(0, scale) (optionally rounded to a
/// step, for ties), a history of 300 tokens with repeats, bias / eos / stop ids.
Batch make_batch(int64_t V, int repeat, uint32_t seed, float scale = 3.0f, float step = 0.0f) {
  Batch b;
  b.V = V;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(std::min<int64_t>(V, 500)) - 1);
  const int32_t bias_ids[3] = {1, static_cast<int32_t>(V / 2), static_cast<int32_t>(V - 1)};
  const float bias_values[3] = {5.0f, -100.0f, 2.5f};
  const int32_t eos[2] = {0, static_cast<int32_t>(V / 3)};
  const int32_t stop[1] = {2};
  for (int rep = 0; rep < repeat; ++rep) {
    for (Case c : cases()) {
      c.p.bias_ids = bias_ids;
      c.p.bias_values = bias_values;
      c.p.eos_ids = eos;
      c.p.stop_token_ids = stop;
      const int32_t row = static_cast<int32_t>(b.rows.size());
      for (int64_t i = 0; i < V; ++i) {
        float x = normal(rng);
        if (step > 0) x = std::round(x / step) * step;
        b.logits.push_back(x);
      }
      std::vector<int32_t> history(300);
      for (auto& t : history) t = tok(rng);
      BanyanSampleRow r{};
      r.logits_row = row;
      r.top_k = c.p.top_k;
      r.temperature = c.p.temperature;
      r.top_p = c.p.top_p;
      r.min_p = c.p.min_p;
      r.u = uniform(rng);
      r.repetition_penalty = static_cast<float>(c.p.repetition_penalty);
      r.num_logprobs = static_cast<int32_t>(std::min<int64_t>(c.p.num_logprobs, V));
      r.first_edit = static_cast<int32_t>(b.edits.size());
      logits::make_edits(c.p, history, 200, static_cast<int32_t>(V), b.edits);
      r.num_edits = static_cast<int32_t>(b.edits.size()) - r.first_edit;
      b.rows.push_back(r);
      b.names.push_back(c.name);
    }
  }
  return b;
}

struct Results {
  std::vector<BanyanSampleResult> res;
  std::vector<int32_t> ids;
  std::vector<float> lps;
};

Results run(core::Backend& be, const Batch& b, int repeat_calls = 1, double* ms = nullptr) {
  const int64_t R = static_cast<int64_t>(b.logits.size()) / b.V;
  Dev logits = make(be, DType::f32, {R, b.V});
  be.upload(logits.t.data, b.logits.data(), b.logits.size() * sizeof(float));
  Results out;
  const size_t n = b.rows.size();
  out.res.resize(n);
  out.ids.assign(n * 20, -1);
  out.lps.assign(n * 20, 0.0f);
  for (size_t i = 0; i < n; ++i) out.res[i] = {-1, 0, -1, out.ids.data() + i * 20, out.lps.data() + i * 20};
  be.sample(logits.t, b.rows, b.edits, out.res);  // warm-up (scratch)
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < repeat_calls; ++k) be.sample(logits.t, b.rows, b.edits, out.res);
  auto t1 = std::chrono::steady_clock::now();
  if (ms) *ms = std::chrono::duration<double, std::milli>(t1 - t0).count() / repeat_calls;
  return out;
}

void expect_same(const Batch& b, const Results& cpu, const Results& gpu, const std::string& what) {
  int differ = 0;
  for (size_t i = 0; i < b.rows.size(); ++i) {
    const std::string at = what + ", row " + std::to_string(i) + " (" + b.names[i] + ")";
    EXPECT_EQ(gpu.res[i].used_u, cpu.res[i].used_u) << at;
    if (gpu.res[i].token != cpu.res[i].token) {
      ++differ;
      ADD_FAILURE() << at << ": token " << gpu.res[i].token << " vs " << cpu.res[i].token
                    << " on the CPU (u " << b.rows[i].u << ")";
      continue;
    }
    EXPECT_NEAR(gpu.res[i].logprob, cpu.res[i].logprob, 1e-4 * std::max(1.0f, std::fabs(cpu.res[i].logprob)))
        << at;
    for (int k = 0; k < b.rows[i].num_logprobs; ++k) {
      EXPECT_EQ(gpu.ids[i * 20 + k], cpu.ids[i * 20 + k]) << at << ", top " << k;
      EXPECT_NEAR(gpu.lps[i * 20 + k], cpu.lps[i * 20 + k],
                  1e-4 * std::max(1.0f, std::fabs(cpu.lps[i * 20 + k])))
          << at << ", top " << k;
    }
  }
  EXPECT_EQ(differ, 0) << what;
}

TEST(CudaSampling, MatchesTheCpuOpForEveryParameterCombination) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  for (int64_t V : {int64_t{128256}, int64_t{32000}, int64_t{1000}, int64_t{7}}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      Batch b = make_batch(V, 2, seed * 101 + static_cast<uint32_t>(V));
      expect_same(b, run(*be.cpu, b), run(*be.gpu, b), "V " + std::to_string(V) + " seed " + std::to_string(seed));
    }
  }
}

TEST(CudaSampling, TiesGoToTheLowerIdAsOnTheCpu) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  // Logits on a coarse grid: many equal values, in argmax, top_k, the sorted order
  // and the top logprobs.
  for (int64_t V : {int64_t{128256}, int64_t{4096}}) {
    Batch b = make_batch(V, 2, 77, 2.0f, 0.5f);
    expect_same(b, run(*be.cpu, b), run(*be.gpu, b), "ties, V " + std::to_string(V));
  }
}

TEST(CudaSampling, EveryLogitMaskedTakesTokenZeroWithoutADraw) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  Batch b;
  b.V = 64;
  b.logits.assign(64, 1.0f);
  for (int32_t t = 0; t < 64; ++t) b.edits.push_back({t, BANYAN_EDIT_MASK, 0.0f, 0.0f});
  BanyanSampleRow r{};
  r.temperature = 0.8;
  r.top_p = 0.9;
  r.u = 0.5;
  r.repetition_penalty = 1.0f;
  r.num_edits = 64;
  b.rows = {r};
  b.names = {"masked"};
  Results cpu = run(*be.cpu, b), gpu = run(*be.gpu, b);
  EXPECT_EQ(cpu.res[0].used_u, 0);
  EXPECT_EQ(cpu.res[0].token, 0);
  expect_same(b, cpu, gpu, "all masked");
}

TEST(CudaSampling, CopiesBackOnlyTheResults) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  Batch b = make_batch(128256, 4, 9);
  const int64_t R = static_cast<int64_t>(b.rows.size());
  Results warm = run(*be.gpu, b);  // allocates, uploads
  Dev logits = make(*be.gpu, DType::f32, {R, b.V});
  const uint64_t before = be.gpu->bytes_to_host();
  be.gpu->sample(logits.t, b.rows, b.edits, warm.res);
  const uint64_t bytes = be.gpu->bytes_to_host() - before;
  EXPECT_GT(bytes, 0u);
  EXPECT_LE(bytes, static_cast<uint64_t>(R) * (16 + 20 * 8)) << "O(rows x (1 + n)), not R x V";
}

// ---------------------------------------------------------------- timing -------
std::string json_case(const std::string& name, int rows, double ms, double old_ms, const std::string& extra) {
  std::ostringstream o;
  o << "  {\"date\": \"2026-11-25\", \"device\": \"NVIDIA H100 80GB HBM3 (nvidia-h100-x1)\", "
    << "\"case\": \"" << name << "\", \"batch\": " << rows << ", \"vocab\": 128256, "
    << "\"op_ms\": " << ms << ", \"old_copy_plus_host_ms\": " << old_ms
    << ", \"speedup\": " << old_ms / ms << extra << "}";
  return o.str();
}

TEST(CudaSampling, Timing) {
  BANYAN_REQUIRE_GPU();
  const char* path = std::getenv("BANYAN_SAMPLING_BENCH");
  if (!path || !*path) GTEST_SKIP() << "set BANYAN_SAMPLING_BENCH=<file.json> to time the op";
  Backends be;
  const int64_t V = 128256;
  std::vector<std::string> out;
  for (const char* mode : {"greedy", "top_p 0.9 + temperature 0.8", "greedy + logprobs 5"}) {
    for (int rows : {1, 16, 64}) {
      Batch b;
      b.V = V;
      std::mt19937 rng(rows);
      std::normal_distribution<float> normal(0.0f, 3.0f);
      b.logits.resize(static_cast<size_t>(rows) * V);
      for (auto& x : b.logits) x = normal(rng);
      for (int i = 0; i < rows; ++i) {
        BanyanSampleRow r{};
        r.logits_row = i;
        r.temperature = std::string(mode).rfind("greedy", 0) == 0 ? 0.0 : 0.8;
        r.top_p = r.temperature > 0 ? 0.9 : 1.0;
        r.u = 0.37;
        r.repetition_penalty = 1.0f;
        r.num_logprobs = std::string(mode).find("logprobs") != std::string::npos ? 5 : 0;
        b.rows.push_back(r);
        b.names.push_back(mode);
      }
      double ms = 0;
      Results gpu = run(*be.gpu, b, 50, &ms);
      // The old path: the [R, V] logits downloaded, then each row sampled on the host
      // (the plugin's loop: one thread).
      Dev logits = make(*be.gpu, DType::f32, {rows, V});
      be.gpu->upload(logits.t.data, b.logits.data(), b.logits.size() * sizeof(float));
      std::vector<float> host(b.logits.size()), work, logp;
      Results cpu = gpu;
      const int reps = 5;
      double copy_ms = 0, host_ms = 0;
      for (int k = 0; k < reps; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        be.gpu->download(host.data(), logits.t.data, host.size() * sizeof(float));
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < rows; ++i)
          logits::sample_row({host.data() + static_cast<size_t>(i) * V, static_cast<size_t>(V)}, b.rows[i],
                             {}, work, logp, cpu.res[i]);
        auto t2 = std::chrono::steady_clock::now();
        copy_ms += std::chrono::duration<double, std::milli>(t1 - t0).count() / reps;
        host_ms += std::chrono::duration<double, std::milli>(t2 - t1).count() / reps;
      }
      for (int i = 0; i < rows; ++i) EXPECT_EQ(gpu.res[i].token, cpu.res[i].token) << mode << " row " << i;
      std::cout << "[ timing   ] " << mode << " batch " << rows << ": op " << ms << " ms; old path "
                << copy_ms + host_ms << " ms (copy " << copy_ms << " + host " << host_ms << ")\n";
      std::ostringstream extra;
      extra << ", \"old_copy_ms\": " << copy_ms << ", \"old_host_ms\": " << host_ms
            << ", \"logits_bytes\": " << host.size() * sizeof(float);
      out.push_back(json_case(std::string("sampling op: ") + mode, rows, ms, copy_ms + host_ms, extra.str()));
    }
  }
  std::ofstream f(path);
  f << "[\n";
  for (size_t i = 0; i < out.size(); ++i) f << out[i] << (i + 1 < out.size() ? ",\n" : "\n");
  f << "]\n";
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
