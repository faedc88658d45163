// Elementwise helpers: of the dense LoRA path (long runs of one adapter, e.g. a
// prefill chunk, through cuBLASLt), scaling the shrink's output and the DoRA
// combination of the base output with the adapter's delta; and the merge of the
// overlapped path (deltas computed beside the base product, added after it).
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

// One block per (row, 2048 columns): the row's slot and table entry, then the add.
template <bool F32>
__global__ void merge_kernel(void* __restrict__ out, const float* __restrict__ delta,
                             const int32_t* __restrict__ slots, int num_slots, int64_t n,
                             const LoraEntry* __restrict__ table) {
  const int64_t row = blockIdx.y;
  const int s = slots[row];
  if (s < 0 || s >= num_slots) return;
  const LoraEntry& e = table[s];
  if (e.rank == 0) return;
  const float* sc = e.dora_scale;
  const float* bias = e.dora_bias;
  const int64_t end = min(n, static_cast<int64_t>(blockIdx.x + 1) * 2048);
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * 2048 + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t i = row * n + j;
    float v = (F32 ? static_cast<float*>(out)[i] : bf2f(static_cast<uint16_t*>(out)[i])) + delta[i];
    if (sc) v = sc[j] * v + (bias ? bias[j] : 0.0f);
    if (F32)
      static_cast<float*>(out)[i] = v;
    else
      static_cast<uint16_t*>(out)[i] = f2bf(v);
  }
}

}  // namespace

void lora_merge(void* out, bool out_f32, const float* delta, const int32_t* slots, int64_t rows,
                int32_t num_slots, int64_t n_out, const LoraEntry* table, cudaStream_t stream) {
  if (rows <= 0 || n_out <= 0) return;
  const dim3 grid(static_cast<unsigned>((n_out + 2047) / 2048), static_cast<unsigned>(rows));
  if (out_f32)
    merge_kernel<true><<<grid, kThreads, 0, stream>>>(out, delta, slots, num_slots, n_out, table);
  else
    merge_kernel<false><<<grid, kThreads, 0, stream>>>(out, delta, slots, num_slots, n_out, table);
  BANYAN_CUDA_CHECK_LAUNCH("lora merge_kernel");
}

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
