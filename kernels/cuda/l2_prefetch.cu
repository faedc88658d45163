// L2 prefetch of a weight the stream will read soon: the decode step's long
// non-GEMM kernel (attention) leaves most of the memory bandwidth unused, while the
// projection right after it (o_proj, 32 MB at Llama-3-8B) streams its weight from
// DRAM. Issued before the attention, the prefetch fills L2 (50 MB on an H100) with
// that weight during the attention, and the GEMM then reads it from L2.
//
// The kernel only issues requests and returns: mode 1 with cp.async.bulk.prefetch.L2
// (one instruction per 32 KB chunk, the copy engine of the SM generates the requests),
// mode 2 with prefetch.global.L2 per 128-byte line. A hint only: no result, no error
// if the lines are gone again by the time they are read. Chained (PDL): it lets the
// next kernel launch at once and waits for its predecessor before it exits, so the
// chain's ordering stays transitive (common.cuh).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

#include <algorithm>
#include <cstdlib>

namespace banyan::kernels::cuda {
namespace {

constexpr unsigned kChunk = 32u << 10;  // bytes per bulk prefetch

int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : fallback;
}
int g_prefetch_mb = env_int("BANYAN_L2_PREFETCH_MB", 0);
int g_prefetch_mode = env_int("BANYAN_L2_PREFETCH_MODE", 1);

__global__ void l2_prefetch_bulk_kernel(const char* __restrict__ p, size_t bytes) {
  pdl_launch_dependents();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const size_t chunks = (bytes + kChunk - 1) / kChunk;
  for (size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks;
       c += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t off = c * kChunk;
    const unsigned n = static_cast<unsigned>(std::min<size_t>(kChunk, bytes - off));
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + off), "r"(n) : "memory");
  }
#endif
  pdl_wait();
}

__global__ void l2_prefetch_lines_kernel(const char* __restrict__ p, size_t bytes) {
  pdl_launch_dependents();
  for (size_t off = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 128; off < bytes;
       off += static_cast<size_t>(gridDim.x) * blockDim.x * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off) : "memory");
  pdl_wait();
}

}  // namespace

void l2_prefetch(const void* p, size_t bytes, int mode, int num_sms, cudaStream_t stream) {
  bytes &= ~size_t{15};  // whole 16-byte units (the bulk form's rule)
  if (!p || bytes == 0 || mode <= 0) return;
  const auto* c = static_cast<const char*>(p);
  if (mode == 1) {
    const size_t chunks = (bytes + kChunk - 1) / kChunk;
    const unsigned blocks = static_cast<unsigned>(std::min<size_t>(num_sms, chunks));  // spread over the SMs
    launch_chained("l2_prefetch_bulk", l2_prefetch_bulk_kernel, dim3(blocks), dim3(32), 0, stream, c, bytes);
  } else {
    const size_t lines = (bytes + 127) / 128;
    const unsigned blocks = static_cast<unsigned>(std::min<size_t>(num_sms, (lines + 255) / 256));
    launch_chained("l2_prefetch_lines", l2_prefetch_lines_kernel, dim3(blocks), dim3(256), 0, stream, c, bytes);
  }
}

int l2_prefetch_mb() { return g_prefetch_mb; }
void set_l2_prefetch_mb(int mb) { g_prefetch_mb = std::clamp(mb, 0, 1 << 16); }
int l2_prefetch_mode() { return g_prefetch_mode; }
void set_l2_prefetch_mode(int mode) { g_prefetch_mode = std::clamp(mode, 0, 2); }

}  // namespace banyan::kernels::cuda
