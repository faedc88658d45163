// The rotation of one pair of a head (rotary position embedding), shared by the
// rotary kernel and the decode attention kernel that applies it on the fly: cos/sin
// of the f32 angle position * inv_freq, scaled and rounded to bf16, and the bf16
// roundings of the reference's products.
#pragma once

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.h"

namespace banyan::kernels::cuda {

/// Element indices of pair i (of rotary_dim / 2) in a head.
__device__ __forceinline__ void rope_pair(const RotaryArgs& a, int i, int& i0, int& i1) {
  const int half = a.rotary_dim / 2;
  i0 = a.neox ? i : 2 * i;
  i1 = a.neox ? i + half : 2 * i + 1;
}

/// cos and sin of pair i for token t, scaled and rounded to bf16 (they depend on the
/// step's positions and frequencies only).
__device__ __forceinline__ void rope_cos_sin(const RotaryArgs& a, int64_t t, int i, float& c, float& s) {
  const int half = a.rotary_dim / 2;
  const float* f = a.inv_freq + (a.freq_row ? static_cast<int64_t>(a.freq_row[t]) * half : 0);
  sincosf(static_cast<float>(a.positions[t]) * f[i], &s, &c);
  c = round_bf(c * a.scaling);
  s = round_bf(s * a.scaling);
}
/// Rotates (x0, x1) by rope_cos_sin's (c, s); results are bf16-exact.
__device__ __forceinline__ void rope_apply(float c, float s, float& x0, float& x1) {
  const float y0 = round_bf(round_bf(x0 * c) - round_bf(x1 * s));
  const float y1 = round_bf(round_bf(x1 * c) + round_bf(x0 * s));
  x0 = y0;
  x1 = y1;
}
/// Rotates (x0, x1), the values at rope_pair(i), for token t; results are bf16-exact.
__device__ __forceinline__ void rope_rotate(const RotaryArgs& a, int64_t t, int i, float& x0, float& x1) {
  float c, s;
  rope_cos_sin(a, t, i, c, s);
  rope_apply(c, s, x0, x1);
}

/// Rotates pair i of the head x (bf16) in place, for token t.
__device__ __forceinline__ void rope_pair_inplace(const RotaryArgs& a, int64_t t, int i, uint16_t* x) {
  int i0, i1;
  rope_pair(a, i, i0, i1);
  float x0 = bf2f(x[i0]), x1 = bf2f(x[i1]);
  rope_rotate(a, t, i, x0, x1);
  x[i0] = f2bf(x0);
  x[i1] = f2bf(x1);
}

/// Rotates one head of D bf16 values in place, with the threads of a block.
__device__ __forceinline__ void rope_head_inplace(const RotaryArgs& a, int64_t t, uint16_t* x) {
  for (int i = threadIdx.x; i < a.rotary_dim / 2; i += blockDim.x) rope_pair_inplace(a, t, i, x);
}

}  // namespace banyan::kernels::cuda
