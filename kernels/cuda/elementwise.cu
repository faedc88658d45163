// Element-wise kernels: embedding lookup, activations, add, bias, row gather, the
// dtype conversion of weights at load, and a random fill for benchmarks. Grid-
// stride loops over 8 bf16 (16 bytes) per step where sizes and alignment allow.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

#include <banyan/abi.h>
#include <banyan/error.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 256;

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The prologue of the chained kernels here: nothing to do before the wait.
__device__ __forceinline__ void chained_prologue() {
  pdl_launch_dependents();
  pdl_wait();
}

#define GRID_STRIDE(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void embedding_kernel(const void* table, bool table_f32, int64_t hidden,
                                 const int32_t* ids, int64_t n, uint16_t* out) {
  chained_prologue();
  const int64_t vecs = hidden / 8;
  GRID_STRIDE(i, n * vecs) {
    const int64_t t = i / vecs, c = (i % vecs) * 8;
    const int64_t row = ids[t];
    if (table_f32) {
      const float* src = static_cast<const float*>(table) + row * hidden + c;
      Bf16x8 v;
#pragma unroll
      for (int j = 0; j < 8; ++j) v.set(j, src[j]);
      store8(out + t * hidden + c, v);
    } else {
      store8(out + t * hidden + c, load8(static_cast<const uint16_t*>(table) + row * hidden + c));
    }
  }
}

__global__ void embedding_scalar_kernel(const void* table, bool table_f32, int64_t hidden,
                                        const int32_t* ids, int64_t n, uint16_t* out) {
  chained_prologue();
  GRID_STRIDE(i, n * hidden) {
    const int64_t t = i / hidden, c = i % hidden, src = ids[t] * hidden + c;
    out[i] = table_f32 ? f2bf(static_cast<const float*>(table)[src])
                       : static_cast<const uint16_t*>(table)[src];
  }
}

// op 0: act(a) * b; op 1: act(a); op 2: a + b.
template <int Op>
__device__ __forceinline__ float combine(float a, float b, int act) {
  if constexpr (Op == 0) return round_bf(apply_act(a, act)) * b;
  if constexpr (Op == 1) return apply_act(a, act);
  return a + b;
}

template <int Op>
__global__ void binary_vec_kernel(const uint16_t* a, const uint16_t* b, int64_t vecs, int act,
                                  uint16_t* out) {
  chained_prologue();
  GRID_STRIDE(i, vecs) {
    const Bf16x8 x = load8(a + i * 8);
    Bf16x8 y;
    if constexpr (Op != 1) y = load8(b + i * 8);
    Bf16x8 o;
#pragma unroll
    for (int j = 0; j < 8; ++j) o.set(j, combine<Op>(x.get(j), Op != 1 ? y.get(j) : 0.0f, act));
    store8(out + i * 8, o);
  }
}

template <int Op>
__global__ void binary_scalar_kernel(const uint16_t* a, const uint16_t* b, int64_t n, int act,
                                     uint16_t* out) {
  chained_prologue();
  GRID_STRIDE(i, n) {
    out[i] = f2bf(combine<Op>(bf2f(a[i]), Op != 1 ? bf2f(b[i]) : 0.0f, act));
  }
}

template <int Op>
void binary(const uint16_t* a, const uint16_t* b, int64_t n, int act, uint16_t* out,
            cudaStream_t s) {
  if (n <= 0) return;
  if (n % 8 == 0 && aligned16(a) && aligned16(out) && (!b || aligned16(b)))
    launch_chained("element-wise op", binary_vec_kernel<Op>, blocks_for(n / 8, kThreads), kThreads,
                   0, s, a, b, n / 8, act, out);
  else
    launch_chained("element-wise op", binary_scalar_kernel<Op>, blocks_for(n, kThreads), kThreads,
                   0, s, a, b, n, act, out);
}

// out[t, :] = act(gu[t, :N]) * gu[t, N:] for gu [T, 2N] (a fused gate/up product):
// `width` values per step (8: 16-byte vectors, 1: any alignment).
template <int W>
__global__ void act_mul_halves_kernel(const uint16_t* gu, int64_t rows, int64_t n, int act, uint16_t* out) {
  chained_prologue();
  const int64_t steps = n / W;
  GRID_STRIDE(i, rows * steps) {
    const int64_t t = i / steps, c = (i - t * steps) * W;
    const uint16_t* g = gu + t * 2 * n + c;
    if constexpr (W == 8) {
      const Bf16x8 x = load8(g), y = load8(g + n);
      Bf16x8 o;
#pragma unroll
      for (int j = 0; j < 8; ++j) o.set(j, combine<0>(x.get(j), y.get(j), act));
      store8(out + t * n + c, o);
    } else {
      out[t * n + c] = f2bf(combine<0>(bf2f(g[0]), bf2f(g[n]), act));
    }
  }
}

template <class T>
__global__ void add_bias_kernel(T* out, int64_t M, int64_t N, const float* bias) {
  chained_prologue();
  GRID_STRIDE(i, M * N) {
    if constexpr (sizeof(T) == 4) {
      out[i] += bias[i % N];
    } else {
      out[i] = f2bf(bf2f(out[i]) + bias[i % N]);
    }
  }
}

// x [rows, begin[parts]] -> parts: columns [begin[p], begin[p + 1]) into dst[p].
template <class T>
__global__ void split_kernel(const T* x, int64_t rows, SplitParts sp) {
  chained_prologue();
  const int64_t width = sp.begin[sp.parts];
  GRID_STRIDE(i, rows * width) {
    const int64_t r = i / width, c = i % width;
    int p = 0;
    while (c >= sp.begin[p + 1]) ++p;
    const int64_t w = sp.begin[p + 1] - sp.begin[p];
    static_cast<T*>(sp.dst[p])[r * w + (c - sp.begin[p])] = x[i];
  }
}

template <class T>
__global__ void gather_kernel(const T* x, int64_t width, const int32_t* rows, int64_t n, T* out) {
  chained_prologue();
  GRID_STRIDE(i, n * width) {
    const int64_t r = i / width, c = i % width;
    out[i] = x[static_cast<int64_t>(rows[r]) * width + c];
  }
}

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

__global__ void convert_kernel(const void* src, int32_t src_dtype, void* dst, bool dst_f32,
                               int64_t n) {
  GRID_STRIDE(i, n) {
    float f;
    if (src_dtype == BANYAN_F32) f = static_cast<const float*>(src)[i];
    else if (src_dtype == BANYAN_BF16) f = bf2f(static_cast<const uint16_t*>(src)[i]);
    else f = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    if (dst_f32) static_cast<float*>(dst)[i] = f;
    else static_cast<uint16_t*>(dst)[i] = f2bf(f);
  }
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_uniform_kernel(uint16_t* dst, int64_t n, uint64_t seed, float scale) {
  GRID_STRIDE(i, n) {
    const uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    dst[i] = f2bf((2.0f * u - 1.0f) * scale);
  }
}

std::atomic<bool>& pdl_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("BANYAN_PDL");
    return !(e && std::strcmp(e, "0") == 0);
  }()};
  return on;
}

}  // namespace

bool pdl_enabled() { return pdl_flag().load(std::memory_order_relaxed); }
void set_pdl(bool on) { pdl_flag().store(on, std::memory_order_relaxed); }

void embedding(const void* table, bool table_f32, int64_t hidden, const int32_t* ids, int64_t n,
               bf16_bits* out, cudaStream_t stream) {
  if (n <= 0) return;
  if (hidden % 8 == 0 && aligned16(table) && aligned16(out))
    launch_chained("embedding", embedding_kernel, blocks_for(n * hidden / 8, kThreads), kThreads,
                   0, stream, table, table_f32, hidden, ids, n, out);
  else
    launch_chained("embedding", embedding_scalar_kernel, blocks_for(n * hidden, kThreads),
                   kThreads, 0, stream, table, table_f32, hidden, ids, n, out);
}

void act_mul(const bf16_bits* gate, const bf16_bits* up, int64_t n, int32_t act, bf16_bits* out,
             cudaStream_t stream) {
  binary<0>(gate, up, n, act, out, stream);
}

void act_mul_halves(const bf16_bits* gate_up, int64_t rows, int64_t n, int32_t act, bf16_bits* out,
                    cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  if (n % 8 == 0 && aligned16(gate_up) && aligned16(out))
    launch_chained("act_mul_halves", act_mul_halves_kernel<8>, blocks_for(rows * n / 8, kThreads), kThreads, 0,
                   stream, gate_up, rows, n, act, out);
  else
    launch_chained("act_mul_halves", act_mul_halves_kernel<1>, blocks_for(rows * n, kThreads), kThreads, 0,
                   stream, gate_up, rows, n, act, out);
}

void activation(const bf16_bits* x, int64_t n, int32_t act, bf16_bits* out, cudaStream_t stream) {
  binary<1>(x, nullptr, n, act, out, stream);
}

void add(const bf16_bits* a, const bf16_bits* b, int64_t n, bf16_bits* out, cudaStream_t stream) {
  binary<2>(a, b, n, 0, out, stream);
}

void add_bias(void* out, bool out_f32, int64_t M, int64_t N, const float* bias,
              cudaStream_t stream) {
  if (M * N <= 0) return;
  if (out_f32)
    launch_chained("add_bias", add_bias_kernel<float>, blocks_for(M * N, kThreads), kThreads, 0,
                   stream, static_cast<float*>(out), M, N, bias);
  else
    launch_chained("add_bias", add_bias_kernel<uint16_t>, blocks_for(M * N, kThreads), kThreads,
                   0, stream, static_cast<uint16_t*>(out), M, N, bias);
}

void gather_rows(const void* x, int64_t row_bytes, const int32_t* rows, int64_t n, void* out,
                 cudaStream_t stream) {
  if (n <= 0 || row_bytes <= 0) return;
  if (row_bytes % 16 == 0 && aligned16(x) && aligned16(out))
    launch_chained("gather_rows", gather_kernel<uint4>, blocks_for(n * row_bytes / 16, kThreads),
                   kThreads, 0, stream, static_cast<const uint4*>(x), row_bytes / 16, rows, n,
                   static_cast<uint4*>(out));
  else if (row_bytes % 2 == 0)
    launch_chained("gather_rows", gather_kernel<uint16_t>, blocks_for(n * row_bytes / 2, kThreads),
                   kThreads, 0, stream, static_cast<const uint16_t*>(x), row_bytes / 2, rows, n,
                   static_cast<uint16_t*>(out));
  else
    launch_chained("gather_rows", gather_kernel<uint8_t>, blocks_for(n * row_bytes, kThreads),
                   kThreads, 0, stream, static_cast<const uint8_t*>(x), row_bytes, rows, n,
                   static_cast<uint8_t*>(out));
}

void split_columns(const void* x, int64_t rows, int64_t elem_bytes, const SplitParts& parts,
                   cudaStream_t stream) {
  if (parts.parts <= 0 || parts.parts > SplitParts::kMax)
    throw Error(Code::internal, "split_columns: " + std::to_string(parts.parts) + " parts");
  if (rows <= 0 || parts.begin[parts.parts] <= 0) return;
  bool vec = aligned16(x);
  for (int p = 0; p <= parts.parts; ++p) vec = vec && (parts.begin[p] * elem_bytes) % 16 == 0;
  for (int p = 0; p < parts.parts; ++p) vec = vec && aligned16(parts.dst[p]);
  const int64_t unit = vec ? 16 : elem_bytes;
  if (unit != 16 && unit != 2 && unit != 4)
    throw Error(Code::internal, "split_columns: " + std::to_string(elem_bytes) + "-byte elements");
  SplitParts sp = parts;
  for (int p = 0; p <= sp.parts; ++p) sp.begin[p] = sp.begin[p] * elem_bytes / unit;
  const int64_t n = rows * sp.begin[sp.parts];
  if (unit == 16)
    launch_chained("split_columns", split_kernel<uint4>, blocks_for(n, kThreads), kThreads, 0, stream,
                   static_cast<const uint4*>(x), rows, sp);
  else if (unit == 4)
    launch_chained("split_columns", split_kernel<uint32_t>, blocks_for(n, kThreads), kThreads, 0,
                   stream, static_cast<const uint32_t*>(x), rows, sp);
  else
    launch_chained("split_columns", split_kernel<uint16_t>, blocks_for(n, kThreads), kThreads, 0,
                   stream, static_cast<const uint16_t*>(x), rows, sp);
}

void convert(const void* src, int32_t src_dtype, void* dst, bool dst_f32, int64_t n,
             cudaStream_t stream) {
  if (n <= 0) return;
  convert_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(src, src_dtype, dst, dst_f32, n);
  BANYAN_CUDA_CHECK_LAUNCH("convert");
}

void fill_uniform_bf16(bf16_bits* dst, int64_t n, uint64_t seed, float scale,
                       cudaStream_t stream) {
  if (n <= 0) return;
  fill_uniform_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(dst, n, seed, scale);
  BANYAN_CUDA_CHECK_LAUNCH("fill_uniform_bf16");
}

}  // namespace banyan::kernels::cuda
