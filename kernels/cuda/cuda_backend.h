// The CUDA implementation of core::Backend: bf16 activations, bf16 weight matrices,
// f32 accumulation everywhere. Every op is enqueued on the backend's one stream
// (never synchronizing with the host), so a decode step can be captured into a
// CUDA graph with begin_capture() / end_capture() and replayed.
//
// Thread-safety: one thread drives a backend (Backend's rule); the device is made
// current on that thread at construction.
#pragma once

#include "core/runtime/backend.h"
#include "kernels/cuda/cuda_resources.h"

#include <memory>
#include <string>
#include <utility>

namespace banyan::kernels::cuda {

struct RotaryArgs;  // kernels.h

struct CudaBackendOptions {
  int device = 0;
  /// cuBLASLt workspace (split-K reductions and the like).
  size_t gemm_workspace_bytes = size_t{32} << 20;
  /// Time cuBLASLt's candidate algorithms on each new shape and keep the fastest.
  bool gemm_autotune = true;
  /// Query rows from which a batch's attention takes the tensor-core prefill kernel.
  int prefill_min_query_len = 16;
};

/// True when a CUDA device can be used; otherwise `why` (if given) says why not.
bool cuda_available(std::string* why = nullptr);

class CudaBackend final : public core::Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options = {});
  ~CudaBackend() override;

  Device device() const override;
  std::string name() const override;
  DType activation_dtype() const override { return DType::bf16; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr) noexcept override;
  void upload(void* device_dst, const void* host, size_t bytes) override;
  void download(void* host_dst, const void* device_src, size_t bytes) override;
  void fill_zero(void* device_dst, size_t bytes) override;
  /// One cudaMemcpy2DAsync on the stream (also inside a graph capture).
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override;
  void synchronize() override;

  /// Float matrices (2+ dims) become bf16, float vectors f32; others stay as stored.
  DType weight_dtype(DType stored, int ndim) const override;
  void load_weight(const void* host_src, DType src, Tensor& dst) override;

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void rms_norm(const Tensor& x, Tensor* residual, const Tensor& w, float eps, float w_offset,
                Tensor& out) override;
  void layer_norm(const Tensor& x, Tensor* residual, const Tensor& w, const Tensor* bias,
                  float eps, Tensor& out) override;
  /// x and W bf16; out bf16, or f32 (the logits).
  void matmul(const Tensor& x, const Tensor& w, bool w_transposed, const Tensor* bias, Tensor& out,
              bool accumulate = false) override;
  void rotary(Tensor& q, Tensor& k, const core::RotaryParams& p) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const core::AttentionParams& p, Tensor& out) override;
  void act_mul(const Tensor& gate, const Tensor& up, int32_t activation, Tensor& out) override;
  void act_mul_halves(const Tensor& gate_up, int32_t activation, Tensor& out) override;
  void activation(const Tensor& x, int32_t activation, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override;
  void split_columns(const Tensor& x, std::span<Tensor> outs) override;
  bool prefers_fused_linears() const override { return true; }
  bool matmul_gated(const Tensor& x, const Tensor& w, int32_t activation, Tensor& out) override;
  bool attention_rotary(const Tensor& q, const Tensor& k, const Tensor& v,
                        const core::RotaryParams& rope, const core::AttentionParams& p,
                        Tensor& out) override;
  /// On the device (sampling.cu); copies back the results only.
  void sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
              std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out) override;

  // ------------------------------------------------------------ CUDA only ------
  cudaStream_t stream() const;
  int num_sms() const;
  /// Free and total device memory, in bytes (for sizing the KV pool).
  std::pair<size_t, size_t> memory_info() const;
  /// Records the ops enqueued until end_capture() into a graph instead of running
  /// them. In between, upload/download/allocate/synchronize are refused. Run the
  /// same ops once before capturing, so that workspaces and GEMM plans exist.
  void begin_capture();
  /// Ends the capture (also after a failed op) and instantiates the graph.
  Graph end_capture();
  /// Replays a graph on the backend's stream.
  void launch(const Graph& graph);
  /// Ends a capture that failed part-way (an op threw): discards what was recorded
  /// and clears the error, so that the stream runs eagerly again. No-op otherwise.
  void abort_capture() noexcept;
  bool capturing() const;
  /// Increases whenever backend memory that a captured graph may use moves (the
  /// attention workspace grew): graphs captured before must be captured again.
  uint64_t graph_epoch() const;

 private:
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, const core::AttentionParams& p,
              const RotaryArgs* rope, Tensor& out);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The backend for "cuda:N".
std::unique_ptr<core::Backend> make_cuda_backend(int device);

}  // namespace banyan::kernels::cuda
