// Writes the step's new keys and values into the paged KV cache: one block per
// token, 16-byte copies of the token's K and V rows to the slot its
// slot_mapping names (slot -1: the token is not cached).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void kv_write_kernel(const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,
                                const int32_t* __restrict__ slots, int64_t width,
                                uint16_t* k_cache, uint16_t* v_cache) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t t = blockIdx.x;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  const int64_t vecs = width / 8;
  for (int64_t i = threadIdx.x; i < 2 * vecs; i += blockDim.x) {
    const bool is_v = i >= vecs;
    const int64_t c = (is_v ? i - vecs : i) * 8;
    const uint16_t* src = (is_v ? v : k) + t * width + c;
    uint16_t* dst = (is_v ? v_cache : k_cache) + slot * width + c;
    store8(dst, load8(src));
  }
}

}  // namespace

void kv_cache_write(const bf16_bits* k, const bf16_bits* v, const PagedArgs& a,
                    cudaStream_t stream) {
  if (a.num_tokens <= 0) return;
  const int64_t width = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;  // multiple of 8
  launch_chained("kv_cache_write", kv_write_kernel, static_cast<unsigned>(a.num_tokens), kThreads,
                 0, stream, k, v, a.slot_mapping, width, a.k_cache, a.v_cache);
}

}  // namespace banyan::kernels::cuda
