// Rotary position embedding, in place on q and k. cos/sin are computed once per
// token (f32 angle = position * inv_freq, as transformers does) and applied to
// every head of that token.
#include "kernels/cpu/kernels.h"

#include <cmath>
#include <vector>

namespace banyan::kernels::cpu {
namespace {

inline void rotate_head(float* x, const float* c, const float* s, int32_t half, bool neox) {
  if (neox) {  // pairs (i, i + half): x' = x*cos + rotate_half(x)*sin
    for (int32_t i = 0; i < half; ++i) {
      float a = x[i], b = x[i + half];
      x[i] = a * c[i] - b * s[i];
      x[i + half] = b * c[i] + a * s[i];
    }
  } else {  // interleaved pairs (2i, 2i + 1)
    for (int32_t i = 0; i < half; ++i) {
      float a = x[2 * i], b = x[2 * i + 1];
      x[2 * i] = a * c[i] - b * s[i];
      x[2 * i + 1] = b * c[i] + a * s[i];
    }
  }
}

}  // namespace

void rotary(float* q, int64_t q_heads, float* k, int64_t k_heads, int64_t tokens,
            const RotaryArgs& a) {
  const int32_t half = a.rotary_dim / 2;
  const int64_t work = tokens * (q_heads + k_heads) * a.head_dim;
#pragma omp parallel if (work > kParallelMin)
  {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    float* c = cs.data();
    float* s = cs.data() + half;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
      const float* f = a.inv_freq + (a.freq_row ? static_cast<int64_t>(a.freq_row[t]) * half : 0);
      const float pos = static_cast<float>(a.positions[t]);
      for (int32_t i = 0; i < half; ++i) {
        const float angle = pos * f[i];  // rounded to f32 like the reference
        c[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * a.scaling;
        s[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * a.scaling;
      }
      for (int64_t h = 0; h < q_heads; ++h)
        rotate_head(q + (t * q_heads + h) * a.head_dim, c, s, half, a.neox);
      for (int64_t h = 0; h < k_heads; ++h)
        rotate_head(k + (t * k_heads + h) * a.head_dim, c, s, half, a.neox);
    }
  }
}

}  // namespace banyan::kernels::cpu
