// The math of LoRA inside a linear layer, for every row of a step at once:
//   out[t] += scaling_s * (x[t] · A_s^T) · B_s^T          (s = the row's adapter slot)
// and, for DoRA, then out[t] = dora_scale_s ⊙ out[t] + dora_bias_s.
// Rows are grouped by slot (shrink x·A^T, then expand ·B^T); each group uses its own
// rank, so mixed ranks never pad to the largest. A backend implements the tables and
// the grouped kernels: CPU here (lora_cpu_kernels.cpp), CUDA in kernels/cuda.
//
// Tables: one entry per (module, slot), describing the slot's weights for that module
// (rank 0: the slot leaves the module alone). Weight memory is device memory owned by
// the AdapterManager; the tables only point into it.
//
// Thread-safety: apply() and resize() run on the engine thread. set() runs under the
// AdapterManager's lock, from any thread, and only for slots that no step in flight
// uses (an implementation with device-side tables stages the change and uploads it
// at the next apply(), on the engine thread). No per-token host work is required:
// the slots are read from LinearContext::row_adapter_slots on the device.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/linear.h"

#include <cstdint>
#include <memory>
#include <optional>

namespace banyan::core {

/// One adapter's weights for one module, in device memory.
struct LoraSlotWeights {
  const void* a = nullptr;           ///< [rank, in] A, in `dtype`
  const void* bt = nullptr;          ///< [rank, out] B transposed, in `dtype`
  const float* dora_scale = nullptr; ///< [out] magnitude / ||W + scaling·B·A|| per row; null: LoRA
  const float* dora_bias = nullptr;  ///< [out] (1 - dora_scale) · bias; null: no bias (or LoRA)
  int32_t rank = 0;                  ///< 0: the slot does not adapt this module
  float scaling = 0;
  DType dtype = DType::f32;          ///< of A and B^T: the activation dtype, or BF16
};

class LoraKernels {
 public:
  virtual ~LoraKernels() = default;
  /// Grows the tables to at least `modules` x `slots` entries, keeping what is set.
  virtual void resize(int32_t modules, int32_t slots) = 0;
  virtual int32_t slots() const = 0;
  /// Sets one entry; a default LoraSlotWeights (rank 0) clears it.
  virtual void set(int32_t module, int32_t slot, const LoraSlotWeights& w) = 0;
  /// Before the base product of the same module (out not yet written): may start the
  /// deltas, which need only x, so that they overlap the product (CUDA). apply() then
  /// adds them. The modules of a fused group all come here before their one product,
  /// then to apply() (LinearAdapterHook::before). Default: nothing (apply() does all
  /// the work).
  virtual void prepare(int32_t /*module*/, const LinearContext& /*ctx*/, const Tensor& /*x*/,
                       const Tensor& /*out*/) {}
  /// Adds every row's adapter delta to out [T, out_features] for x [T, in_features]
  /// (activation dtype), rows choosing their slot by ctx.row_adapter_slots (-1: none).
  virtual void apply(int32_t module, const LinearContext& ctx, const Tensor& x, Tensor& out) = 0;
  /// See LinearAdapterHook::graph_generation(). Default: nullopt (no graphs).
  virtual std::optional<uint64_t> graph_generation() { return std::nullopt; }
};

/// The kernels for `backend`'s device. Throws Error(unsupported) when there are none.
std::unique_ptr<LoraKernels> make_lora_kernels(Backend& backend);

/// The CPU implementation (f32 activations), also the reference for other backends.
std::unique_ptr<LoraKernels> make_cpu_lora_kernels();

}  // namespace banyan::core
