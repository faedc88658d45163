#include "core/quant/quantizer.h"

#include "core/common/logging.h"
#include "core/runtime/checkpoint.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

namespace banyan::core {
namespace {

int32_t checkpoint_get(void* ctx, const char* name, BanyanTensor* out) {
  if (!ctx || !name || !out) return BANYAN_INVALID_ARGUMENT;
  const SafetensorsTensor* st = static_cast<const Checkpoint*>(ctx)->find(name);
  if (!st) return BANYAN_NOT_FOUND;
  if (!st->dtype || st->shape.size() > BANYAN_MAX_DIMS) return BANYAN_UNSUPPORTED;
  Tensor t;
  t.data = const_cast<std::byte*>(st->data);
  t.dtype = static_cast<int32_t>(*st->dtype);
  for (int64_t d : st->shape) t.shape[t.ndim++] = d;
  if (t.ndim == 0) t.shape[t.ndim++] = 1;  // a scalar: one element
  *out = t;
  return BANYAN_OK;
}

}  // namespace

Quantizer::Quantizer(const PluginHost& plugins, const std::string& name,
                     const std::string& options_json)
    : name_(name) {
  const PluginInfo* info = plugins.find("quantizer", name);
  if (!info) {
    std::string known;
    for (const auto& p : plugins.plugins())
      if (p.kind == "quantizer") known += (known.empty() ? "" : ", ") + p.name;
    throw Error(Code::not_found, "no quantizer plugin named \"" + name + "\" is loaded" +
                                     (known.empty() ? " (none is)" : " (loaded: " + known + ")"));
  }
  nlohmann::json opts;
  try {
    opts = nlohmann::json::parse(options_json.empty() ? "{}" : options_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error("quantizer options are not valid JSON: " + std::string(e.what()));
  }
  nlohmann::json extra = nlohmann::json::object();
  if (auto it = opts.find("quantization_config"); it != opts.end()) {
    extra["quantization_config"] = *it;
    opts.erase(it);
  }
  nlohmann::json merged = plugins.resolve_options(*info, opts);
  merged.update(extra);
  host_.struct_size = sizeof(BanyanHostV1);
  host_.abi_major = BANYAN_ABI_MAJOR;
  host_.abi_minor = BANYAN_ABI_MINOR;
  host_.log = &banyan_host_log;
  obj_ = plugins.create("quantizer", name, &host_, merged.dump());
}

bool Quantizer::reads_checkpoints() const { return iface().plan_checkpoint != nullptr; }

BanyanQuantizedWeight Quantizer::plan(const std::string& module, int64_t rows, int64_t cols) {
  BanyanQuantizedWeight plan{};
  plan.struct_size = sizeof(plan);
  BanyanError err{};
  check(iface().plan(obj_.get(), module.c_str(), rows, cols, &plan, &err), err);
  if (plan.rows != rows || plan.cols != cols)
    throw Error(Code::internal, "quantizer \"" + name_ + "\" planned " + module + " as [" +
                                    std::to_string(plan.rows) + ", " + std::to_string(plan.cols) +
                                    "], the weight is [" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + "]");
  return plan;
}

QuantizedMatrix Quantizer::quantize(const std::string& module, const Tensor& weight) {
  if (weight.ndim != 2)
    throw Error(module + ": weight is " + weight.shape_string() + ", expected 2 dimensions");
  QuantizedMatrix m(plan(module, weight.shape[0], weight.shape[1]), module);
  BanyanError err{};
  check(iface().quantize(obj_.get(), module.c_str(), &weight, &m.get(), &err), err);
  validate(m.get(), module);
  return m;
}

std::vector<float> Quantizer::dequantize(const QuantizedMatrix& w) {
  std::vector<float> out(static_cast<size_t>(w.rows() * w.cols()));
  Tensor t(out.data(), DType::f32, {w.rows(), w.cols()});
  BanyanError err{};
  check(iface().dequantize(obj_.get(), &w.get(), &t, &err), err);
  return out;
}

std::optional<BanyanQuantizedWeight> Quantizer::plan_checkpoint(const std::string& module,
                                                                const Checkpoint& ckpt) {
  if (!reads_checkpoints())
    throw Error(Code::unsupported, "quantizer \"" + name_ + "\" reads no pre-quantized checkpoints");
  BanyanTensorSource src{const_cast<Checkpoint*>(&ckpt), &checkpoint_get};
  BanyanQuantizedWeight plan{};
  plan.struct_size = sizeof(plan);
  BanyanError err{};
  check(iface().plan_checkpoint(obj_.get(), module.c_str(), &src, &plan, &err), err);
  if (plan.rows == 0) return std::nullopt;  // stored dense
  return plan;
}

std::optional<QuantizedMatrix> Quantizer::from_checkpoint(const std::string& module,
                                                          const Checkpoint& ckpt) {
  auto plan = plan_checkpoint(module, ckpt);
  if (!plan) return std::nullopt;
  BanyanTensorSource src{const_cast<Checkpoint*>(&ckpt), &checkpoint_get};
  BanyanError err{};
  QuantizedMatrix m(*plan, module);
  check(iface().convert_checkpoint(obj_.get(), module.c_str(), &src, &m.get(), &err), err);
  validate(m.get(), module);
  return m;
}

}  // namespace banyan::core
