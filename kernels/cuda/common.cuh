// Device helpers shared by the .cu files: bf16 <-> f32, 16-byte vectors of eight
// bf16, warp reductions and the activations.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

namespace banyan::kernels::cuda {

__device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
/// Round to nearest even (NaN stays NaN), as torch does.
__device__ __forceinline__ uint16_t f2bf(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
/// f rounded to bf16 precision, kept as f32.
__device__ __forceinline__ float round_bf(float f) { return bf2f(f2bf(f)); }

/// Eight bf16 in one 16-byte word.
struct alignas(16) Bf16x8 {
  uint32_t w[4];
  __device__ __forceinline__ float get(int i) const {
    const uint32_t v = w[i >> 1];
    return (i & 1) ? __uint_as_float(v & 0xffff0000u) : __uint_as_float(v << 16);
  }
  __device__ __forceinline__ void set(int i, float f) {
    const uint32_t h = f2bf(f);
    uint32_t& v = w[i >> 1];
    v = (i & 1) ? ((v & 0x0000ffffu) | (h << 16)) : ((v & 0xffff0000u) | h);
  }
};

__device__ __forceinline__ Bf16x8 load8(const uint16_t* p) {
  Bf16x8 v;
  *reinterpret_cast<uint4*>(v.w) = __ldg(reinterpret_cast<const uint4*>(p));
  return v;
}
/// As load8, for memory written earlier in the same kernel (no read-only path).
__device__ __forceinline__ Bf16x8 load8_rw(const uint16_t* p) {
  Bf16x8 v;
  *reinterpret_cast<uint4*>(v.w) = *reinterpret_cast<const uint4*>(p);
  return v;
}
__device__ __forceinline__ void store8(uint16_t* p, const Bf16x8& v) {
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v.w);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
/// `scratch` holds 32 floats of shared memory; the call synchronizes the block.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(t);
}

/// BanyanActivation: 0 silu, 1 gelu (erf), 2 gelu (tanh), 3 relu.
__device__ __forceinline__ float apply_act(float v, int a) {
  switch (a) {
    case 0: return v / (1.0f + expf(-v));
    case 1: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case 2: return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    default: return v > 0.0f ? v : 0.0f;
  }
}

// --- Programmatic dependent launch (sm_90) ---------------------------------------
// The decode chain's kernels are launched with programmatic stream serialization
// (launch_chained): a kernel may start while its predecessor on the stream still
// runs, once every block of the predecessor has called pdl_launch_dependents (or
// exited). Work that needs no result of earlier kernels may run before pdl_wait
// (the GEMV can prefetch its weights, off by default); everything else after. The contract every chained kernel
// keeps: each thread calls pdl_wait once before it reads memory an earlier kernel
// wrote or writes memory an earlier kernel may still read, and every thread calls
// it before it exits (early returns come after it), so that a chained kernel
// completes only after its predecessor did: the ordering stays transitive along the
// chain, and a plain launch (cuBLASLt, a copy) after it stays correct. Both are
// no-ops in a kernel launched plainly.

/// Waits until the preceding kernel has completed and its writes are visible.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/// Lets the next chained kernel on the stream launch (it still waits for this one
/// to complete before it reads our results).
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/// Launches `kernel` with programmatic stream serialization when `chained`, plainly
/// otherwise; checks the launch.
template <class... Params, class... Args>
void launch_maybe_chained(bool chained, const char* what, void (*kernel)(Params...), dim3 grid,
                          dim3 block, size_t smem, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = chained ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...), what, __FILE__,
             __LINE__);
}

/// launch_maybe_chained when pdl_enabled() (BANYAN_PDL=0 turns it off).
template <class... Params, class... Args>
void launch_chained(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block,
                    size_t smem, cudaStream_t stream, Args... args) {
  launch_maybe_chained(pdl_enabled(), what, kernel, grid, block, smem, stream, args...);
}

inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < cap ? b : cap);
}

}  // namespace banyan::kernels::cuda
