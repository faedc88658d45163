// A quantizer plugin instance (BanyanQuantizerV1) behind a C++ face: plan +
// allocate + quantize in one call, dequantize for references, and the reading of
// pre-quantized checkpoints.
//
// Thread-safety: not thread-safe (plugins are called from one thread at a time).
#pragma once

#include "core/plugin_host/plugin_host.h"
#include "core/quant/quantized_matrix.h"

#include <banyan/tensor.h>

#include <optional>
#include <string>
#include <vector>

namespace banyan::core {

class Checkpoint;

class Quantizer {
 public:
  /// Creates quantizer plugin `name` with `options_json` (validated against its
  /// manifest, defaults filled). Throws Error naming the plugin.
  Quantizer(const PluginHost& plugins, const std::string& name, const std::string& options_json);

  const std::string& name() const { return name_; }
  bool reads_checkpoints() const;

  /// How the plugin will store a [rows, cols] weight of `module` (layout, sizes, each
  /// tensor's dtype and shape; no data). Throws Error naming the module.
  BanyanQuantizedWeight plan(const std::string& module, int64_t rows, int64_t cols);
  /// Quantizes `weight` (host memory, BF16/F16/F32 [rows, cols]) of `module`.
  QuantizedMatrix quantize(const std::string& module, const Tensor& weight);
  /// F32 [rows, cols], row-major.
  std::vector<float> dequantize(const QuantizedMatrix& w);
  /// The module's weight as stored in a pre-quantized checkpoint; nullopt when the
  /// checkpoint keeps it dense.
  std::optional<QuantizedMatrix> from_checkpoint(const std::string& module, const Checkpoint& ckpt);
  /// The plan alone ([rows, cols] and layout), nullopt when stored dense.
  std::optional<BanyanQuantizedWeight> plan_checkpoint(const std::string& module, const Checkpoint& ckpt);

 private:
  const BanyanQuantizerV1& iface() const { return *obj_.iface<BanyanQuantizerV1>(); }
  std::string name_;
  BanyanHostV1 host_{};
  PluginObject obj_;
};

}  // namespace banyan::core
