// Rotary position embedding in place on q and k: one block per token computes the
// token's cos/sin once (f32 angle = position * inv_freq, as the reference does),
// rounds them to bf16 like the bf16 reference, and rotates every head's pairs.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

#include <banyan/error.h>

#include <string>

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxHalf = 256;

__global__ void rotary_kernel(uint16_t* q, int32_t q_heads, uint16_t* k, int32_t k_heads,
                              RotaryArgs a) {
  __shared__ float cs[2 * kMaxHalf];
  const int64_t t = blockIdx.x;
  const int half = a.rotary_dim / 2;
  const float* f = a.inv_freq + (a.freq_row ? static_cast<int64_t>(a.freq_row[t]) * half : 0);
  const float pos = static_cast<float>(a.positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float s, c;
    sincosf(pos * f[i], &s, &c);
    cs[i] = round_bf(c * a.scaling);
    cs[kMaxHalf + i] = round_bf(s * a.scaling);
  }
  __syncthreads();
  const int pairs = (q_heads + k_heads) * half;
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int h = p / half, i = p % half;
    uint16_t* x = h < q_heads ? q + (t * q_heads + h) * a.head_dim
                              : k + (t * k_heads + (h - q_heads)) * a.head_dim;
    const int i0 = a.neox ? i : 2 * i, i1 = a.neox ? i + half : 2 * i + 1;
    const float x0 = bf2f(x[i0]), x1 = bf2f(x[i1]);
    const float c = cs[i], s = cs[kMaxHalf + i];
    x[i0] = f2bf(round_bf(x0 * c) - round_bf(x1 * s));
    x[i1] = f2bf(round_bf(x1 * c) + round_bf(x0 * s));
  }
}

}  // namespace

void rotary(bf16_bits* q, int32_t q_heads, bf16_bits* k, int32_t k_heads, int64_t tokens,
            const RotaryArgs& a, cudaStream_t stream) {
  if (tokens <= 0) return;
  if (a.rotary_dim / 2 > kMaxHalf || a.rotary_dim > a.head_dim || a.rotary_dim % 2)
    throw Error(Code::unsupported, "cuda rotary: rotary_dim " + std::to_string(a.rotary_dim) +
                                       " (head_dim " + std::to_string(a.head_dim) +
                                       ") is not supported (even, at most 512)");
  rotary_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(q, q_heads, k, k_heads, a);
  BANYAN_CUDA_CHECK_LAUNCH("rotary");
}

}  // namespace banyan::kernels::cuda
