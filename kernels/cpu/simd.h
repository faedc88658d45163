// Small vector helpers for the CPU kernels: AVX-512 where the compiler targets it,
// plain loops elsewhere. Same results to within float rounding.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace banyan::kernels::cpu {

#if defined(__AVX512F__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_* in reductions
// and conversions); the code is correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// e^x for x <= 0 within 2 ulp of expf: 2^n times a degree-6 polynomial on
/// [-ln2/2, ln2/2]; inputs below -87 give e^-87 (softmax weights that small vanish).
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = __builtin_roundf(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

#if defined(__AVX512F__)
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(
      _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}
#endif

/// a · b over n floats.
inline float dot(const float* a, const float* b, int32_t n) {
  int32_t i = 0;
  float s = 0.0f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  s = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// x[i] = e^(x[i] - max) in place; returns the sum. max >= every x[i].
inline float exp_sub_sum(float* x, int32_t n, float max) {
  int32_t i = 0;
  float s = 0.0f;
#if defined(__AVX512F__)
  const __m512 m = _mm512_set1_ps(max);
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  s = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; ++i) {
    x[i] = exp_nonpositive(x[i] - max);
    s += x[i];
  }
  return s;
}

/// For 4 rows q[0..3] (each of D floats) and 16 keys stored transposed (key c's
/// element d at kt[d * ld + c]), out[r][c] = q[r] · key c. Four independent chains.
inline void rows4_times_keys16(const float* const q[4], const float* kt, int64_t ld, int32_t D,
                               float out[4][16]) {
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int32_t d = 0; d < D; ++d) {
    const __m512 k = _mm512_loadu_ps(kt + d * ld);
    a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[0][d]), k, a0);
    a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[1][d]), k, a1);
    a2 = _mm512_fmadd_ps(_mm512_set1_ps(q[2][d]), k, a2);
    a3 = _mm512_fmadd_ps(_mm512_set1_ps(q[3][d]), k, a3);
  }
  _mm512_storeu_ps(out[0], a0);
  _mm512_storeu_ps(out[1], a1);
  _mm512_storeu_ps(out[2], a2);
  _mm512_storeu_ps(out[3], a3);
#else
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 16; ++c) out[r][c] = 0.0f;
  for (int32_t d = 0; d < D; ++d)
    for (int r = 0; r < 4; ++r) {
      const float qd = q[r][d];
      for (int c = 0; c < 16; ++c) out[r][c] += qd * kt[d * ld + c];
    }
#endif
}

/// o[0..D) = sum_j w[j] * V[j * D ..] over n rows of V (contiguous [n, D]); zero
/// weights are skipped. The output row stays in registers when D is 16..128.
#if defined(__AVX512F__)
template <int NV>
inline void weighted_rows_fixed(const float* w, int32_t n, const float* V, float* o) {
  __m512 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
  for (int32_t j = 0; j < n; ++j) {
    if (w[j] == 0.0f) continue;
    const __m512 wj = _mm512_set1_ps(w[j]);
    const float* row = V + static_cast<int64_t>(j) * NV * 16;
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_fmadd_ps(wj, _mm512_loadu_ps(row + 16 * v), acc[v]);
  }
  for (int v = 0; v < NV; ++v) _mm512_storeu_ps(o + 16 * v, acc[v]);
}
#endif

inline void weighted_rows(const float* w, int32_t n, const float* V, int32_t D, float* o) {
#if defined(__AVX512F__)
  switch (D) {
    case 16: return weighted_rows_fixed<1>(w, n, V, o);
    case 32: return weighted_rows_fixed<2>(w, n, V, o);
    case 48: return weighted_rows_fixed<3>(w, n, V, o);
    case 64: return weighted_rows_fixed<4>(w, n, V, o);
    case 80: return weighted_rows_fixed<5>(w, n, V, o);
    case 96: return weighted_rows_fixed<6>(w, n, V, o);
    case 112: return weighted_rows_fixed<7>(w, n, V, o);
    case 128: return weighted_rows_fixed<8>(w, n, V, o);
    default: break;
  }
#endif
  for (int32_t d = 0; d < D; ++d) o[d] = 0.0f;
  for (int32_t j = 0; j < n; ++j) {
    if (w[j] == 0.0f) continue;
    const float* row = V + static_cast<int64_t>(j) * D;
#pragma omp simd
    for (int32_t d = 0; d < D; ++d) o[d] += w[j] * row[d];
  }
}

#if defined(__AVX512F__)
#pragma GCC diagnostic pop
#endif

}  // namespace banyan::kernels::cpu
