#include "core/quant/quantization.h"

#include "core/common/logging.h"
#include "core/plugin_host/plugin_host.h"
#include "core/quant/quantized_linear.h"
#include "core/quant/quantizer.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/weight_store.h"

#include <banyan/error.h>
#include <banyan/quantizer.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace banyan::core {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

const PluginOption* option(const PluginInfo& p, const std::string& name) {
  for (const auto& o : p.options)
    if (o.name == name) return &o;
  return nullptr;
}

/// The quantizer plugin whose checkpoint_methods lists `method`, with the list of
/// everything readable for the message.
const PluginInfo* reader_for(const PluginHost& plugins, const std::string& method, std::string* known) {
  const PluginInfo* found = nullptr;
  for (const auto& p : plugins.plugins()) {
    if (p.kind != "quantizer") continue;
    const PluginOption* o = option(p, "checkpoint_methods");
    if (!o || o->default_json.empty()) continue;
    for (const auto& m : split_list(json::parse(o->default_json).get<std::string>())) {
      if (lower(m) == method && !found) found = &p;
      *known += (known->empty() ? "" : ", ") + m + " (" + p.name + ")";
    }
  }
  return found;
}

std::optional<json> quantization_config(const fs::path& dir) {
  std::ifstream in(dir / "config.json");
  if (!in) return std::nullopt;  // the model runner reports a missing config.json
  json c;
  try {
    c = json::parse(in);
  } catch (const json::exception&) {
    return std::nullopt;
  }
  auto it = c.find("quantization_config");
  if (it == c.end() || it->is_null()) return std::nullopt;
  if (!it->is_object())
    throw Error((dir / "config.json").string() + ": quantization_config is not an object");
  return *it;
}

// A host view of a checkpoint weight, [out, in] (transposed into f32 when stored [in, out]).
Tensor weight_view(const SafetensorsTensor& st, bool transposed, std::vector<float>& scratch,
                   const std::string& module) {
  if (!st.dtype || (*st.dtype != DType::bf16 && *st.dtype != DType::f16 && *st.dtype != DType::f32))
    throw Error(Code::unsupported, module + ".weight has dtype " + st.dtype_name +
                                       ": quantizing at load needs BF16, F16 or F32 weights");
  if (st.shape.size() != 2)
    throw Error(module + ".weight has " + std::to_string(st.shape.size()) + " dimensions, expected 2");
  Tensor t(const_cast<std::byte*>(st.data), *st.dtype, {st.shape[0], st.shape[1]});
  if (!transposed) return t;
  const int64_t K = st.shape[0], N = st.shape[1];
  scratch.resize(static_cast<size_t>(N * K));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) scratch[n * K + k] = float_element(t, k * N + n);
  return Tensor(scratch.data(), DType::f32, {N, K});
}

struct State {
  std::unique_ptr<Quantizer> quantizer;
  bool prequantized = false;
  std::string checkpoint_method;
  // Shared by the providers made, owned by them only: it holds device memory of their
  // backend, so it must go with them (the providers live in the runner, which
  // destroys them before its backend), whatever outlives the runner of this State.
  std::weak_ptr<DequantScratch> scratch;
  QuantizedLinearOptions linear;
  std::shared_ptr<QuantizationStats> stats = std::make_shared<QuantizationStats>();
  bool told_fused = false, told_unfused = false;  // one log line each
};

std::shared_ptr<DequantScratch> shared_scratch(State& st) {
  auto s = st.scratch.lock();
  if (!s) st.scratch = s = std::make_shared<DequantScratch>();
  return s;
}

void add_stats(State& st, const QuantizedLinear& p, int64_t modules, uint64_t source_bytes, uint64_t params) {
  st.stats->modules += modules;
  st.stats->device_bytes += p.device_bytes();
  st.stats->source_bytes += source_bytes;
  st.stats->source_params += params;
}

std::unique_ptr<LinearProvider> make_provider(State& st, const LinearSource& s) {
  if (!st.prequantized && !in_decoder_block(s.module)) return nullptr;
  const Checkpoint& ckpt = s.weights.checkpoint();
  const bool transposed = (s.flags & BANYAN_LINEAR_TRANSPOSED) != 0;
  std::optional<QuantizedMatrix> m;
  uint64_t source_bytes = 0, params = 0;
  if (st.prequantized) {
    if (transposed)
      throw Error(Code::unsupported, "linear " + s.module + ": pre-quantized weights of transposed "
                                                            "(Conv1D) layers are not read");
    m = st.quantizer->from_checkpoint(s.module, ckpt);
    if (!m) return nullptr;  // kept dense by the checkpoint
    source_bytes = m->bytes();
  } else {
    const SafetensorsTensor* w = ckpt.find(s.module + ".weight");
    if (!w) return nullptr;  // DenseLinear names what is missing
    std::vector<float> scratch;
    m = st.quantizer->quantize(s.module, weight_view(*w, transposed, scratch, s.module));
    source_bytes = w->nbytes();
  }
  params = static_cast<uint64_t>(m->rows() * m->cols());
  const Tensor* bias = s.weights.find(s.module + ".bias");
  auto p = std::make_unique<QuantizedLinear>(s.backend, s.module, *m, bias, shared_scratch(st), st.linear);
  if (st.stats->modules == 0)
    log_info("quantizer \"" + st.quantizer->name() + "\": " + s.module + " [" + std::to_string(m->rows()) +
             ", " + std::to_string(m->cols()) + "] -> " + describe(m->get()) + (st.prequantized ? " (from the checkpoint)" : ""));
  add_stats(st, *p, 1, source_bytes, params);
  return p;
}

// A linear_n group quantized at load as one QuantizedLinear: each module is quantized
// as make_provider() would, then the parts are stacked by rows (stack_rows), so that
// each module's rows are the bits it would have alone. Declines
// (the modules then get their own providers) for pre-quantized checkpoints, modules
// outside the decoder blocks, layouts that do not stack, and biases on some modules only.
FusedLinear make_group_provider(State& st, const LinearGroupSource& s) {
  if (st.prequantized || (s.flags & BANYAN_LINEAR_TRANSPOSED) != 0) return {};
  const Checkpoint& ckpt = s.weights.checkpoint();
  std::string name;
  std::vector<const SafetensorsTensor*> weights;
  std::vector<BanyanQuantizedWeight> plans;
  std::vector<std::string> bias_names;
  for (const std::string& m : s.modules) {
    const SafetensorsTensor* w = ckpt.find(m + ".weight");
    if (!in_decoder_block(m) || !w || w->shape.size() != 2) return {};  // per module: as usual
    weights.push_back(w);
    plans.push_back(st.quantizer->plan(m, w->shape[0], w->shape[1]));
    if (s.weights.info(m + ".bias", nullptr)) bias_names.push_back(m + ".bias");
    name += (name.empty() ? "" : " + ") + m;
  }
  auto apart = [&](const std::string& why) {  // logged once per model
    if (!st.told_unfused)
      log_info("quantizer \"" + st.quantizer->name() + "\": " + name + " keeps one product per module: " + why);
    st.told_unfused = true;
    return FusedLinear{};
  };
  std::string why;
  if (!stackable_rows(plans, &why)) return apart(why);
  std::optional<Tensor> bias;
  if (!bias_names.empty()) {
    if (bias_names.size() != s.modules.size()) return {};
    if (!(bias = s.weights.load_fused(bias_names))) return {};
  }
  std::vector<QuantizedMatrix> parts;
  FusedLinear out;
  uint64_t source_bytes = 0, params = 0;
  for (size_t i = 0; i < s.modules.size(); ++i) {
    std::vector<float> scratch;
    parts.push_back(st.quantizer->quantize(s.modules[i], weight_view(*weights[i], false, scratch, s.modules[i])));
    out.parts.push_back(parts.back().rows());
    source_bytes += weights[i]->nbytes();
    params += static_cast<uint64_t>(parts.back().rows() * parts.back().cols());
  }
  std::optional<QuantizedMatrix> m = stack_rows(parts, name, &why);
  if (!m) return apart(why);
  parts.clear();
  auto p = std::make_unique<QuantizedLinear>(s.backend, name, *m, bias ? &*bias : nullptr, shared_scratch(st), st.linear);
  if (!st.told_fused)
    log_info("quantizer \"" + st.quantizer->name() + "\": " + name + " quantized as one [" +
             std::to_string(m->rows()) + ", " + std::to_string(m->cols()) + "] " + describe(m->get()) +
             " weight, one product");
  st.told_fused = true;
  add_stats(st, *p, static_cast<int64_t>(s.modules.size()), source_bytes, params);
  out.provider = std::move(p);
  return out;
}

// Declares "<module>.weight" [rows, cols] for every module the checkpoint stores packed.
void declare_packed(State& st, WeightStore& weights) {
  const Checkpoint& ckpt = weights.checkpoint();
  std::vector<std::string> modules;
  for (const auto& name : ckpt.names())
    for (const char* suffix : {".qweight", ".weight"}) {
      const std::string sfx = suffix;
      if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0)
        modules.push_back(name.substr(0, name.size() - sfx.size()));
    }
  std::sort(modules.begin(), modules.end());
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
  int64_t packed = 0;
  for (const auto& m : modules) {
    auto plan = st.quantizer->plan_checkpoint(m, ckpt);
    if (!plan) continue;
    Tensor t;
    t.dtype = static_cast<int32_t>(weights.backend().weight_dtype(DType::bf16, 2));
    t.ndim = 2;
    t.shape[0] = plan->rows;
    t.shape[1] = plan->cols;
    weights.declare(m + ".weight", t);
    ++packed;
  }
  log_info("pre-quantized checkpoint (" + st.checkpoint_method + ", read by the \"" + st.quantizer->name() +
           "\" quantizer): " + std::to_string(packed) + " packed linear layers");
}

}  // namespace

bool in_decoder_block(const std::string& module) {
  size_t b = 0;
  while (b <= module.size()) {
    size_t e = module.find('.', b);
    if (e == std::string::npos) e = module.size();
    bool digits = e > b;
    for (size_t i = b; i < e && digits; ++i) digits = std::isdigit(static_cast<unsigned char>(module[i])) != 0;
    if (digits) return true;
    b = e + 1;
  }
  return false;
}

Quantization make_quantization(const PluginHost& plugins, const QuantizationOptions& o) {
  Quantization out;
  const std::string method = lower(o.method.empty() ? "none" : o.method);
  json user;
  try {
    user = json::parse(o.options_json.empty() ? "{}" : o.options_json);
  } catch (const json::exception& e) {
    throw Error("quantization.options is not valid JSON: " + std::string(e.what()));
  }
  if (!user.is_object()) throw Error("quantization.options must be a mapping");

  auto state = std::make_shared<State>();
  std::string plugin;
  if (auto qc = quantization_config(o.model_dir)) {
    const std::string qm = lower(qc->value("quant_method", std::string()));
    std::string known;
    const PluginInfo* reader = reader_for(plugins, qm, &known);
    if (!reader)
      throw Error(Code::unsupported,
                  (o.model_dir / "config.json").string() + ": the checkpoint is pre-quantized with quant_method \"" +
                      qm + "\", which no quantizer plugin reads" +
                      (known.empty() ? std::string(" (none is loaded)") : " (readable: " + known + ")"));
    if (method != "none" && method != reader->name)
      throw Error(Code::invalid_argument,
                  (o.model_dir / "config.json").string() + " is already quantized (" + qm +
                      ", read by the \"" + reader->name + "\" quantizer); --quantization " + method +
                      " cannot quantize it again: leave it unset or say " + reader->name);
    plugin = reader->name;
    user["quantization_config"] = *qc;
    state->prequantized = true;
    state->checkpoint_method = qm;
    out.checkpoint_method = qm;
  } else {
    if (method == "none") return out;
    plugin = method;
    if (const PluginInfo* info = plugins.find("quantizer", plugin))
      if (option(*info, "group_size") && o.group_size && !user.contains("group_size"))
        user["group_size"] = *o.group_size;
  }
  state->quantizer = std::make_unique<Quantizer>(plugins, plugin, user.dump());
  // A plugin that declares a `w8a8` option (fp8) asks for FP8 activations with it; the
  // value was checked against the manifest above.
  if (const PluginInfo* info = plugins.find("quantizer", plugin))
    if (option(*info, "w8a8") && user.contains("w8a8") && user["w8a8"].is_boolean())
      state->linear.fp8_activations = user["w8a8"].get<bool>();
  if (state->prequantized && !state->quantizer->reads_checkpoints())
    throw Error(Code::internal, "quantizer \"" + plugin + "\" lists checkpoint_methods but reads none");
  out.method = plugin;
  out.stats = state->stats;
  out.factories.push_back([state](const LinearSource& s) { return make_provider(*state, s); });
  out.group_factories.push_back([state](const LinearGroupSource& s) { return make_group_provider(*state, s); });
  if (state->prequantized) out.prepare_weights = [state](WeightStore& w) { declare_packed(*state, w); };
  return out;
}

}  // namespace banyan::core
