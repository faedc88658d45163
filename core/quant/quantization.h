// Weight quantization of a model, as the deployment asks for it: picks the quantizer
// plugin (quantization.method, or the one that reads the checkpoint's own
// quantization_config), and returns the LinearFactory that gives each linear layer
// of the decoder blocks a QuantizedLinear. Modules outside the numbered blocks (the
// output projection, tied embeddings) keep the checkpoint's dtype, as
// bitsandbytes and vLLM do. A pre-quantized checkpoint is read as stored: every
// module it keeps packed gets a QuantizedLinear, the others stay dense. Groups a model
// computes together (linear_n) may be quantized as one QuantizedLinear (group_factories).
//
// Thread-safety: the factory runs on the engine thread (LinearRegistry's rule).
#pragma once

#include "core/runtime/linear.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace banyan::core {

class PluginHost;
class WeightStore;

struct QuantizationOptions {
  /// The model directory (config.json's quantization_config marks a pre-quantized
  /// checkpoint).
  std::filesystem::path model_dir;
  /// quantization.method: "none" or a quantizer plugin name (int8, int4, nf4, fp8).
  std::string method = "none";
  /// quantization.group_size, given to plugins that declare a group_size option.
  std::optional<int64_t> group_size;
  /// quantization.options: more plugin options, a JSON object.
  std::string options_json = "{}";
};

/// What quantization did so far (filled as modules are resolved).
struct QuantizationStats {
  int64_t modules = 0;          ///< linear layers quantized
  uint64_t device_bytes = 0;    ///< their quantized tensors on the device
  uint64_t source_bytes = 0;    ///< the same weights as stored in the checkpoint
  uint64_t source_params = 0;   ///< their element count
};

struct Quantization {
  std::string method = "none";  ///< the plugin in use ("none": nothing is quantized)
  std::string checkpoint_method;  ///< quantization_config.quant_method when pre-quantized
  std::vector<LinearFactory> factories;  ///< for ModelRunnerOptions::linear_factories
  /// For ModelRunnerOptions::linear_group_factories: with fusion on, a q/k/v or
  /// gate/up group quantized at load whose layout stacks by rows (stackable_rows:
  /// not per-tensor FP8, not NF4 with double quantization) becomes one QuantizedLinear.
  std::vector<LinearGroupFactory> group_factories;
  /// For ModelRunnerOptions::prepare_weights: declares the logical [out, in] shape of
  /// each weight a pre-quantized checkpoint stores packed. Empty otherwise.
  std::function<void(WeightStore&)> prepare_weights;
  std::shared_ptr<const QuantizationStats> stats = std::make_shared<QuantizationStats>();
};

/// Throws Error naming the method, plugin or config key: an unknown method, a
/// pre-quantized checkpoint of a kind no plugin reads, or a method that contradicts
/// the checkpoint's.
Quantization make_quantization(const PluginHost& plugins, const QuantizationOptions& options);

/// True for modules inside a numbered block ("model.layers.3.mlp.up_proj").
bool in_decoder_block(const std::string& module);

}  // namespace banyan::core
