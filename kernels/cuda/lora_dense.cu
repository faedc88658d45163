// Elementwise helpers of the dense LoRA path (long runs of one adapter, e.g. a
// prefill chunk, through cuBLASLt): scaling the shrink's output and the DoRA
// combination of the base output with the adapter's delta. (The merge of the
// overlapped path is in lora_apply.cu.)
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lora.h"

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void scale_kernel(uint16_t* __restrict__ t, int64_t n, float scaling) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    t[i] = f2bf(bf2f(t[i]) * scaling);
}

template <bool F32>
__global__ void dora_kernel(void* __restrict__ out, const uint16_t* __restrict__ delta, int64_t rows,
                            int64_t n, const float* __restrict__ scale, const float* __restrict__ bias) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i % n;
    float v = F32 ? static_cast<float*>(out)[i] : bf2f(static_cast<uint16_t*>(out)[i]);
    v = scale[j] * (v + bf2f(delta[i])) + (bias ? bias[j] : 0.0f);
    if (F32)
      static_cast<float*>(out)[i] = v;
    else
      static_cast<uint16_t*>(out)[i] = f2bf(v);
  }
}

}  // namespace

void lora_scale_bf16(uint16_t* t, int64_t n, float scaling, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<blocks_for(n, kThreads, 4096), kThreads, 0, stream>>>(t, n, scaling);
  BANYAN_CUDA_CHECK_LAUNCH("lora scale_kernel");
}

void lora_dora_combine(void* out, bool out_f32, const uint16_t* delta, int64_t rows, int64_t n,
                       const float* dora_scale, const float* dora_bias, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const unsigned blocks = blocks_for(rows * n, kThreads, 8192);
  if (out_f32)
    dora_kernel<true><<<blocks, kThreads, 0, stream>>>(out, delta, rows, n, dora_scale, dora_bias);
  else
    dora_kernel<false><<<blocks, kThreads, 0, stream>>>(out, delta, rows, n, dora_scale, dora_bias);
  BANYAN_CUDA_CHECK_LAUNCH("lora dora_kernel");
}

}  // namespace banyan::kernels::cuda
