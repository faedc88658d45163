// CPU products of quantized weights. Both paths dequantize rows of W into f32 with
// dequantize_row_cpu() (the values the plugins' dequantize() defines, bit for bit)
// and never build a dense copy of the whole matrix:
//  - few rows of x (decode): each thread takes output features, unpacks one weight
//    row into a buffer in L1 and multiplies it by every row of x;
//  - many rows (prefill): tiles of about 1 MiB of unpacked rows, one sgemm per tile,
//    the tiles spread over the OpenMP threads.
// The file is compiled with -ffp-contract=off, so that unpacking rounds exactly as
// the plugins' dequantize() (a separate multiply and add); the dot products ask for
// fused multiply-adds explicitly.
#include "core/quant/quant_kernels.h"

#include "kernels/cpu/kernels.h"

#include <banyan/abi.h>
#include <banyan/quantizer.h>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace banyan::core {
namespace {

constexpr int kLanes = 16;

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> v{};
    for (int i = 0; i < 256; ++i) v[i] = e4m3fn_bits_to_float(static_cast<uint8_t>(i));
    return v;
  }();
  return t;
}

float lut4_absmax(const QuantView& w, int64_t b) {
  if (w.group_size2 > 0)
    return w.code2[static_cast<const uint8_t*>(w.scales)[b]] * w.scales2[b / w.group_size2] + w.offset;
  return static_cast<const float*>(w.scales)[b];
}

void lut4_row(const QuantView& w, int64_t n, float* dst) {
  const auto* q = static_cast<const uint8_t*>(w.qweight);
  const int64_t K = w.cols, B = w.group_size, i0 = n * K, i1 = i0 + K;
  for (int64_t b = i0 / B; b * B < i1; ++b) {
    const int64_t s = std::max(i0, b * B), e = std::min(i1, (b + 1) * B);
    const float amax = lut4_absmax(w, b);
    float t[16];
    for (int j = 0; j < 16; ++j) t[j] = w.code[j] * amax;
    int64_t i = s;
    if (i % 2 && i < e) {
      dst[i - i0] = t[q[i / 2] & 0xfu];
      ++i;
    }
    for (; i + 1 < e; i += 2) {
      const uint8_t byte = q[i / 2];
      dst[i - i0] = t[byte >> 4];
      dst[i + 1 - i0] = t[byte & 0xfu];
    }
    if (i < e) dst[i - i0] = t[q[i / 2] >> 4];
  }
}

void int4_row(const QuantView& w, int64_t n, float* dst) {
  const int64_t K = w.cols, G = w.group_size, ng = K / G;
  const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * (K / 2);
  const float* s = static_cast<const float*>(w.scales) + n * ng;
  const uint8_t* z = w.zeros + n * ng;
  for (int64_t g = 0; g < ng; ++g) {
    const float sc = s[g], zf = static_cast<float>(z[g]);
    for (int64_t k = g * G; k < (g + 1) * G; k += 2) {
      const uint8_t byte = q[k / 2];
      dst[k] = (static_cast<float>(byte & 0xfu) - zf) * sc;
      dst[k + 1] = (static_cast<float>(byte >> 4) - zf) * sc;
    }
  }
}

// sums[m] = x[m] · row for MT rows of x.
template <int MT>
inline void dot_rows(const float* x, int64_t K, const float* row, float* sums) {
  float acc[MT][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int m = 0; m < MT; ++m)
      for (int j = 0; j < kLanes; ++j) acc[m][j] = std::fma(row[k + j], x[m * K + k + j], acc[m][j]);
  for (int m = 0; m < MT; ++m) {
    float s = 0.0f;
    for (int j = 0; j < kLanes; ++j) s += acc[m][j];
    for (int64_t kk = k; kk < K; ++kk) s += row[kk] * x[m * K + kk];
    sums[m] = s;
  }
}

void small_m(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
             bool accumulate) {
  const int64_t N = w.rows, K = w.cols;
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      dequantize_row_cpu(w, n, row.data());
      float sums[4];
      for (int64_t m0 = 0; m0 < M; m0 += 4) {
        const float* xm = x + m0 * K;
        switch (std::min<int64_t>(4, M - m0)) {
          case 4: dot_rows<4>(xm, K, row.data(), sums); break;
          case 3: dot_rows<3>(xm, K, row.data(), sums); break;
          case 2: dot_rows<2>(xm, K, row.data(), sums); break;
          default: dot_rows<1>(xm, K, row.data(), sums); break;
        }
        for (int64_t m = m0; m < std::min(M, m0 + 4); ++m) {
          const float v = sums[m - m0] + (bias ? bias[n] : 0.0f);
          out[m * N + n] = accumulate ? out[m * N + n] + v : v;
        }
      }
    }
  }
}

void large_m(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
             bool accumulate) {
  const int64_t N = w.rows, K = w.cols;
  const int64_t tile = std::min(N, std::max<int64_t>(16, ((int64_t{1} << 18) / K) / 16 * 16));
  const int64_t tiles = (N + tile - 1) / tile;
#pragma omp parallel
  {
    std::vector<float> buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n0 = t * tile, nb = std::min(tile, N - n0);
      buf.resize(static_cast<size_t>(nb * K));
      for (int64_t j = 0; j < nb; ++j) dequantize_row_cpu(w, n0 + j, buf.data() + j * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(nb),
                  static_cast<int>(K), 1.0f, x, static_cast<int>(K), buf.data(), static_cast<int>(K),
                  accumulate ? 1.0f : 0.0f, out + n0, static_cast<int>(N));
    }
  }
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) out[m * N + n] += bias[n];
  }
}

}  // namespace

void dequantize_row_cpu(const QuantView& w, int64_t n, float* dst) {
  const int64_t K = w.cols;
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW: {
      const int8_t* q = static_cast<const int8_t*>(w.qweight) + n * K;
      const float s = static_cast<const float*>(w.scales)[n];
      for (int64_t k = 0; k < K; ++k) dst[k] = static_cast<float>(q[k]) * s;
      break;
    }
    case BANYAN_QUANT_INT4_GROUP: int4_row(w, n, dst); break;
    case BANYAN_QUANT_LUT4_BLOCK: lut4_row(w, n, dst); break;
    case BANYAN_QUANT_FP8: {
      const uint8_t* q = static_cast<const uint8_t*>(w.qweight) + n * K;
      const float s = static_cast<const float*>(w.scales)[w.per_row_scale ? n : 0];
      const auto& t = e4m3_table();
      for (int64_t k = 0; k < K; ++k) dst[k] = t[q[k]] * s;
      break;
    }
    default: break;
  }
}

void quant_matmul_cpu(const QuantView& w, const float* x, int64_t M, const float* bias, float* out,
                      bool accumulate) {
  if (M <= 0 || w.rows <= 0) return;
  if (M <= kernels::cpu::small_m_threshold()) {
    if (!quant_decode_cpu(w, x, M, bias, out, accumulate)) small_m(w, x, M, bias, out, accumulate);
  } else {
    large_m(w, x, M, bias, out, accumulate);
  }
}

}  // namespace banyan::core
