// Linear layers: out = x · W^T (+ bias).
//
// Two paths:
//  - few rows (decode): a streaming kernel that reads each weight row once and
//    multiplies it by up to kSmallM activation rows held in cache; memory-bound,
//    it reads bf16 weights directly (half the bytes of f32);
//  - many rows (prefill): sgemm per tile of output features, the tiles spread over
//    the OpenMP threads; bf16 tiles are converted to f32 on the fly, so no f32 copy
//    of the whole matrix exists.
#include <banyan/abi.h>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <vector>

namespace banyan::kernels::cpu {
namespace {

int64_t g_small_m = 12;  // rows up to which the streaming kernel wins
constexpr int kLanes = 16;       // one 512-bit (or two 256-bit) vector of f32

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

#if defined(__AVX512F__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_* in the
// conversions); the code is correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {  // bf16 → f32: widen, shift into the high half
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// sums[m] = x[m, :] · w_row for MT rows of x. Two accumulators per row hide the
// FMA latency when MT is small; everything stays in registers.
template <int MT, class WT>
inline void dot_rows(const float* x, int64_t K, const WT* w_row, float* sums) {
  constexpr int kAcc = MT <= 2 ? 2 : 1;
  __m512 acc[MT][kAcc];
  for (int m = 0; m < MT; ++m)
    for (int a = 0; a < kAcc; ++a) acc[m][a] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 * kAcc <= K; k += 16 * kAcc) {
    for (int a = 0; a < kAcc; ++a) {
      const __m512 w = load16(w_row + k + 16 * a);
      for (int m = 0; m < MT; ++m)
        acc[m][a] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + m * K + k + 16 * a), acc[m][a]);
    }
  }
  for (int m = 0; m < MT; ++m) {
    __m512 t = acc[m][0];
    if constexpr (kAcc == 2) t = _mm512_add_ps(t, acc[m][1]);
    float s = _mm512_reduce_add_ps(t);
    for (int64_t kk = k; kk < K; ++kk) s += load(w_row, kk) * x[m * K + kk];
    sums[m] = s;
  }
}
#pragma GCC diagnostic pop
#else
// Portable version: kLanes partial sums per row, written for auto-vectorization.
template <int MT, class WT>
inline void dot_rows(const float* x, int64_t K, const WT* w_row, float* sums) {
  float acc[MT][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    float wv[kLanes];
    for (int j = 0; j < kLanes; ++j) wv[j] = load(w_row, k + j);
    for (int m = 0; m < MT; ++m) {
      const float* xr = x + m * K + k;
      for (int j = 0; j < kLanes; ++j) acc[m][j] += wv[j] * xr[j];
    }
  }
  for (int m = 0; m < MT; ++m) {
    float s = 0.0f;
    for (int j = 0; j < kLanes; ++j) s += acc[m][j];
    for (int64_t kk = k; kk < K; ++kk) s += load(w_row, kk) * x[m * K + kk];
    sums[m] = s;
  }
}
#endif

constexpr int64_t kMaxRows = 16;  // accumulators in registers: 16 of the 32 zmm

template <class WT, int MT = 1>
inline void dispatch_rows(int64_t rows, const float* x, int64_t K, const WT* w_row, float* sums) {
  if constexpr (MT < kMaxRows) {
    if (rows != MT) return dispatch_rows<WT, MT + 1>(rows, x, K, w_row, sums);
  }
  dot_rows<MT>(x, K, w_row, sums);
}

template <class WT>
void small_m(const float* x, int64_t M, int64_t K, const WT* w, int64_t N, const float* bias,
             float* out, bool accumulate) {
  constexpr int64_t kRows = kMaxRows;  // rows of x per pass over a weight row
  // Dynamic chunks of rows: a descheduled thread (shared machines) delays little.
#pragma omp parallel for schedule(dynamic, 32) if (M * N * K > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const WT* w_row = w + n * K;
    float sums[kRows];
    for (int64_t m0 = 0; m0 < M; m0 += kRows) {
      const float* xm = x + m0 * K;
      const int64_t rows = std::min(kRows, M - m0);
      dispatch_rows(rows, xm, K, w_row, sums);
      for (int64_t m = m0; m < m0 + rows; ++m) {
        float v = sums[m - m0] + (bias ? bias[n] : 0.0f);
        out[m * N + n] = accumulate ? out[m * N + n] + v : v;
      }
    }
  }
}

// W stored [K, N] (GPT-2 Conv1D): each thread owns a range of output columns.
template <class WT>
void small_m_transposed(const float* x, int64_t M, int64_t K, const WT* w, int64_t N,
                        const float* bias, float* out, bool accumulate) {
  constexpr int64_t kCols = 256;
  int64_t chunks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t n0 = c * kCols, n1 = std::min(N, n0 + kCols), width = n1 - n0;
    float acc[kCols];
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t j = 0; j < width; ++j) acc[j] = bias ? bias[n0 + j] : 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        float xv = x[m * K + k];
        const WT* wr = w + k * N + n0;
        for (int64_t j = 0; j < width; ++j) acc[j] += xv * load(wr, j);
      }
      float* o = out + m * N + n0;
      for (int64_t j = 0; j < width; ++j) o[j] = accumulate ? o[j] + acc[j] : acc[j];
    }
  }
}

void add_bias(float* out, int64_t M, int64_t N, const float* bias) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) out[m * N + n] += bias[n];
}

// Large M: the output features are cut into tiles of about 1 MiB of f32 weight
// (a core's L2); OpenMP threads take tiles and run a single-threaded sgemm on each,
// converting bf16 tiles to f32 first. BLAS never starts threads of its own, so its
// spinning workers cannot fight the OpenMP team for the cores.
void large_m(const float* x, int64_t M, int64_t K, const void* w, WeightType wt, bool transposed,
             int64_t N, float* out, bool accumulate) {
  // At most ~1 MiB of f32 per tile, and at least 4 tiles per thread so that a thread
  // the OS descheduled (shared machines) holds up little work.
  const int64_t per_thread = (N + 4 * omp_get_max_threads() - 1) / (4 * omp_get_max_threads());
  const int64_t cap = std::max<int64_t>(16, ((int64_t{1} << 18) / K) / 16 * 16);
  const int64_t tile = std::min(N, std::max<int64_t>(16, std::min(cap, (per_thread + 15) / 16 * 16)));
  const int64_t tiles = (N + tile - 1) / tile;
#pragma omp parallel
  {
    thread_local std::vector<float> buf;  // kept across calls: no page faults per tile
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n0 = t * tile, nb = std::min(tile, N - n0);
      const float* wt_ptr;
      int64_t ldb;
      if (wt == WeightType::f32) {
        wt_ptr = static_cast<const float*>(w) + (transposed ? n0 : n0 * K);
        ldb = transposed ? N : K;
      } else {
        buf.resize(static_cast<size_t>(nb * K));
        const auto* wb = static_cast<const uint16_t*>(w);
        if (!transposed) {
          for (int64_t i = 0; i < nb * K; ++i) buf[i] = bf16_to_f32(wb[n0 * K + i]);
          ldb = K;
        } else {
          for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < nb; ++j) buf[k * nb + j] = bf16_to_f32(wb[k * N + n0 + j]);
          ldb = nb;
        }
        wt_ptr = buf.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasNoTrans : CblasTrans,
                  static_cast<int>(M), static_cast<int>(nb), static_cast<int>(K), 1.0f, x,
                  static_cast<int>(K), wt_ptr, static_cast<int>(ldb), accumulate ? 1.0f : 0.0f,
                  out + n0, static_cast<int>(N));
    }
  }
}

}  // namespace

int64_t small_m_threshold() { return g_small_m; }
void set_small_m_threshold(int64_t rows) { g_small_m = rows; }

void matmul(const float* x, int64_t M, int64_t K, const void* w, WeightType wt, bool transposed,
            int64_t N, const float* bias, float* out, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (M <= g_small_m) {
    if (wt == WeightType::bf16) {
      auto* wb = static_cast<const uint16_t*>(w);
      transposed ? small_m_transposed(x, M, K, wb, N, bias, out, accumulate)
                 : small_m(x, M, K, wb, N, bias, out, accumulate);
    } else {
      auto* wf = static_cast<const float*>(w);
      transposed ? small_m_transposed(x, M, K, wf, N, bias, out, accumulate)
                 : small_m(x, M, K, wf, N, bias, out, accumulate);
    }
    return;
  }
  large_m(x, M, K, w, wt, transposed, N, out, accumulate);
  if (bias) add_bias(out, M, N, bias);
}

}  // namespace banyan::kernels::cpu
