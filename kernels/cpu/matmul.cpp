// Linear layers: out = x · W^T (+ bias).
//
// Two paths:
//  - few rows (decode): a streaming kernel that reads each weight row once and
//    multiplies it by up to kSmallM activation rows held in cache; memory-bound,
//    it reads bf16 weights directly (half the bytes of f32);
//  - many rows (prefill): OpenBLAS sgemm; bf16 weights are converted to f32 one
//    tile of output features at a time, so no f32 copy of the whole matrix exists.
#include <banyan/abi.h>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

namespace banyan::kernels::cpu {
namespace {

constexpr int64_t kSmallM = 8;   // rows up to which the streaming kernel wins
constexpr int kLanes = 16;       // one 512-bit (or two 256-bit) vector of f32

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

// out[m0..m0+MT, n] = x[m0..m0+MT, :] · w_row, for one weight row of length K.
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

template <class WT>
void small_m(const float* x, int64_t M, int64_t K, const WT* w, int64_t N, const float* bias,
             float* out, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const WT* w_row = w + n * K;
    float sums[4];
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const float* xm = x + m0 * K;
      switch (std::min<int64_t>(4, M - m0)) {
        case 4: dot_rows<4>(xm, K, w_row, sums); break;
        case 3: dot_rows<3>(xm, K, w_row, sums); break;
        case 2: dot_rows<2>(xm, K, w_row, sums); break;
        default: dot_rows<1>(xm, K, w_row, sums); break;
      }
      for (int64_t m = m0; m < std::min(M, m0 + 4); ++m) {
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

// Large M with bf16 weights: convert a tile of W to f32, multiply it with sgemm.
void large_m_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool transposed,
                  int64_t N, float* out, bool accumulate) {
  // Tiles of about 4 MiB of f32: big enough for sgemm, small enough to stay cached.
  const int64_t tile_elems = int64_t{1} << 20;
  if (!transposed) {
    int64_t rows = std::max<int64_t>(16, tile_elems / std::max<int64_t>(K, 1));
    std::vector<float> tile(static_cast<size_t>(std::min(rows, N) * K));
    for (int64_t n0 = 0; n0 < N; n0 += rows) {
      int64_t nb = std::min(rows, N - n0);
      convert(w + n0 * K, BANYAN_BF16, tile.data(), WeightType::f32, nb * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M),
                  static_cast<int>(nb), static_cast<int>(K), 1.0f, x, static_cast<int>(K),
                  tile.data(), static_cast<int>(K), accumulate ? 1.0f : 0.0f, out + n0,
                  static_cast<int>(N));
    }
  } else {
    int64_t rows = std::max<int64_t>(16, tile_elems / std::max<int64_t>(N, 1));
    std::vector<float> tile(static_cast<size_t>(std::min(rows, K) * N));
    for (int64_t k0 = 0; k0 < K; k0 += rows) {
      int64_t kb = std::min(rows, K - k0);
      convert(w + k0 * N, BANYAN_BF16, tile.data(), WeightType::f32, kb * N);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M),
                  static_cast<int>(N), static_cast<int>(kb), 1.0f, x + k0, static_cast<int>(K),
                  tile.data(), static_cast<int>(N), (accumulate || k0 > 0) ? 1.0f : 0.0f, out,
                  static_cast<int>(N));
    }
  }
}

}  // namespace

void matmul(const float* x, int64_t M, int64_t K, const void* w, WeightType wt, bool transposed,
            int64_t N, const float* bias, float* out, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (M <= kSmallM) {
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
  if (wt == WeightType::bf16) {
    large_m_bf16(x, M, K, static_cast<const uint16_t*>(w), transposed, N, out, accumulate);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasNoTrans : CblasTrans,
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, x,
                static_cast<int>(K), static_cast<const float*>(w),
                static_cast<int>(transposed ? N : K), accumulate ? 1.0f : 0.0f, out,
                static_cast<int>(N));
  }
  if (bias) add_bias(out, M, N, bias);
}

}  // namespace banyan::kernels::cpu
