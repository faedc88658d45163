// A Llama-3-8B-shaped decoder on the CUDA backend with random bf16 weights made on
// the GPU (no checkpoint file). forward() issues exactly the op sequence of the
// llama model plugin (embedding; per layer: RMSNorm, q/k/v projections, rotary,
// paged attention, o projection, RMSNorm + residual, gate/up, SiLU-and-mul, down,
// with q/k/v and gate/up as the runtime runs the plugin's linear_n groups,
// RMSNorm + residual; final row gather and lm_head to f32 logits), through the
// same core::Backend calls the runtime makes, so its timings are the runtime's
// minus the host-side validation.
#pragma once

#include "core/runtime/device_buffer.h"
#include "kernels/cuda/cuda_backend.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace banyan::bench {

struct LlamaShape {
  int64_t hidden = 4096, intermediate = 14336, layers = 32, heads = 32, kv_heads = 8,
          head_dim = 128, vocab = 128256;
  double rope_theta = 500000.0;
  float eps = 1e-5f;
  /// Bytes of the weights a decode step reads (all matrices but the embedding table).
  double step_weight_bytes() const;
  /// Matmul FLOPs per token (2 x parameters of every projection and lm_head).
  double flops_per_token() const;
};

/// Which op families forward() issues (the others are skipped, for timing ablations).
/// kLora: the linear hook (set_linear_hook) after each projection.
enum OpMask : unsigned { kGemm = 1, kAttention = 2, kOther = 4, kLora = 8, kAll = 15 };

/// Per-layer matrices, named like the checkpoint's modules.
enum Proj { kQ, kK, kV, kO, kGate, kUp, kDown, kProjections };

/// Runs before (before = true) and after a projection's matmul (y = x · W^T), as the
/// runtime's adapter hook does, e.g. to add adapter deltas.
using LinearHook = std::function<void(int64_t layer, Proj p, const Tensor& x, Tensor& y, bool before)>;

class LlamaHarness {
 public:
  /// Allocates and fills the weights, a KV cache of `kv_blocks` blocks of
  /// `block_size` tokens (random contents), and activations for `max_tokens` rows.
  LlamaHarness(kernels::cuda::CudaBackend& backend, const LlamaShape& shape, int64_t kv_blocks,
               int32_t block_size, int64_t max_tokens, int64_t max_seqs, int64_t max_table);

  /// Uploads one step's layout (ForwardBatch arrays) into the fixed layout buffer
  /// that forward() and its captured graphs read. max_context_len is the capacity
  /// the attention kernels are planned for (keep it fixed across graph replays).
  void set_step(const std::vector<int32_t>& token_ids, const std::vector<int32_t>& positions,
                const std::vector<int32_t>& slots, const std::vector<int32_t>& seq_info,
                const std::vector<int32_t>& block_tables, const std::vector<int32_t>& logits_rows,
                int32_t max_query_len, int32_t max_context_len,
                const std::vector<int32_t>& adapter_slots = {});
  /// Whether forward() runs q/k/v and gate/up as one product each where the runtime
  /// would (on by default, as on the CUDA backend; off: the A/B of the fusion).
  void set_fused(bool on) { fuse_ = on; }
  /// Installs (or, with an empty function, removes) the hook that kLora runs.
  void set_linear_hook(LinearHook hook) { hook_ = std::move(hook); }
  /// Enqueues one forward pass of the current step (no host synchronization).
  void forward(unsigned mask = kAll);
  /// Enqueues the `p` projection of every layer, at the current step's token count.
  void projections(Proj p);

  const core::StepLayout& layout() const { return layout_; }
  kernels::cuda::CudaBackend& backend() { return b_; }

 private:
  core::DeviceBuffer alloc(DType t, std::initializer_list<int64_t> shape, Tensor& view);
  kernels::cuda::CudaBackend& b_;
  LlamaShape s_;
  int32_t block_size_;
  std::vector<core::DeviceBuffer> owned_;
  Tensor embed_, final_norm_, lm_head_, inv_freq_, ones_;
  std::vector<Tensor> w_[kProjections], qkv_w_, gate_up_w_, k_cache_, v_cache_;
  bool fuse_ = true;
  // Activations, sized for max_tokens rows; views are cut to the step's T.
  Tensor residual_, x_, q_, k_, v_, attn_, o_, gate_, up_, act_, down_, qkv_, gate_up_, rows_,
      logits_;
  Tensor layout_buf_;
  core::StepLayout layout_;
  std::vector<int32_t> staging_;
  LinearHook hook_;
};

}  // namespace banyan::bench
