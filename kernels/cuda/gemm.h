// Matrix products through cuBLASLt: bf16 operands, f32 accumulation, bf16 or f32
// output, optional accumulation into the output. One plan (descriptors, layouts
// and the chosen algorithm) is cached per shape and alignment, so a step issues
// only cublasLtMatmul calls, which CUDA graphs can capture.
#pragma once

#include "kernels/cuda/cuda_resources.h"

#include <cstdint>
#include <memory>

namespace banyan::kernels::cuda {

class Gemm {
 public:
  /// autotune: time the heuristic's first candidates on first use of a shape (outside
  /// graph capture) and keep the fastest, instead of taking the first.
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::kernels::cuda
