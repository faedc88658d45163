// Element-wise kernels: embedding lookup, activations, add, row gather and the
// dtype conversion used when weights are loaded.
#include <banyan/abi.h>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernels.h"

#include <cmath>
#include <cstring>

namespace banyan::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per parallel chunk

inline float act(float v, int32_t a) {
  switch (a) {
    case BANYAN_ACT_SILU: return v / (1.0f + std::exp(-v));
    case BANYAN_ACT_GELU: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case BANYAN_ACT_GELU_TANH: {
      const float c = 0.79788456080286536f;  // sqrt(2/pi)
      return 0.5f * v * (1.0f + std::tanh(c * (v + 0.044715f * v * v * v)));
    }
    default: return v > 0.0f ? v : 0.0f;  // BANYAN_ACT_RELU
  }
}

template <class F>
void parallel_chunks(int64_t n, F&& f) {
  int64_t chunks = (n + kGrain - 1) / kGrain;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = c * kGrain, e = b + kGrain < n ? b + kGrain : n;
    f(b, e);
  }
}

}  // namespace

void embedding(const void* table, WeightType wt, int64_t hidden, const int32_t* ids, int64_t n,
               float* out) {
#pragma omp parallel for schedule(static) if (n * hidden > kParallelMin)
  for (int64_t t = 0; t < n; ++t) {
    float* o = out + t * hidden;
    int64_t row = ids[t];
    if (wt == WeightType::f32) {
      std::memcpy(o, static_cast<const float*>(table) + row * hidden, hidden * sizeof(float));
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(table) + row * hidden;
      for (int64_t i = 0; i < hidden; ++i) o[i] = bf16_to_f32(src[i]);
    }
  }
}

void act_mul(const float* gate, const float* up, int64_t n, int32_t a, float* out) {
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = act(gate[i], a) * up[i];
  });
}

void activation(const float* x, int64_t n, int32_t a, float* out) {
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = act(x[i], a);
  });
}

void add(const float* a, const float* b, int64_t n, float* out) {
  parallel_chunks(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void gather_rows(const float* x, int64_t width, const int32_t* rows, int64_t n, float* out) {
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(out + r * width, x + static_cast<int64_t>(rows[r]) * width, width * sizeof(float));
}

void convert(const void* src, int32_t src_dtype, void* dst, WeightType dst_type, int64_t n) {
  if (dst_type == WeightType::bf16) {  // only bf16 → bf16 is ever asked (no precision loss)
    auto* d = static_cast<uint16_t*>(dst);
    if (src_dtype == BANYAN_BF16) {
      parallel_chunks(n, [&](int64_t b, int64_t e) {
        std::memcpy(d + b, static_cast<const uint16_t*>(src) + b, (e - b) * sizeof(uint16_t));
      });
    } else {  // f32 → bf16 (used by tests and benches)
      parallel_chunks(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          float f;
          std::memcpy(&f, static_cast<const char*>(src) + i * 4, 4);
          d[i] = f32_to_bf16(f);
        }
      });
    }
    return;
  }
  auto* d = static_cast<float*>(dst);
  const auto* s8 = static_cast<const unsigned char*>(src);
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    if (src_dtype == BANYAN_F32) {
      std::memcpy(d + b, s8 + b * 4, (e - b) * sizeof(float));
    } else if (src_dtype == BANYAN_BF16) {
      for (int64_t i = b; i < e; ++i) {
        uint16_t h;
        std::memcpy(&h, s8 + i * 2, 2);
        d[i] = bf16_to_f32(h);
      }
    } else {  // BANYAN_F16
      for (int64_t i = b; i < e; ++i) {
        uint16_t h;
        std::memcpy(&h, s8 + i * 2, 2);
        d[i] = f16_to_f32(h);
      }
    }
  });
}

}  // namespace banyan::kernels::cpu
