// RMSNorm and LayerNorm over the last dimension, with the residual add fused in.
// Statistics accumulate in f32 over kLanes partial sums (vectorizable).
#include "kernels/cpu/kernels.h"

#include <cmath>

namespace banyan::kernels::cpu {
namespace {

constexpr int kLanes = 16;

// Returns sum(v[i]) and, with `sq`, sum(v[i]^2); vectorized over kLanes.
inline float lane_sum(const float* v, int64_t n, bool sq) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += sq ? v[i + j] * v[i + j] : v[i + j];
  float s = 0.0f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += sq ? v[i] * v[i] : v[i];
  return s;
}

// Adds x into residual (when given) and returns the row to normalize.
inline const float* fuse_residual(const float* x, float* residual, int64_t n) {
  if (!residual) return x;
  for (int64_t i = 0; i < n; ++i) residual[i] += x[i];
  return residual;
}

}  // namespace

void rms_norm(const float* x, float* residual, const float* w, float w_offset, float eps,
              int64_t rows, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = fuse_residual(x + r * n, residual ? residual + r * n : nullptr, n);
    float inv = 1.0f / std::sqrt(lane_sum(v, n, true) / static_cast<float>(n) + eps);
    float* o = out + r * n;
    for (int64_t i = 0; i < n; ++i) o[i] = (w[i] + w_offset) * (v[i] * inv);
  }
}

void layer_norm(const float* x, float* residual, const float* w, const float* bias, float eps,
                int64_t rows, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = fuse_residual(x + r * n, residual ? residual + r * n : nullptr, n);
    float mean = lane_sum(v, n, false) / static_cast<float>(n);
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        float d = v[i + j] - mean;
        acc[j] += d * d;
      }
    float var = 0.0f;
    for (int j = 0; j < kLanes; ++j) var += acc[j];
    for (; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
    float inv = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
    float* o = out + r * n;
    for (int64_t k = 0; k < n; ++k) o[k] = (v[k] - mean) * inv * w[k] + (bias ? bias[k] : 0.0f);
  }
}

}  // namespace banyan::kernels::cpu
