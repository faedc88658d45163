// Linear layers as a hook point. A model names each linear layer with the
// checkpoint's module name ("model.layers.0.self_attn.q_proj"); the registry maps
// that name to a LinearProvider, which owns how the weight is stored and
// multiplied. The default provider is dense (name.weight, optional name.bias).
// Quantizers register a LinearFactory that builds their own provider from the
// checkpoint (and may register a LinearGroupFactory that fuses a linear_n group into
// one provider); adapters (LoRA) register a LinearAdapterHook that adds each token's
// delta after the base product. Neither needs model code.
//
// Thread-safety: used by the engine thread only.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/forward_batch.h"

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace banyan::core {

class StepArena;
class WeightStore;

/// What a linear sees of the step it runs in.
struct LinearContext {
  Backend& backend;
  StepArena& arena;        ///< scratch valid until the end of the step
  const StepLayout& layout;
  const ForwardBatch& batch;  ///< the host copy of the step (for per-step grouping)
  /// Adapter slot of each row of x (i32 [rows], device): the step's per-token
  /// slots (layout.adapter_slots), or layout.logits_adapter_slots for the final
  /// projection, whose rows are the logits rows.
  Tensor row_adapter_slots;
  bool has_adapters = false;
};

class LinearProvider {
 public:
  virtual ~LinearProvider() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  /// out [T, out_features] = x [T, in_features] · W^T (+ bias). out is allocated.
  virtual void forward(const LinearContext& ctx, const Tensor& x, Tensor& out) = 0;
};

/// Adds adapter contributions to a linear's output, per row of x.
class LinearAdapterHook {
 public:
  virtual ~LinearAdapterHook() = default;
  /// Runs just before the base product (out is allocated, not yet written): a device
  /// implementation may start the work that needs only x, to overlap the product.
  /// apply() follows for the same module. For the modules of a fused group (one
  /// product over x for all of them, LinearRegistry::forward_n) every module's
  /// before() comes first, in order, then the product, then each module's apply()
  /// on its part of the output (a [T, N_i] tensor of its own).
  virtual void before(const std::string& /*module*/, const LinearContext& /*ctx*/,
                      const Tensor& /*x*/, const Tensor& /*out*/) {}
  virtual void apply(const std::string& module, const LinearContext& ctx, const Tensor& x,
                     Tensor& out) = 0;
  /// CUDA graphs (decode_graphs.h): called on the engine thread, outside any capture,
  /// before a step with adapters is captured or replayed; it may upload staged
  /// changes. A value that changes whenever a graph captured before has gone stale
  /// (tables or scratch moved, grids grew), or nullopt when steps with adapters must
  /// run eagerly (the default: a hook with host-side work per step).
  virtual std::optional<uint64_t> graph_generation() { return std::nullopt; }
};

/// Where a factory finds what it needs to build a provider for one module.
struct LinearSource {
  const std::string& module;  ///< e.g. "model.layers.0.mlp.down_proj"
  uint32_t flags;             ///< BanyanLinearFlags
  WeightStore& weights;       ///< device weights and (weights.checkpoint()) the host view
  Backend& backend;
};

/// Returns a provider for the module, or null to leave it to the next factory.
using LinearFactory = std::function<std::unique_ptr<LinearProvider>(const LinearSource&)>;

/// Where a group factory finds what it needs to fuse the modules of one linear_n group.
struct LinearGroupSource {
  std::span<const std::string> modules;  ///< e.g. q_proj, k_proj, v_proj of one layer
  uint32_t flags;                        ///< BanyanLinearFlags (BANYAN_LINEAR_DEFAULT)
  WeightStore& weights;
  Backend& backend;
};

/// One provider standing for a group: its weight is the modules' weights stacked by
/// rows ([ΣN_i, K]), so that columns [ΣN_<i, ΣN_<=i) of its output are module i's.
struct FusedLinear {
  std::unique_ptr<LinearProvider> provider;  ///< null: declined
  std::vector<int64_t> parts;                ///< N_i, summing to provider->out_features()
};

/// Returns a FusedLinear for the group, or one with a null provider to leave the group
/// to the next group factory and then to the per-module factories. A factory must
/// decline unless each module's rows of the fused weight hold the values its own
/// provider would (kernels may still round the fused product's sums differently).
using LinearGroupFactory = std::function<FusedLinear(const LinearGroupSource&)>;

/// The default: a dense weight on the device.
class DenseLinear final : public LinearProvider {
 public:
  /// Throws Error(not_found) naming module.weight when the checkpoint lacks it.
  DenseLinear(const LinearSource& source);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void forward(const LinearContext& ctx, const Tensor& x, Tensor& out) override;

 private:
  Tensor weight_, bias_;
  bool transposed_;
  int64_t in_ = 0, out_ = 0;
};

/// Whether one product over fused weights [ΣN, K] beats the parts' own products, for
/// `rows` rows of x: always for one row (a GEMV, whose outputs are then views of one
/// row), else when a part holds under 16 MiB of weights (k/v of Llama-3-8B: such
/// products alone stream well below the bandwidth, and splitting the result costs
/// less than they lose; wide parts such as gate/up gain nothing and skip the split).
bool fused_product_pays(int64_t rows, std::span<const int64_t> out_features, int64_t in_features,
                        size_t elem_bytes);

/// The most rows for which LinearRegistry::forward_gated runs a dense fused gate/up
/// pair that fused_product_pays() leaves apart (both parts wide) as one product
/// followed by Backend::act_mul_halves, which reads the halves in place (no split of
/// the product). BANYAN_FUSE_GATED_ROWS; default 0: off (an A/B for the GPU bench).
int64_t gated_product_max_rows();
void set_gated_product_max_rows(int64_t rows);

class LinearRegistry {
 public:
  LinearRegistry(WeightStore& weights, Backend& backend);

  /// The provider of `module`, made on first use: one set() explicitly, else the
  /// first factory (latest added first) that accepts it, else DenseLinear.
  /// Throws when the module was resolved before with other flags.
  LinearProvider& resolve(const std::string& module, uint32_t flags);
  /// Replaces (or installs) the provider of one module.
  void set(const std::string& module, std::unique_ptr<LinearProvider> provider);
  void add_factory(LinearFactory factory);
  /// Tried (latest added first) when a group is first seen with fusion on, before the
  /// per-module factories and the dense fusion. A group it fuses always runs its one
  /// product (its modules have no providers of their own), also on steps with
  /// adapters (the hook as for a dense fused group, forward_n). A later forward() or
  /// set() of one of its modules alone makes
  /// that module its own provider through the per-module factories.
  void add_group_factory(LinearGroupFactory factory);
  /// Non-owning; null removes it. The hook runs on steps that have adapters.
  void set_adapter_hook(LinearAdapterHook* hook) { hook_ = hook; }
  LinearAdapterHook* adapter_hook() const { return hook_; }

  /// resolve(), check shapes, run the provider, then the adapter hook.
  void forward(const std::string& module, uint32_t flags, const LinearContext& ctx,
               const Tensor& x, Tensor& out);
  /// Several linears over one x (the linear_n op); outs[i] come with their shape
  /// [T, N_i] and get their memory from ctx.arena. With fusion on and every module
  /// dense (no factory such as a quantizer claims one, no set() provider, weights not
  /// loaded yet, same dtype and in_features, no transposed flag), the first call loads
  /// the weights side by side (WeightStore::load_fused) and calls run one product when
  /// fused_product_pays(). A group a group factory fused runs its provider's product
  /// on every call. Otherwise: forward() per module. A fused product's outputs are
  /// views of its one row (T == 1) or split_columns of it; on steps with adapters the
  /// hook's before() runs for every module ahead of the product (a device hook
  /// overlaps all the modules' deltas with it), then apply() per module.
  void forward_n(std::span<const std::string> modules, uint32_t flags, const LinearContext& ctx,
                 const Tensor& x, std::span<Tensor> outs);
  /// out = act(gate(x)) * up(x) (the linear_gated op): one pass of the backend's
  /// matmul_gated over the dense fused pair when it has one for this shape (and the
  /// step has no adapters: the hook needs gate and up apart), else for up to
  /// gated_product_max_rows() rows one product and act_mul_halves, else forward_n (the
  /// fused product when it pays, the hook on each part) and act_mul.
  void forward_gated(const std::string& gate, const std::string& up, uint32_t flags,
                     const LinearContext& ctx, const Tensor& x, int32_t act, Tensor& out);
  /// Fusion for groups seen from now on; the backend's preference by default.
  void set_fusion(bool on) { fusion_ = on; }
  bool fusion() const { return fusion_; }
  /// Whether `module` runs inside a fused product (it belongs to a fused group).
  bool fused(const std::string& module) const;

 private:
  struct Slot {
    std::unique_ptr<LinearProvider> provider;
    uint32_t flags;
    bool explicit_provider;  // set(): flags are the provider's business
  };
  // A linear_n group: its modules' weights side by side when fused, dense (weight,
  // bias) or behind a group factory's provider.
  struct Group {
    bool fused = false;
    Tensor weight, bias;         // [ΣN, K] and [ΣN] (bias.data null: none)
    std::unique_ptr<LinearProvider> provider;  // a group factory's (weight unused)
    std::vector<int64_t> parts;  // N_i
    std::vector<std::string> modules;
  };
  Group make_group(std::span<const std::string> modules, uint32_t flags);
  const Group& group(std::span<const std::string> modules, uint32_t flags);

  WeightStore& weights_;
  Backend& backend_;
  bool fusion_;
  std::unordered_map<std::string, Group> groups_;  // key: flags and module names
  std::unordered_map<std::string, Slot> slots_;
  std::vector<LinearFactory> factories_;
  std::vector<LinearGroupFactory> group_factories_;
  LinearAdapterHook* hook_ = nullptr;
};

}  // namespace banyan::core
