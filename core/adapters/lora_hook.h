// The LinearAdapterHook that applies LoRA in every linear layer of every model,
// with no model code: the module name picks the module's table, each row's adapter
// slot picks the weights (lora_kernels.h).
//
// Before serving, probe() runs one step through the model with an adapter slot set
// and records every linear layer the model computes with (its name, in and out
// features, and whether it is the final projection): the base model's description
// that adapters are checked against.
//
// Thread-safety: engine thread only (module_index() is safe after probe()).
#pragma once

#include "core/adapters/adapter_format.h"
#include "core/adapters/lora_kernels.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace banyan::core {

class ModelRunner;

class LoraHook final : public LinearAdapterHook {
 public:
  explicit LoraHook(LoraKernels& kernels) : kernels_(kernels) {}

  /// Runs the probe step on `runner` (whose KV cache block 0 it overwrites) and
  /// returns the linear layers in the order the model used them.
  const std::vector<BaseLinear>& probe(ModelRunner& runner);
  /// Index of a module in linears(), or -1.
  int32_t module_index(const std::string& name) const;
  const std::vector<BaseLinear>& linears() const { return linears_; }

  void before(const std::string& module, const LinearContext& ctx, const Tensor& x,
              const Tensor& out) override;
  void apply(const std::string& module, const LinearContext& ctx, const Tensor& x,
             Tensor& out) override;
  /// The kernels' (nullopt while probing: the probe records modules on the host).
  std::optional<uint64_t> graph_generation() override {
    return probing_ ? std::nullopt : kernels_.graph_generation();
  }

 private:
  LoraKernels& kernels_;
  bool probing_ = false;
  std::vector<BaseLinear> linears_;
  std::unordered_map<std::string, int32_t> index_;
};

}  // namespace banyan::core
