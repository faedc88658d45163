// Fused decode kernels (few rows of x) for the quantized layouts, with AVX-512: each
// weight chunk is unpacked in registers and multiplied by up to four rows of x at
// once; nothing is written back to memory but the outputs.
//  - int8: 16 values per step, sign-extended and converted; the row scale at the end;
//  - int4: 32 values per 16 bytes; x is deinterleaved per 32-chunk once per call
//    (even elements, then odd), so low nibbles meet even x and high nibbles odd x;
//    w = (q - z) * s exactly as the plugins unpack it;
//  - lut4 (nf4): the block's 16 values code[j] * absmax in one register, looked up
//    with a permute (vpermps) by the 4-bit indices;
//  - fp8: e4m3fn bits moved into an IEEE half (exact, 2^-8 of the value), widened
//    with vcvtph2ps; 256 * scale at the end.
// Shapes these kernels do not take (or a build without AVX-512) fall back to the
// generic path in quant_cpu_kernels.cpp.
#include "core/quant/quant_kernels.h"

#include <banyan/abi.h>

#include <algorithm>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define BANYAN_QUANT_AVX512 1
#endif

namespace banyan::core {

#if BANYAN_QUANT_AVX512
namespace {

// Rows of x with each 32-chunk deinterleaved: [x0 x2 .. x30 | x1 x3 .. x31].
void deinterleave(const float* x, int64_t M, int64_t K, float* dst) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; c += 32) {
      const __m512 a = _mm512_loadu_ps(x + m * K + c), b = _mm512_loadu_ps(x + m * K + c + 16);
      _mm512_storeu_ps(dst + m * K + c, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(dst + m * K + c + 16, _mm512_permutex2var_ps(a, odd, b));
    }
}

inline __m512i load_bytes32(const uint8_t* p) {  // 16 bytes, zero-extended to 16 lanes
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <int MT>
void int8_row(const QuantView& w, int64_t n, const float* x, float* sums) {
  const int64_t K = w.cols;
  const int8_t* q = static_cast<const int8_t*>(w.qweight) + n * K;
  __m512 acc[MT];
  for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k))));
    for (int m = 0; m < MT; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k), acc[m]);
  }
  const float s = static_cast<const float*>(w.scales)[n];
  for (int m = 0; m < MT; ++m) sums[m] = _mm512_reduce_add_ps(acc[m]) * s;
}

template <int MT>
void fp8_row(const QuantView& w, int64_t n, const float* x, float* sums) {
  const int64_t K = w.cols;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * K;
  const __m256i sign = _mm256_set1_epi16(static_cast<short>(0x80)), mag = _mm256_set1_epi16(0x7f);
  __m512 acc[MT];
  for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k)));
    const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v, sign), 8),
                                      _mm256_slli_epi16(_mm256_and_si256(v, mag), 7));
    const __m512 wv = _mm512_cvtph_ps(h);
    for (int m = 0; m < MT; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k), acc[m]);
  }
  const float s = static_cast<const float*>(w.scales)[w.per_row_scale ? n : 0] * 256.0f;
  for (int m = 0; m < MT; ++m) sums[m] = _mm512_reduce_add_ps(acc[m]) * s;
}

template <int MT>
void int4_row(const QuantView& w, int64_t n, const float* xd, float* sums) {
  const int64_t K = w.cols, G = w.group_size, ng = K / G;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * (K / 2);
  const float* s = static_cast<const float*>(w.scales) + n * ng;
  const uint8_t* z = w.zeros + n * ng;
  const __m512i low = _mm512_set1_epi32(0xf);
  __m512 acc[MT];
  for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const __m512 sg = _mm512_set1_ps(s[g]), zg = _mm512_set1_ps(static_cast<float>(z[g]));
    for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
      const __m512i v = load_bytes32(q + k / 2);
      const __m512 we = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, low)), zg), sg);
      const __m512 wo = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), zg), sg);
      for (int m = 0; m < MT; ++m) {
        acc[m] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xd + m * K + k), acc[m]);
        acc[m] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xd + m * K + k + 16), acc[m]);
      }
    }
  }
  for (int m = 0; m < MT; ++m) sums[m] = _mm512_reduce_add_ps(acc[m]);
}

template <int MT>
void lut4_row(const QuantView& w, int64_t n, const float* xd, float* sums) {
  const int64_t K = w.cols, B = w.group_size;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * (K / 2);
  const __m512 code = _mm512_loadu_ps(w.code);
  const __m512i low = _mm512_set1_epi32(0xf);
  __m512 acc[MT];
  for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < K; k0 += B) {
    const int64_t b = (n * K + k0) / B;
    float amax;
    if (w.group_size2 > 0) {
      const float prod = w.code2[static_cast<const uint8_t*>(w.scales)[b]] * w.scales2[b / w.group_size2];
      amax = prod + w.offset;
    } else {
      amax = static_cast<const float*>(w.scales)[b];
    }
    const __m512 table = _mm512_mul_ps(code, _mm512_set1_ps(amax));
    for (int64_t k = k0; k < k0 + B; k += 32) {
      const __m512i v = load_bytes32(q + k / 2);
      const __m512 we = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);  // even: high nibble
      const __m512 wo = _mm512_permutexvar_ps(_mm512_and_si512(v, low), table);
      for (int m = 0; m < MT; ++m) {
        acc[m] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xd + m * K + k), acc[m]);
        acc[m] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xd + m * K + k + 16), acc[m]);
      }
    }
  }
  for (int m = 0; m < MT; ++m) sums[m] = _mm512_reduce_add_ps(acc[m]);
}

template <int MT>
void row_dot(const QuantView& w, int64_t n, const float* x, float* sums) {
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW: int8_row<MT>(w, n, x, sums); break;
    case BANYAN_QUANT_FP8: fp8_row<MT>(w, n, x, sums); break;
    case BANYAN_QUANT_INT4_GROUP: int4_row<MT>(w, n, x, sums); break;
    default: lut4_row<MT>(w, n, x, sums); break;
  }
}

bool takes(const QuantView& w) {
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW:
    case BANYAN_QUANT_FP8: return w.cols % 16 == 0;
    case BANYAN_QUANT_INT4_GROUP: return w.group_size % 32 == 0 && w.cols % 32 == 0;
    case BANYAN_QUANT_LUT4_BLOCK: return w.group_size % 32 == 0 && w.cols % w.group_size == 0;
    default: return false;
  }
}

}  // namespace

bool quant_decode_cpu(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
                      bool accumulate) {
  if (!takes(w)) return false;
  const int64_t N = w.rows, K = w.cols;
  const bool nibbles = w.layout == BANYAN_QUANT_INT4_GROUP || w.layout == BANYAN_QUANT_LUT4_BLOCK;
  std::vector<float> xd;
  if (nibbles) {
    xd.resize(static_cast<size_t>(M * K));
    deinterleave(x, M, K, xd.data());
    x = xd.data();
  }
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float sums[4];
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const float* xm = x + m0 * K;
      switch (std::min<int64_t>(4, M - m0)) {
        case 4: row_dot<4>(w, n, xm, sums); break;
        case 3: row_dot<3>(w, n, xm, sums); break;
        case 2: row_dot<2>(w, n, xm, sums); break;
        default: row_dot<1>(w, n, xm, sums); break;
      }
      for (int64_t m = m0; m < std::min(M, m0 + 4); ++m) {
        const float v = sums[m - m0] + (bias ? bias[n] : 0.0f);
        out[m * N + n] = accumulate ? out[m * N + n] + v : v;
      }
    }
  }
  return true;
}

#else

bool quant_decode_cpu(const QuantView&, const float*, int64_t, const float*, float*, bool) { return false; }

#endif

}  // namespace banyan::core
