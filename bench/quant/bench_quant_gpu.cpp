// Quantized linear layers on the GPU at Llama-3-8B shape: the seven projections of
// one decoder layer (q, k, v, o: 4096 -> 4096/1024/1024/4096; gate, up: 4096 -> 14336;
// down: 14336 -> 4096; random weights), through QuantizedLinear on the CUDA backend,
// against the bf16 weights through the backend's matmul (its GEMV for 1-4 rows,
// cuBLASLt beyond). Reports milliseconds per layer (CUDA events, the fastest of
// --reps runs of --iters layers each), weight bytes, and the decode rate the
// projections alone would allow for 32 layers (batch rows / (32 x time per layer)).
//
// fp8_w8a8: the fp8 plugin's w8a8 option (activations quantized to e4m3, cuBLASLt).
//
// runtime_layer (per batch; --layer 0 skips it): the same seven projections as the
// runtime runs them, through a LinearRegistry over a one-layer checkpoint of the same
// shapes (random, written to a temporary directory) with the method's factories:
// linear_n over q/k/v, linear o, linear_gated over gate/up (act-and-multiply
// included), linear down. With fusion on (the CUDA default; BANYAN_FUSE_LINEARS=0
// turns it off for an A/B run) q/k/v and gate/up run as one product each where the
// registry fuses them: bf16 as LinearRegistry decides (fused_product_pays,
// matmul_gated); a quantized group when its layout stacks by rows (not fp8 per
// tensor, not nf4_double). The JSON says which groups were fused.
//
// --variants 0,1,2 also times each batch-1 GEMV variant (kernels/cuda/quant_gemm.h).
//
//   banyan_bench_quant_gpu [--batches 1,64] [--methods none,int8,int4,nf4,nf4_double,fp8,fp8_w8a8]
//                          [--variants 0,1,2] [--layer 1] [--reps 5] [--iters 20] [--out FILE.json]
#include "core/common/logging.h"
#include "core/plugin_host/plugin_host.h"
#include "core/quant/quantization.h"
#include "core/quant/quantized_linear.h"
#include "core/quant/quantizer.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/random_checkpoint.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/weight_store.h"
#include "kernels/cpu/convert.h"
#include "kernels/cuda/cuda_backend.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

using namespace banyan;
using namespace banyan::core;

namespace {

const std::map<std::string, std::pair<std::string, std::string>> kVariants = {
    {"none", {"none", "{}"}},
    {"int8", {"int8", "{}"}},
    {"int4", {"int4", "{\"group_size\": 128}"}},
    {"nf4", {"nf4", "{}"}},
    {"nf4_double", {"nf4", "{\"double_quant\": true}"}},
    {"fp8", {"fp8", "{}"}},
    {"fp8_channel", {"fp8", "{\"per_channel\": true}"}},
    {"fp8_w8a8", {"fp8", "{\"w8a8\": true}"}},
};

/// The fastest of `reps` runs of `iters` calls of `fn`, in milliseconds per call.
double best_ms(kernels::cuda::CudaBackend& cuda, int reps, int iters, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto start = kernels::cuda::Event::create(true), stop = kernels::cuda::Event::create(true);
    start.record(cuda.stream());
    for (int it = 0; it < iters; ++it) fn();
    stop.record(cuda.stream());
    stop.synchronize();
    best = std::min(best, static_cast<double>(stop.since(start)) / iters);
  }
  return best;
}

/// One Llama-3-8B-shaped layer (a small vocabulary: only the layer is timed).
RandomLlamaSpec layer_spec() {
  RandomLlamaSpec s = llama3_8b_spec(1);
  s.vocab = 256;
  return s;
}

/// The projections of layer 0 as the runtime runs them (LinearRegistry and the
/// method's factories; fusion as the registry's default).
class RuntimeLayer {
 public:
  RuntimeLayer(const PluginHost& plugins, Backend& backend, const std::filesystem::path& dir,
               const std::string& method, const std::string& options)
      : ckpt_(dir), weights_(ckpt_, backend), linears_(weights_, backend) {
    QuantizationOptions qo;
    qo.model_dir = dir;
    qo.method = method;
    qo.options_json = options;
    quant_ = make_quantization(plugins, qo);
    for (const auto& f : quant_.factories) linears_.add_factory(f);
    for (const auto& f : quant_.group_factories) linears_.add_group_factory(f);
  }
  /// One layer's projections for x [M, 4096] (bf16); ctx.arena is reset first.
  void run(const LinearContext& ctx, const Tensor& x) {
    ctx.arena.reset();
    const int64_t M = x.shape[0];
    const std::string qkv[] = {p_ + "self_attn.q_proj", p_ + "self_attn.k_proj", p_ + "self_attn.v_proj"};
    Tensor outs[3] = {Tensor(nullptr, DType::bf16, {M, 4096}), Tensor(nullptr, DType::bf16, {M, 1024}),
                      Tensor(nullptr, DType::bf16, {M, 1024})};
    linears_.forward_n(qkv, BANYAN_LINEAR_DEFAULT, ctx, x, outs);
    Tensor o = ctx.arena.tensor(DType::bf16, {M, 4096});
    linears_.forward(p_ + "self_attn.o_proj", BANYAN_LINEAR_DEFAULT, ctx, outs[0], o);
    Tensor act = ctx.arena.tensor(DType::bf16, {M, 14336});
    linears_.forward_gated(p_ + "mlp.gate_proj", p_ + "mlp.up_proj", BANYAN_LINEAR_DEFAULT, ctx, x, BANYAN_ACT_SILU,
                           act);
    Tensor down = ctx.arena.tensor(DType::bf16, {M, 4096});
    linears_.forward(p_ + "mlp.down_proj", BANYAN_LINEAR_DEFAULT, ctx, act, down);
  }
  bool fused(const std::string& module) const { return linears_.fused(p_ + module); }
  bool fusion() const { return linears_.fusion(); }

 private:
  const std::string p_ = "model.layers.0.";
  Checkpoint ckpt_;
  WeightStore weights_;
  LinearRegistry linears_;
  Quantization quant_;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string methods = "none,int8,int4,nf4,nf4_double,fp8,fp8_channel,fp8_w8a8", batches = "1,64", out_file, variants;
  int reps = 5, iters = 20;
  bool layer_case = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--methods") methods = v;
    else if (k == "--batches") batches = v;
    else if (k == "--variants") variants = v;
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--iters") iters = std::stoi(v);
    else if (k == "--layer") layer_case = v != "0";
    else if (k == "--out") out_file = v;
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  try {
    set_log_level("warn");
    std::string why;
    if (!kernels::cuda::cuda_available(&why)) throw Error(Code::unsupported, "no CUDA device: " + why);
    auto backend = kernels::cuda::make_cuda_backend(0);
    auto& cuda = static_cast<kernels::cuda::CudaBackend&>(*backend);
    PluginHost plugins;
    plugins.scan(PluginHost::default_search_paths());
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {1024, 4096}, {1024, 4096},
                                                             {4096, 4096}, {14336, 4096}, {14336, 4096},
                                                             {4096, 14336}};
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<std::vector<uint16_t>> host;
    std::vector<DeviceBuffer> dense;
    std::vector<Tensor> dense_t;
    for (const auto& [N, K] : shapes) {
      std::vector<uint16_t> w(static_cast<size_t>(N * K));
      for (auto& e : w) e = kernels::cpu::f32_to_bf16(nd(rng));
      dense.emplace_back(*backend, w.size() * 2);
      backend->upload(dense.back().data(), w.data(), w.size() * 2);
      dense_t.push_back(dense.back().view(DType::bf16, {N, K}));
      host.push_back(std::move(w));
    }
    const auto bl = split(batches);
    int64_t max_m = 1;
    for (const auto& b : bl) max_m = std::max<int64_t>(max_m, std::stoll(b));
    DeviceBuffer xbuf(*backend, static_cast<size_t>(max_m * 14336) * 2),
        ybuf(*backend, static_cast<size_t>(max_m * 14336) * 2);
    {
      std::vector<uint16_t> x(static_cast<size_t>(max_m * 14336));
      for (auto& e : x) e = kernels::cpu::f32_to_bf16(nd(rng));
      backend->upload(xbuf.data(), x.data(), x.size() * 2);
    }
    std::optional<TempRandomLlama> layer_ckpt;
    if (layer_case) layer_ckpt.emplace(layer_spec());
    StepArena arena(*backend);
    StepLayout layout;
    ForwardBatch batch;
    const LinearContext ctx{*backend, arena, layout, batch, Tensor(), false};
    auto scratch = std::make_shared<DequantScratch>();
    nlohmann::json results = nlohmann::json::object();
    std::map<std::string, double> base_ms, base_rt_ms;
    for (const auto& variant : split(methods)) {
      try {
        const auto& [plugin, opts] = kVariants.at(variant);
        std::vector<std::unique_ptr<QuantizedLinear>> lins;
        std::vector<QuantizedMatrix> mats;
        QuantizedLinearOptions lo;
        uint64_t bytes = 0;
        if (plugin == "none") {
          for (const auto& [N, K] : shapes) bytes += static_cast<uint64_t>(N * K * 2);
        } else {
          Quantizer q(plugins, plugin, opts);
          lo.fp8_activations = nlohmann::json::parse(opts).value("w8a8", false);
          for (size_t i = 0; i < shapes.size(); ++i) {
            const auto [N, K] = shapes[i];
            mats.push_back(q.quantize("model.layers.0.x", Tensor(host[i].data(), DType::bf16, {N, K})));
            lins.push_back(std::make_unique<QuantizedLinear>(*backend, "model.layers.0.x", mats.back(), nullptr, scratch, lo));
            bytes += lins.back()->device_bytes();
          }
        }
        // The runtime's layer: the registry over the checkpoint, with this method's factories.
        std::optional<RuntimeLayer> rt;
        if (layer_ckpt) rt.emplace(plugins, *backend, layer_ckpt->dir(), plugin, opts);
        nlohmann::json per = nlohmann::json::object();
        for (const auto& b : bl) {
          const int64_t M = std::stoll(b);
          auto layer = [&] {
            for (size_t i = 0; i < shapes.size(); ++i) {
              const auto [N, K] = shapes[i];
              const Tensor x = xbuf.view(DType::bf16, {M, K});
              Tensor y = ybuf.view(DType::bf16, {M, N});
              if (plugin == "none") backend->matmul(x, dense_t[i], false, nullptr, y);
              else lins[i]->forward(ctx, x, y);
            }
          };
          layer();  // warm-up: GEMM plans, scratch
          backend->synchronize();
          const double best = best_ms(cuda, reps, iters, layer);
          // Where the time goes: each projection between events, inside the layer loop
          // (so that every weight streams from memory as in a real step), mean of iters.
          // One synchronization after all iterations: the host stays ahead of the device
          // (a wait per iteration would let the first projections of the next one pace
          // with the host's launches).
          std::vector<double> proj_ms(shapes.size(), 0.0);
          std::vector<std::vector<kernels::cuda::Event>> evs(static_cast<size_t>(iters));
          for (auto& ev : evs)
            for (size_t i = 0; i <= shapes.size(); ++i) ev.push_back(kernels::cuda::Event::create(true));
          layer();  // queue work ahead of the first recorded projection
          for (int it = 0; it < iters; ++it) {
            auto& ev = evs[static_cast<size_t>(it)];
            for (size_t i = 0; i < shapes.size(); ++i) {
              ev[i].record(cuda.stream());
              const auto [N, K] = shapes[i];
              const Tensor x = xbuf.view(DType::bf16, {M, K});
              Tensor y = ybuf.view(DType::bf16, {M, N});
              if (plugin == "none") backend->matmul(x, dense_t[i], false, nullptr, y);
              else lins[i]->forward(ctx, x, y);
            }
            ev[shapes.size()].record(cuda.stream());
          }
          evs.back()[shapes.size()].synchronize();
          for (const auto& ev : evs)
            for (size_t i = 0; i < shapes.size(); ++i) proj_ms[i] += static_cast<double>(ev[i + 1].since(ev[i])) / iters;
          nlohmann::json projections = nlohmann::json::array();
          for (size_t i = 0; i < shapes.size(); ++i) {
            const auto [N, K] = shapes[i];
            const double pb = plugin == "none" ? static_cast<double>(N * K * 2) : static_cast<double>(lins[i]->device_bytes());
            projections.push_back({{"shape", std::to_string(N) + "x" + std::to_string(K)},
                                   {"ms", proj_ms[i]},
                                   {"weight_gb_per_s", pb / (proj_ms[i] * 1e-3) / 1e9}});
            std::cout << "  " << N << "x" << K << ": " << proj_ms[i] * 1e3 << " us, " << pb / (proj_ms[i] * 1e-3) / 1e9
                      << " GB/s\n";
          }
          if (plugin == "none") base_ms[b] = best;
          const double tok_s = static_cast<double>(M) / (32.0 * best * 1e-3);
          per["batch_" + b] = {{"ms_per_layer", best},
                               {"projection_tok_s_32_layers", tok_s},
                               {"speedup_vs_bf16", base_ms.count(b) ? base_ms[b] / best : 0.0},
                               {"weight_gb_per_s", static_cast<double>(bytes) / (best * 1e-3) / 1e9},
                               {"projections", projections}};
          std::cout << variant << " batch " << M << ": " << best << " ms per layer ("
                    << (base_ms.count(b) ? base_ms[b] / best : 0.0) << "x bf16), " << tok_s
                    << " tok/s for 32 layers of projections, " << static_cast<double>(bytes) / (best * 1e-3) / 1e9
                    << " GB/s of weights\n";
          if (rt) {
            const Tensor x = xbuf.view(DType::bf16, {M, 4096});
            auto layer_rt = [&] { rt->run(ctx, x); };
            layer_rt();  // warm-up: the groups are made (weights loaded, quantized) on first use
            backend->synchronize();
            const double rt_ms = best_ms(cuda, reps, iters, layer_rt);
            if (plugin == "none") base_rt_ms[b] = rt_ms;
            per["batch_" + b]["runtime_layer"] = {
                {"ms_per_layer", rt_ms},
                {"fusion", rt->fusion()},
                {"fused_qkv", rt->fused("self_attn.q_proj")},
                {"fused_gate_up", rt->fused("mlp.gate_proj")},
                {"speedup_vs_projections", best / rt_ms},
                {"speedup_vs_bf16", base_rt_ms.count(b) ? base_rt_ms[b] / rt_ms : 0.0},
                {"projection_tok_s_32_layers", static_cast<double>(M) / (32.0 * rt_ms * 1e-3)}};
            std::cout << variant << " batch " << M << ", runtime layer (fusion "
                      << (rt->fusion() ? "on" : "off") << ", q/k/v " << (rt->fused("self_attn.q_proj") ? "fused" : "apart")
                      << ", gate/up " << (rt->fused("mlp.gate_proj") ? "fused" : "apart") << "): " << rt_ms
                      << " ms per layer (" << best / rt_ms << "x the projections apart, "
                      << (base_rt_ms.count(b) ? base_rt_ms[b] / rt_ms : 0.0) << "x bf16's runtime layer)\n";
          }
        }
        // The batch-1 GEMV variants (weight-only methods).
        for (const auto& vs : split(variants)) {
          if (plugin == "none" || lo.fp8_activations || !base_ms.count("1")) break;
          QuantizedLinearOptions lv = lo;
          lv.gemv_variant = std::stoi(vs);
          std::vector<std::unique_ptr<QuantizedLinear>> vl;
          for (const auto& m : mats)
            vl.push_back(std::make_unique<QuantizedLinear>(*backend, "model.layers.0.x", m, nullptr, scratch, lv));
          auto layer = [&] {
            for (size_t i = 0; i < shapes.size(); ++i) {
              const auto [N, K] = shapes[i];
              const Tensor x = xbuf.view(DType::bf16, {1, K});
              Tensor y = ybuf.view(DType::bf16, {1, N});
              vl[i]->forward(ctx, x, y);
            }
          };
          layer();
          backend->synchronize();
          const double best = best_ms(cuda, reps, iters, layer);
          per["batch_1_variant_" + vs] = {{"ms_per_layer", best},
                                          {"speedup_vs_bf16", base_ms["1"] / best},
                                          {"weight_gb_per_s", static_cast<double>(bytes) / (best * 1e-3) / 1e9}};
          std::cout << variant << " batch 1, GEMV variant " << vs << ": " << best << " ms per layer ("
                    << base_ms["1"] / best << "x bf16), " << static_cast<double>(bytes) / (best * 1e-3) / 1e9
                    << " GB/s of weights\n";
        }
        per["weight_bytes_per_layer"] = bytes;
        per["weight_gib_32_layers"] = 32.0 * static_cast<double>(bytes) / (1024.0 * 1024 * 1024);
        results[variant] = per;
      } catch (const std::exception& e) {  // one variant failing keeps the others' figures
        std::cerr << variant << ": error: " << e.what() << "\n";
        results[variant] = {{"error", e.what()}};
      }
    }
    if (!out_file.empty())
      std::ofstream(out_file) << nlohmann::json{{"shape", "Llama-3-8B projections of one layer"},
                                                 {"device", backend->name()},
                                                 {"copy_roofline_tb_s", 3.03},
                                                 {"results", results}}.dump(1)
                              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
