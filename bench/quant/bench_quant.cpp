// Quantizers on the CPU, on the demo model (models/demo), against its bf16 weights:
//  - weights: bytes of the quantized linear layers vs the same layers in bf16;
//  - decode: tokens/s of decode steps at batch 1 and 8 after a 32-token prefill
//    (the fastest of --new-tokens steps: on a shared machine the rest measures the
//    neighbours);
//  - quality: perplexity on the demo's held-out fortunes (every 50th entry of
//    .cache/corpus/fortunes, as tools/train_demo.py splits them; <bos> entry <eos>
//    streamed, consecutive windows of 256 tokens, float32 logits), as its README does.
//
//   banyan_bench_quant [--model models/demo] [--corpus .cache/corpus]
//     [--methods none,int8,int4,nf4,nf4_double,fp8,fp8_channel] [--group-size 64]
//     [--threads 0] [--new-tokens 64] [--ppl-windows 0] [--gemv-reps 0] [--out FILE.json]
//     [--device cpu] [--decode-batches 1,8] [--ppl 1] [--random-llama 8b|tiny]
//  - --device cuda runs the models on the GPU (decode steps of one token per sequence
//    replay CUDA graphs after the first two, as in the engine); --random-llama writes a
//    random checkpoint of Llama-3-8B's shape (8b: 32 layers, 16 GB in a temporary
//    directory, removed after) or a tiny one and measures it instead of --model (no
//    tokenizer: perplexity off); --decode-batches picks the batch sizes.
//  - with --gemv-reps R: also the linear layers of one Llama-3-8B layer (random
//    weights, 218M parameters, far beyond the caches) at 1 and 8 rows, R times each:
//    there decode is bound by memory, as on large models.
#include "core/common/crash_handler.h"
#include "core/common/logging.h"
#include "core/plugin_host/plugin_host.h"
#include "core/quant/quant_kernels.h"
#include "core/quant/quantization.h"
#include "core/quant/quantizer.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernels.h"
#include "core/runtime/greedy.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/weight_store.h"
#include "core/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

using namespace banyan;
using namespace banyan::core;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWindow = 256;

struct Args {
  fs::path model = "models/demo", corpus = ".cache/corpus", out;
  std::string methods = "none,int8,int4,nf4,nf4_double,fp8,fp8_channel";
  std::string device = "cpu", decode_batches = "1,8", random_llama;
  int group_size = 64, threads = 0, new_tokens = 64, ppl_windows = 0, gemv_reps = 0;
  bool ppl = true;
};

// --random-llama: the checkpoint's shape.
RandomLlamaSpec random_llama_spec(const std::string& size) {
  if (size == "8b") return llama3_8b_spec();
  if (size != "tiny") throw Error("--random-llama: 8b or tiny, not " + size);
  RandomLlamaSpec s;
  s.hidden = 256, s.intermediate = 512, s.layers = 2, s.heads = 4, s.kv_heads = 2;
  return s;
}

// variant -> (plugin, options JSON)
const std::map<std::string, std::pair<std::string, std::string>> kVariants = {
    {"none", {"none", "{}"}},
    {"int8", {"int8", "{}"}},
    {"int4", {"int4", "{}"}},
    {"nf4", {"nf4", "{}"}},
    {"nf4_double", {"nf4", "{\"double_quant\": true}"}},
    {"fp8", {"fp8", "{}"}},
    {"fp8_channel", {"fp8", "{\"per_channel\": true}"}},
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The held-out fortunes: tools/train_demo.py's split (global entry counter over the
// sorted files, every 50th held out), entries stripped of newlines, empty ones dropped.
std::vector<std::string> heldout_fortunes(const fs::path& corpus) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(corpus / "fortunes"))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<std::pair<std::string, std::string>> held;  // (file stem, entry)
  size_t i = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t end = text.find("\n%\n", pos);
      if (end == std::string::npos) end = text.size();
      std::string e = text.substr(pos, end - pos);
      const size_t b = e.find_first_not_of('\n'), l = e.find_last_not_of('\n');
      e = b == std::string::npos ? "" : e.substr(b, l - b + 1);
      if (e.find_first_not_of(" \t\n\r\f\v") != std::string::npos) {
        if (i % 50 == 0) held.emplace_back(f.stem().string(), e);
        ++i;
      }
      pos = end + 3;
    }
  }
  std::stable_sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& h : held) out.push_back(std::move(h.second));
  return out;
}

// The fastest of the samples: on a shared machine, the others measure the neighbours.
double best(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Mean next-token NLL over consecutive windows of kWindow + 1 ids.
double mean_nll(ModelRunner& runner, const std::vector<int32_t>& s, int max_windows) {
  int64_t n = (static_cast<int64_t>(s.size()) - 1) / kWindow;
  if (max_windows > 0) n = std::min<int64_t>(n, max_windows);
  const int32_t bs = runner.block_size();
  double total = 0;
  int64_t count = 0;
  for (int64_t w = 0; w < n; ++w) {
    ForwardBatch b;
    SeqSlice q;
    q.query_start = 0;
    q.query_len = kWindow;
    q.context_len = kWindow;
    q.block_offset = 0;
    q.num_blocks = (kWindow + bs - 1) / bs;
    q.logits_rows = kWindow;
    for (int32_t j = 0; j < q.num_blocks; ++j) b.block_tables.push_back(j);
    for (int32_t j = 0; j < kWindow; ++j) {
      b.token_ids.push_back(s[w * kWindow + j]);
      b.positions.push_back(j);
      b.slot_mapping.push_back(j);
      b.adapter_slots.push_back(-1);
    }
    b.seqs.push_back(q);
    const auto logits = runner.to_host(runner.execute(b));
    const size_t V = logits.size() / kWindow;
    for (int32_t j = 0; j < kWindow; ++j) {
      const float* row = logits.data() + j * V;
      const float mx = *std::max_element(row, row + V);
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      total += mx + std::log(sum) - row[s[w * kWindow + j + 1]];
      ++count;
    }
  }
  return total / static_cast<double>(std::max<int64_t>(count, 1));
}

// Seconds of one decode step (the fastest) of `batch` sequences (each already holding
// `prompt_len` tokens in the KV cache; the token fed does not matter for speed).
double decode_step_seconds(ModelRunner& runner, int batch, int steps, int prompt_len) {
  const int32_t bs = runner.block_size();
  const int32_t per_seq = (prompt_len + steps + bs - 1) / bs;
  ForwardBatch b;
  for (int s = 0; s < batch; ++s) {  // prefill
    SeqSlice q;
    q.query_start = b.num_tokens();
    q.query_len = prompt_len;
    q.context_len = prompt_len;
    q.block_offset = static_cast<int32_t>(b.block_tables.size());
    q.num_blocks = per_seq;
    for (int32_t j = 0; j < per_seq; ++j) b.block_tables.push_back(s * per_seq + j);
    for (int32_t j = 0; j < prompt_len; ++j) {
      b.token_ids.push_back(3 + j);
      b.positions.push_back(j);
      b.slot_mapping.push_back(s * per_seq * bs + j);
      b.adapter_slots.push_back(-1);
    }
    b.seqs.push_back(q);
  }
  runner.to_host(runner.execute(b));
  std::vector<double> times;
  for (int t = 0; t < steps; ++t) {
    const int32_t pos = prompt_len + t;
    for (int s = 0; s < batch; ++s) {
      b.token_ids[s] = 100 + t;
      b.positions[s] = pos;
      b.slot_mapping[s] = s * per_seq * bs + pos;
      b.seqs[s].query_start = s;
      b.seqs[s].query_len = 1;
      b.seqs[s].context_len = pos + 1;
    }
    b.token_ids.resize(batch);
    b.positions.resize(batch);
    b.slot_mapping.resize(batch);
    b.adapter_slots.resize(batch);
    const auto t0 = Clock::now();
    runner.execute(b);
    runner.backend().synchronize();  // (the logits stay on the device, as the engine's do)
    times.push_back(seconds_since(t0));
  }
  return best(times);
}

QuantView view_of(const QuantizedMatrix& m) {
  const BanyanQuantizedWeight& w = m.get();
  QuantView v;
  v.layout = w.layout;
  v.rows = w.rows;
  v.cols = w.cols;
  v.group_size = w.group_size;
  v.group_size2 = w.group_size2;
  v.offset = w.offset;
  v.per_row_scale = Tensor(w.scales).numel() == w.rows && w.rows > 1;
  v.qweight = w.qweight.data;
  v.scales = w.scales.data;
  v.zeros = static_cast<const uint8_t*>(w.zeros.data);
  v.code = static_cast<const float*>(w.code.data);
  v.scales2 = static_cast<const float*>(w.scales2.data);
  v.code2 = static_cast<const float*>(w.code2.data);
  return v;
}

// One Llama-3-8B layer's linear layers (q, k, v, o, gate, up, down) at M rows of x:
// seconds per layer (the fastest of `reps`), quantized kernels vs the bf16 kernel of
// the CPU backend.
nlohmann::json gemv_bench(const PluginHost& plugins, const std::vector<std::string>& variants, int M, int reps) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {1024, 4096}, {1024, 4096},
                                                           {4096, 4096}, {14336, 4096}, {14336, 4096},
                                                           {4096, 14336}};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<std::vector<uint16_t>> bf16;
  for (const auto& [N, K] : shapes) {
    std::vector<uint16_t> w(static_cast<size_t>(N * K));
    for (auto& e : w) e = kernels::cpu::f32_to_bf16(nd(rng));
    bf16.push_back(std::move(w));
  }
  std::vector<float> x(static_cast<size_t>(M) * 14336), out(static_cast<size_t>(M) * 14336);
  for (auto& e : x) e = nd(rng);
  nlohmann::json res = nlohmann::json::object();
  double base = 0;
  for (const auto& variant : variants) {
    const auto& [plugin, opts] = kVariants.at(variant);
    std::vector<QuantizedMatrix> mats;
    uint64_t bytes = 0;
    if (plugin != "none") {
      Quantizer q(plugins, plugin, variant == "int4" ? "{\"group_size\": 128}" : opts);
      for (size_t i = 0; i < shapes.size(); ++i) {
        mats.push_back(q.quantize("model.layers.0.x", Tensor(bf16[i].data(), DType::bf16,
                                                              {shapes[i].first, shapes[i].second})));
        bytes += mats.back().bytes();
      }
    } else {
      for (const auto& [N, K] : shapes) bytes += static_cast<uint64_t>(N * K * 2);
    }
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      for (size_t i = 0; i < shapes.size(); ++i) {
        const auto [N, K] = shapes[i];
        if (plugin == "none")
          kernels::cpu::matmul(x.data(), M, K, bf16[i].data(), kernels::cpu::WeightType::bf16, false, N,
                               nullptr, out.data(), false);
        else
          quant_matmul_cpu(view_of(mats[i]), x.data(), M, nullptr, out.data(), false);
      }
      t.push_back(seconds_since(t0));
    }
    const double sec = best(t);
    if (plugin == "none") base = sec;
    res[variant] = {{"seconds_per_layer", sec}, {"weight_bytes", bytes},
                    {"speedup_vs_bf16", base > 0 ? base / sec : 0.0},
                    {"gb_per_s", static_cast<double>(bytes) / sec / 1e9}};
    std::cout << "gemv M=" << M << " " << variant << ": " << sec * 1e3 << " ms per Llama-8B layer, "
              << bytes / 1e6 << " MB, " << (base > 0 ? base / sec : 0.0) << "x bf16\n";
  }
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  install_crash_handler();
  std::cout << std::unitbuf;  // lines reach a pipe as they are written
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--corpus") a.corpus = v;
    else if (k == "--methods") a.methods = v;
    else if (k == "--group-size") a.group_size = std::stoi(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--new-tokens") a.new_tokens = std::stoi(v);
    else if (k == "--ppl-windows") a.ppl_windows = std::stoi(v);
    else if (k == "--out") a.out = v;
    else if (k == "--gemv-reps") a.gemv_reps = std::stoi(v);
    else if (k == "--device") a.device = v;
    else if (k == "--decode-batches") a.decode_batches = v;
    else if (k == "--ppl") a.ppl = v != "0";
    else if (k == "--random-llama") a.random_llama = v;
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  try {
    set_log_level("warn");
    PluginHost plugins;
    plugins.scan(PluginHost::default_search_paths());
    std::optional<TempRandomLlama> random;
    if (!a.random_llama.empty()) {
      random.emplace(random_llama_spec(a.random_llama));
      a.model = random->dir();
      a.ppl = false;  // random weights, no tokenizer
    }
    std::vector<int32_t> stream;
    if (a.ppl) {
      const Tokenizer tok = Tokenizer::load(a.model);
      for (const auto& e : heldout_fortunes(a.corpus)) {
        stream.push_back(1);  // <|bos|>
        for (int32_t t : tok.encode(e, false)) stream.push_back(t);
        stream.push_back(2);  // <|eos|>
      }
      std::cerr << "held-out stream: " << stream.size() << " tokens, " << (stream.size() - 1) / kWindow
                << " windows of " << kWindow << "\n";
    }
    std::vector<int> batches;
    for (const auto& b : split(a.decode_batches, ',')) batches.push_back(std::stoi(b));
    if (batches.empty()) throw Error("--decode-batches: no batch size");
    const int max_batch = *std::max_element(batches.begin(), batches.end());

    nlohmann::json results = nlohmann::json::array();
    const std::string model_name = random ? "random llama " + a.random_llama : a.model.string();
    auto write_json = [&](const nlohmann::json& doc) {
      if (!a.out.empty()) std::ofstream(a.out) << doc.dump(1) << "\n";
    };
    double base_ppl = 0;
    std::map<int, double> base_tok_s;  // bf16's decode tokens/s per batch
    for (const auto& variant : split(a.methods, ',')) {
      const auto it = kVariants.find(variant);
      if (it == kVariants.end()) throw Error("unknown variant " + variant);
      QuantizationOptions qo;
      qo.model_dir = a.model;
      qo.method = it->second.first;
      qo.group_size = a.group_size;
      qo.options_json = it->second.second;
      Quantization q = make_quantization(plugins, qo);
      ModelRunnerOptions o;
      o.model_dir = a.model;
      o.device = a.device;
      // Blocks for every sequence of the largest batch (32-token prompts), 16 tokens each.
      o.num_blocks = std::max(128, max_batch * ((32 + a.new_tokens + 15) / 16 + 1));
      o.cpu.threads = a.threads;
      o.linear_factories = q.factories;
      o.linear_group_factories = q.group_factories;
      std::cerr << variant << ": loading " << a.model.string() << " on " << a.device << "\n";
      auto t0 = Clock::now();
      ModelRunner runner(plugins, o);
      const double load_s = seconds_since(t0);
      const double ppl = a.ppl ? std::exp(mean_nll(runner, stream, a.ppl_windows)) : 0.0;
      std::map<int, double> tok_s;
      for (int b : batches) {
        std::cerr << variant << ": loaded in " << seconds_since(t0) << " s, decode batch " << b << "\n";
        tok_s[b] = b / decode_step_seconds(runner, b, a.new_tokens, 32);
      }
      if (variant == "none") {
        base_ppl = ppl;
        base_tok_s = tok_s;
      }
      // Linear layers of the decoder blocks: quantized bytes, or bf16 bytes when "none".
      uint64_t linear_bytes = q.stats->device_bytes, bf16_bytes = q.stats->source_bytes;
      if (variant == "none") {
        linear_bytes = bf16_bytes = 0;
        for (const auto& name : runner.weights().checkpoint().names())
          if (in_decoder_block(name) && name.ends_with("_proj.weight"))
            bf16_bytes += runner.weights().checkpoint().get(name).nbytes();
        linear_bytes = bf16_bytes;
      }
      const double bits = q.stats->source_params ? 8.0 * static_cast<double>(linear_bytes) /
                                                       static_cast<double>(q.stats->source_params)
                                                 : 16.0;
      nlohmann::json r = {{"variant", variant},
                          {"plugin", it->second.first},
                          {"options", nlohmann::json::parse(it->second.second)},
                          {"group_size", variant == "int4" ? a.group_size : 0},
                          {"load_seconds", load_s},
                          {"linear_bytes", linear_bytes},
                          {"linear_bf16_bytes", bf16_bytes},
                          {"bits_per_weight", bits},
                          {"other_weight_bytes", runner.weights().device_bytes()}};
      if (a.ppl) r["heldout_ppl"] = ppl;
      if (base_ppl > 0) r["ppl_vs_bf16"] = ppl / base_ppl;
      std::cout << variant << ":";
      if (a.ppl) std::cout << " ppl " << ppl << ",";
      for (const auto& [b, t] : tok_s) {
        r["decode_tok_s_b" + std::to_string(b)] = t;
        if (base_tok_s.count(b)) r["speed_b" + std::to_string(b) + "_vs_bf16"] = t / base_tok_s[b];
        std::cout << " decode b" << b << " " << t << " tok/s,";
      }
      std::cout << " linear weights " << linear_bytes << " B (" << bits << " bits/weight; bf16 "
                << bf16_bytes << " B), load " << load_s << " s\n";
      results.push_back(r);
      // The results so far, after each method: a run cut short by its time limit
      // still leaves the methods it finished.
      write_json({{"model", model_name}, {"device", a.device}, {"new_tokens", a.new_tokens}, {"partial", true},
                  {"results", results}});
    }
    nlohmann::json gemv = nlohmann::json::object();
    if (a.gemv_reps > 0) {
      if (a.threads > 0) omp_set_num_threads(a.threads);
      for (int M : {1, 8}) gemv["M" + std::to_string(M)] = gemv_bench(plugins, split(a.methods, ','), M, a.gemv_reps);
    }
    nlohmann::json doc = {{"model", model_name},
                          {"device", a.device},
                          {"gemv_llama3_8b_layer", gemv},
                          {"threads", a.threads},
                          {"new_tokens", a.new_tokens},
                          {"heldout_tokens", stream.size()},
                          {"ppl_windows", !a.ppl ? 0
                                          : a.ppl_windows > 0 ? a.ppl_windows
                                                              : static_cast<int>((stream.size() - 1) / kWindow)},
                          {"results", results}};
    write_json(doc);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
