// Fused decode kernels (few rows of x) for the quantized layouts, with AVX-512: each
// weight chunk is unpacked in registers and multiplied by up to eight rows of x at
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
// GCC 12 warns inside its own intrinsics header (the self-initialized "undefined"
// vector of _mm512_cvtepu8_epi32 and friends: GCC bug 105593) once these kernels
// inline them; nothing here reads an uninitialized value.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
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

// Independent accumulator chains per row of x: with few rows, one chain would wait
// on the latency of each fused multiply-add.
constexpr int chains(int mt) { return mt <= 2 ? 4 : mt <= 4 ? 2 : 1; }

template <int MT>
inline void reduce(__m512 (&acc)[MT][chains(MT)], float scale, float* sums) {
  for (int m = 0; m < MT; ++m) {
    __m512 t = acc[m][0];
    for (int c = 1; c < chains(MT); ++c) t = _mm512_add_ps(t, acc[m][c]);
    sums[m] = _mm512_reduce_add_ps(t) * scale;
  }
}

// 16 values per step, C steps (one per chain) per iteration; K % (16 C) == 0.
template <int MT, class Load>
inline void rows16(int64_t K, const float* x, Load load, __m512 (&acc)[MT][chains(MT)]) {
  constexpr int C = chains(MT);
  for (int m = 0; m < MT; ++m)
    for (int c = 0; c < C; ++c) acc[m][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16 * C)
    for (int c = 0; c < C; ++c) {
      const __m512 wv = load(k + 16 * c);
      for (int m = 0; m < MT; ++m) acc[m][c] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k + 16 * c), acc[m][c]);
    }
}

template <int MT>
void int8_row(const QuantView& w, int64_t n, const float* x, float* sums) {
  const int64_t K = w.cols;
  const int8_t* q = static_cast<const int8_t*>(w.qweight) + n * K;
  __m512 acc[MT][chains(MT)];
  rows16<MT>(K, x, [q](int64_t k) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k))));
  }, acc);
  reduce<MT>(acc, static_cast<const float*>(w.scales)[n], sums);
}

template <int MT>
void fp8_row(const QuantView& w, int64_t n, const float* x, float* sums) {
  const int64_t K = w.cols;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * K;
  const __m256i sign = _mm256_set1_epi16(static_cast<short>(0x80)), mag = _mm256_set1_epi16(0x7f);
  __m512 acc[MT][chains(MT)];
  rows16<MT>(K, x, [&](int64_t k) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k)));
    return _mm512_cvtph_ps(_mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v, sign), 8),
                                           _mm256_slli_epi16(_mm256_and_si256(v, mag), 7)));
  }, acc);
  reduce<MT>(acc, static_cast<const float*>(w.scales)[w.per_row_scale ? n : 0] * 256.0f, sums);
}

// 32 values per 16 bytes; the even ones into chain 2c, the odd ones into 2c + 1,
// C / 2 chunks per iteration (the span must be a multiple of 16 C).
template <int MT, class Unpack>
inline void rows32(int64_t k0, int64_t k1, int64_t K, const float* xd, Unpack unpack,
                   __m512 (&acc)[MT][chains(MT)]) {
  constexpr int C = chains(MT) >= 2 ? chains(MT) : 2;
  static_assert(chains(MT) == 1 || chains(MT) % 2 == 0);
  for (int64_t k = k0; k < k1; k += 16 * C) {
    for (int c = 0; c < C / 2; ++c) {
      __m512 we, wo;
      unpack(k + 32 * c, we, wo);
      for (int m = 0; m < MT; ++m) {
        const float* xm = xd + m * K + k + 32 * c;
        const int a = chains(MT) == 1 ? 0 : 2 * c, b = chains(MT) == 1 ? 0 : 2 * c + 1;
        acc[m][a] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xm), acc[m][a]);
        acc[m][b] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xm + 16), acc[m][b]);
      }
    }
  }
}

template <int MT>
void int4_row(const QuantView& w, int64_t n, const float* xd, float* sums) {
  const int64_t K = w.cols, G = w.group_size, ng = K / G;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * (K / 2);
  const float* s = static_cast<const float*>(w.scales) + n * ng;
  const uint8_t* z = w.zeros + n * ng;
  const __m512i low = _mm512_set1_epi32(0xf);
  __m512 acc[MT][chains(MT)];
  for (int m = 0; m < MT; ++m)
    for (int c = 0; c < chains(MT); ++c) acc[m][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const __m512 sg = _mm512_set1_ps(s[g]), zg = _mm512_set1_ps(static_cast<float>(z[g]));
    rows32<MT>(g * G, (g + 1) * G, K, xd, [&](int64_t k, __m512& we, __m512& wo) {
      const __m512i v = load_bytes32(q + k / 2);
      we = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, low)), zg), sg);
      wo = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), zg), sg);
    }, acc);
  }
  reduce<MT>(acc, 1.0f, sums);
}

template <int MT>
void lut4_row(const QuantView& w, int64_t n, const float* xd, float* sums) {
  const int64_t K = w.cols, B = w.group_size;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * (K / 2);
  const __m512 code = _mm512_loadu_ps(w.code);
  const __m512i low = _mm512_set1_epi32(0xf);
  __m512 acc[MT][chains(MT)];
  for (int m = 0; m < MT; ++m)
    for (int c = 0; c < chains(MT); ++c) acc[m][c] = _mm512_setzero_ps();
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
    rows32<MT>(k0, k0 + B, K, xd, [&](int64_t k, __m512& we, __m512& wo) {
      const __m512i v = load_bytes32(q + k / 2);
      we = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);  // even: high nibble
      wo = _mm512_permutexvar_ps(_mm512_and_si512(v, low), table);
    }, acc);
  }
  reduce<MT>(acc, 1.0f, sums);
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

// Spans are multiples of 64 values, so that every chain count divides them.
bool takes(const QuantView& w) {
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW:
    case BANYAN_QUANT_FP8: return w.cols % 64 == 0;
    case BANYAN_QUANT_INT4_GROUP: return w.group_size % 64 == 0 && w.cols % 64 == 0;
    case BANYAN_QUANT_LUT4_BLOCK: return w.group_size % 64 == 0 && w.cols % w.group_size == 0;
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
    float sums[8];
    for (int64_t m0 = 0; m0 < M; m0 += 8) {
      const float* xm = x + m0 * K;
      switch (std::min<int64_t>(8, M - m0)) {
        case 8: row_dot<8>(w, n, xm, sums); break;
        case 7: row_dot<7>(w, n, xm, sums); break;
        case 6: row_dot<6>(w, n, xm, sums); break;
        case 5: row_dot<5>(w, n, xm, sums); break;
        case 4: row_dot<4>(w, n, xm, sums); break;
        case 3: row_dot<3>(w, n, xm, sums); break;
        case 2: row_dot<2>(w, n, xm, sums); break;
        default: row_dot<1>(w, n, xm, sums); break;
      }
      for (int64_t m = m0; m < std::min(M, m0 + 8); ++m) {
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
