// Rotary position embedding in place on q and k: cos/sin of the f32 angle
// position * inv_freq (as the reference computes it), rounded to bf16 like the
// bf16 reference, applied to every head's pairs.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/rope.cuh"

#include <banyan/error.h>

#include <algorithm>
#include <string>

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Block (token, head group): each thread rotates pairs of the group's heads, with
// its pair's cos/sin computed in place (cheap next to the memory latency, and it
// keeps one token's many heads spread over many blocks).
__global__ void rotary_kernel(uint16_t* q, int32_t q_heads, uint16_t* k, int32_t k_heads,
                              int32_t heads_per_block, RotaryArgs a) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t t = blockIdx.x;
  const int half = a.rotary_dim / 2;
  const int h_first = blockIdx.y * heads_per_block;
  const int h_end = min(q_heads + k_heads, h_first + heads_per_block);
  for (int p = threadIdx.x; p < (h_end - h_first) * half; p += blockDim.x) {
    const int h = h_first + p / half, i = p % half;
    rope_pair_inplace(a, t, i,
                      h < q_heads ? q + (t * q_heads + h) * a.head_dim
                                  : k + (t * k_heads + (h - q_heads)) * a.head_dim);
  }
}

}  // namespace

void rotary(bf16_bits* q, int32_t q_heads, bf16_bits* k, int32_t k_heads, int64_t tokens,
            const RotaryArgs& a, cudaStream_t stream) {
  if (tokens <= 0) return;
  if (a.rotary_dim > a.head_dim || a.rotary_dim % 2 || a.rotary_dim <= 0)
    throw Error(Code::unsupported, "cuda rotary: rotary_dim " + std::to_string(a.rotary_dim) +
                                       " (head_dim " + std::to_string(a.head_dim) +
                                       ") is not supported (even, at most head_dim)");
  const int half = a.rotary_dim / 2;
  const int per_block = std::max(1, kThreads / std::max(half, 1));
  const int groups = (q_heads + k_heads + per_block - 1) / per_block;
  launch_chained("rotary", rotary_kernel,
                 dim3(static_cast<unsigned>(tokens), static_cast<unsigned>(groups)), kThreads, 0,
                 stream, q, q_heads, k, k_heads, per_block, a);
}

}  // namespace banyan::kernels::cuda
