// The BanyanOpsV1 table for one step. A StepContext validates every op's tensors
// (device, dtype, shape, names) against the step and the checkpoint, then runs the
// op on the backend; errors become a BanyanError naming the op and the tensor.
// The ModelRunner creates one per execute(); its outputs live in the step arena.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/device_buffer.h"
#include "core/runtime/forward_batch.h"

#include <banyan/abi.h>

#include <optional>
#include <span>
#include <vector>

/// Completes the opaque C type of abi.h; StepContext derives from it.
struct BanyanStepContext {};

namespace banyan::core {

class StepArena;
class WeightStore;
class LinearRegistry;
class KvCache;

/// Rotary frequency tables kept on the device across steps, one per distinct spec.
class RopeCache {
 public:
  explicit RopeCache(Backend& backend) : backend_(backend) {}
  struct Entry {
    BanyanRopeSpec spec;
    DeviceBuffer buffer;
    Tensor inv_freq;  ///< [1, rotary_dim / 2] f32
    float scaling = 1.0f;
  };
  /// Validates `spec` (unknown type → Error naming it) and returns its table.
  const Entry& get(const BanyanRopeSpec& spec);
  /// Whether a step of `batch` uploads per-sequence frequencies (dynamic NTK past
  /// max_position, for a spec used before): such a step cannot replay a graph.
  bool host_rows(const ForwardBatch& batch) const {
    for (const auto& e : entries_)
      if (e.spec.type == BANYAN_ROPE_DYNAMIC)
        for (const auto& s : batch.seqs)
          if (s.context_len > e.spec.max_position) return true;
    return false;
  }

 private:
  Backend& backend_;
  std::vector<Entry> entries_;
};

/// What a step computes with; owned by the ModelRunner.
struct StepResources {
  Backend& backend;
  StepArena& arena;
  WeightStore& weights;
  LinearRegistry& linears;
  KvCache& kv;
  RopeCache& rope;
};

class StepContext : public BanyanStepContext {
 public:
  StepContext(const StepResources& res, const ForwardBatch& batch, const StepLayout& layout);

  /// The C table whose slots call into a StepContext (static storage).
  static const BanyanOpsV1& ops();

  // Each op validates, then runs on the backend. They throw banyan::Error.
  void step_input(Tensor* ids, Tensor* positions) const;
  Tensor alloc(int32_t dtype, int32_t ndim, const int64_t* shape);
  Tensor weight(const char* name);
  void embedding(const char* name, const Tensor& ids, Tensor& out);
  void rms_norm(const Tensor& x, Tensor* residual, const char* weight, float eps, float offset,
                Tensor& out);
  void layer_norm(const Tensor& x, Tensor* residual, const char* weight, const char* bias,
                  float eps, Tensor& out);
  void linear(const char* name, const Tensor& x, uint32_t flags, Tensor& out);
  /// outs come with dtype and shape [T, N_i]; their data is set here.
  void linear_n(std::span<const char* const> names, const Tensor& x, uint32_t flags,
                std::span<Tensor> outs);
  void linear_gated(const char* gate, const char* up, const Tensor& x, int32_t act, uint32_t flags,
                    Tensor& out);
  void rotary(Tensor& q, Tensor& k, const BanyanRopeSpec& spec);
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const BanyanAttentionSpec& spec,
                 Tensor& out);
  void act_mul(const Tensor& gate, const Tensor& up, int32_t act, Tensor& out);
  void activation(const Tensor& x, int32_t act, Tensor& out);
  void add(const Tensor& a, const Tensor& b, Tensor& out);
  void slice_columns(const Tensor& x, int64_t begin, int64_t count, Tensor& out);
  Tensor logits(const Tensor& hidden, const char* name, uint32_t flags);
  /// Runs what an op deferred (a rotary embedding); the runner calls it after the
  /// model's forward.
  void finish() { flush_rotary(); }
  /// The sampling op; valid after the step too (ModelRunner::decoding_context).
  void sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
              std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out);

 private:
  void check_activation(const char* op, const char* what, const Tensor& t) const;
  // Decode steps defer rotary() to the attention op that follows (the backend may
  // apply it inside attention: Backend::attention_rotary); any other op runs it first.
  struct PendingRotary {
    Tensor q, k;
    RotaryParams params;
  };
  void flush_rotary();
  std::optional<PendingRotary> pending_rotary_;
  StepResources res_;
  const ForwardBatch& batch_;
  const StepLayout& layout_;
  std::vector<float> dynamic_rows_;  // host staging of dynamic NTK frequencies
};

}  // namespace banyan::core
