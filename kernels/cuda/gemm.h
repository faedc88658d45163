// Matrix products: bf16 operands, f32 accumulation, bf16 or f32 output, optional
// accumulation into the output. Through cuBLASLt, or for up to 64 rows of x through
// the weight-streaming kernel of gemm_stream.h. One plan (descriptors, layouts and
// the chosen algorithm or streaming config) is cached per shape and alignment, so a
// step issues only launches, which CUDA graphs can capture.
//
// Autotuning times the candidates on cold weights (L2 flushed before each timed
// run), as a decode step streams every weight from HBM once. Environment, read when
// a plan is made: BANYAN_GEMM_LOG=1 prints each tuning's timings to stderr;
// BANYAN_GEMM_STREAM=0 keeps every product on cuBLASLt, =1 sends every product the
// streaming kernel takes to it, untimed (A/B comparisons, tests).
#pragma once

#include "kernels/cuda/cuda_resources.h"

#include <cstdint>
#include <memory>
#include <string>

namespace banyan::kernels::cuda {

class Gemm {
 public:
  /// autotune: time the heuristic's first cuBLASLt candidates and the streaming
  /// kernel's configs on first use of a shape (outside graph capture) and keep the
  /// fastest. Without it (or inside a capture) cuBLASLt's first candidate is used
  /// (the streaming kernel where cuBLASLt has none).
  Gemm(size_t workspace_bytes, bool autotune);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  /// out [M, N] (+)= x [M, K] · W^T, W [N, K] (or [K, N] when w_transposed); x and W
  /// bf16, out bf16 or f32 (out_f32). Enqueued on `stream`.
  void run(const void* x, const void* w, bool w_transposed, void* out, bool out_f32, int64_t M,
           int64_t N, int64_t K, bool accumulate, cudaStream_t stream);

  /// Plans cached so far (for tests and diagnostics).
  size_t plan_count() const;
  /// What the plan of this shape runs ("cublaslt" or "stream bn128 split4", ...);
  /// empty when there is no plan yet. For tests and diagnostics.
  std::string plan_name(int64_t M, int64_t N, int64_t K) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::kernels::cuda
