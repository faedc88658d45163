// Device helpers of the paged KV cache shared by the attention kernels.
#pragma once

#include "kernels/cuda/kernels.h"

#include <cuda_runtime.h>

namespace banyan::kernels::cuda {

/// The cache slot of position `pos` of a sequence whose block table is `table`.
/// A power-of-two block size (the usual case) takes a shift instead of a division.
__device__ __forceinline__ int64_t slot_of(const PagedArgs& a, const int32_t* table, int pos) {
  if (a.block_shift >= 0)
    return (static_cast<int64_t>(table[pos >> a.block_shift]) << a.block_shift) +
           (pos & (a.block_size - 1));
  return static_cast<int64_t>(table[pos / a.block_size]) * a.block_size + pos % a.block_size;
}

}  // namespace banyan::kernels::cuda
