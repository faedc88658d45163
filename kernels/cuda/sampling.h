// The sampling op on the GPU (Backend::sample): vLLM's sampler where the logits
// are, so that a decode step copies O(rows x (1 + n)) values to the host instead of
// the [R, V] logits. Semantics of banyan::logits::sample_row: edits in vLLM's order,
// temperature, top_k, top_p, min_p, one given uniform, argmax when temperature is 0;
// the token's logprob and the top-n of the raw distribution (ties: the lower id).
//
// Per row one block of 1024 threads: the edits on a copy of the row, the raw
// log-sum-exp, the argmax, and for an unfiltered draw a prefix search in id order;
// rows with top_k / top_p / min_p are sorted (CUB segmented radix sort, stable,
// descending, so equal values keep the lower id first) and searched in that order.
// Sums are in double, exponentials in float (logprobs within ~1e-6 of the host's).
//
// Thread-safety: one thread (the backend's). Not copyable.
#pragma once

#include "kernels/cuda/cuda_resources.h"

#include <banyan/abi.h>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace banyan::kernels::cuda {

class SamplingOp {
 public:
  /// Runs the op on `stream` over logits [*, V] f32 (device memory), waits, and
  /// writes `out` (host memory, top arrays included). Returns the bytes copied to
  /// the host. Inputs are trusted (StepContext checked them).
  size_t run(const float* logits, int64_t V, const BanyanSampleRow* rows, int32_t num_rows,
             const BanyanLogitEdit* edits, int32_t num_edits, BanyanSampleResult* out,
             cudaStream_t stream);

 private:
  DeviceMemory scratch_;
  PinnedMemory host_in_, host_out_;
};

}  // namespace banyan::kernels::cuda
