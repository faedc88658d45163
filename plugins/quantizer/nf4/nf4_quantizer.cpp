// The "nf4" quantizer: bitsandbytes' NF4 over the flattened row-major weight.
//   block b = elements [b*B, (b+1)*B); absmax[b] = max |w| over the block;
//   q[i] = the index of the NF4 code value nearest to w[i] / absmax[b] (the lower
//   index on a tie; 0.0's index when absmax is 0); w'[i] = code[q[i]] * absmax[b].
// With double_quant, as bitsandbytes' compress_statistics: offset = mean(absmax);
// (absmax - offset) is quantized in blocks of 256 with the signed 8-bit dynamic code
// (nearest value of (absmax - offset) / max|absmax - offset| over the block).
// Everything is float32 except the mean, summed in double.
#include "nf4_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace {

using banyan::DType;
using banyan::Error;
using banyan::Tensor;
using namespace banyan::nf4;

/// The index of the value of the sorted `code` nearest to x (the lower one on a tie).
uint32_t nearest(const float* code, int n, float x) {
  // std::upper_bound's answer (the values not above x): counted without branches over
  // the 16 NF4 codes (per weight: 3x faster at load), a binary search over the 256 of
  // the nested code.
  int hi = 0;
  if (n <= 16)
    for (int k = 0; k < n; ++k) hi += !(x < code[k]);
  else
    hi = static_cast<int>(std::upper_bound(code, code + n, x) - code);
  if (hi == 0) return 0;
  if (hi == n) return static_cast<uint32_t>(n - 1);
  const int lo = hi - 1;
  return std::fabs(x - code[lo]) <= std::fabs(x - code[hi]) ? static_cast<uint32_t>(lo)
                                                             : static_cast<uint32_t>(hi);
}

/// torch.linspace(start, end, steps) in float32, as its CPU kernel computes it.
std::vector<float> linspace(float start, float end, int steps) {
  std::vector<float> v(static_cast<size_t>(steps));
  const float step = (end - start) / static_cast<float>(steps - 1);
  for (int i = 0; i < steps; ++i)
    v[i] = i < steps / 2 ? start + step * static_cast<float>(i)
                         : end - step * static_cast<float>(steps - i - 1);
  return v;
}

/// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8).
std::vector<float> dynamic_code() {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const auto b = linspace(0.1f, 1.0f, (1 << i) + 1);
    const float p = static_cast<float>(std::pow(10.0, -6 + i));
    for (size_t j = 0; j + 1 < b.size(); ++j) data.push_back(p * ((b[j] + b[j + 1]) / 2.0f));
    for (size_t j = 0; j + 1 < b.size(); ++j) data.push_back(-p * ((b[j] + b[j + 1]) / 2.0f));
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return data;
}

class Nf4Quantizer {
 public:
  Nf4Quantizer(const BanyanHostV1*, const char* options) {
    auto o = nlohmann::json::parse(options);
    block_ = o.value("block_size", int64_t{64});
    nested_ = o.value("double_quant", false);
    if (block_ <= 0) throw Error("nf4: block_size must be positive");
    if (auto it = o.find("quantization_config"); it != o.end()) reader_.emplace(it->dump());
  }

  void plan(const std::string&, int64_t rows, int64_t cols, BanyanQuantizedWeight& out) {
    plan_lut4(rows, cols, block_, nested_, out);
  }

  void quantize(const std::string&, const Tensor& w, BanyanQuantizedWeight& out) {
    banyan::require_float(w);
    const int64_t n = out.rows * out.cols, B = out.group_size, nblocks = banyan::ceil_div(n, B);
    auto* q = static_cast<uint8_t*>(out.qweight.data);
    std::copy(kNf4Code, kNf4Code + 16, static_cast<float*>(out.code.data));
    std::vector<float> absmax(static_cast<size_t>(nblocks));
    if (n % 2) q[n / 2] = 0;
    // Blocks in pairs: a pair starts at an even element, so no two threads write
    // the same byte of q whatever the block size; blocks are independent: any
    // thread count gives the same bits.
    const int64_t pairs = banyan::ceil_div(nblocks, int64_t{2});
#pragma omp parallel
    {
      std::vector<float> v(static_cast<size_t>(B));
#pragma omp for schedule(static)
      for (int64_t p = 0; p < pairs; ++p)
        for (int64_t b = 2 * p; b < std::min(nblocks, 2 * p + 2); ++b) {
          const int64_t i0 = b * B, len = std::min(n, i0 + B) - i0;
          banyan::float_elements(w, i0, len, v.data());
          float amax = 0.0f;
          for (int64_t i = 0; i < len; ++i) amax = std::max(amax, std::fabs(v[i]));
          absmax[b] = amax;
          for (int64_t i = 0; i < len; ++i)
            put_index(q, i0 + i, nearest(kNf4Code, 16, amax > 0.0f ? v[i] / amax : 0.0f));
        }
    }
    if (!nested_) {
      std::copy(absmax.begin(), absmax.end(), static_cast<float*>(out.scales.data));
      return;
    }
    double sum = 0.0;
    for (float a : absmax) sum += a;
    const float offset = static_cast<float>(sum / static_cast<double>(nblocks));
    const auto code2 = dynamic_code();
    std::copy(code2.begin(), code2.end(), static_cast<float*>(out.code2.data));
    out.offset = offset;
    auto* qa = static_cast<uint8_t*>(out.scales.data);
    auto* s2 = static_cast<float*>(out.scales2.data);
    for (int64_t b2 = 0; b2 * kNestedBlock < nblocks; ++b2) {
      const int64_t j0 = b2 * kNestedBlock, j1 = std::min(nblocks, j0 + kNestedBlock);
      float m = 0.0f;
      for (int64_t j = j0; j < j1; ++j) m = std::max(m, std::fabs(absmax[j] - offset));
      s2[b2] = m;
      for (int64_t j = j0; j < j1; ++j)
        qa[j] = static_cast<uint8_t>(nearest(code2.data(), 256, m > 0.0f ? (absmax[j] - offset) / m : 0.0f));
    }
  }

  void dequantize(const BanyanQuantizedWeight& w, Tensor& out) {
    if (w.layout != BANYAN_QUANT_LUT4_BLOCK) throw Error("nf4: not a LUT4_BLOCK weight");
    const int64_t n = w.rows * w.cols, B = w.group_size;
    const auto* q = static_cast<const uint8_t*>(w.qweight.data);
    const auto* code = static_cast<const float*>(w.code.data);
    auto* o = out.as<float>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = i / B;
      float amax;
      if (w.group_size2 > 0)
        amax = static_cast<const float*>(w.code2.data)[static_cast<const uint8_t*>(w.scales.data)[b]] *
                   static_cast<const float*>(w.scales2.data)[b / w.group_size2] +
               w.offset;
      else
        amax = static_cast<const float*>(w.scales.data)[b];
      o[i] = code[get_index(q, i)] * amax;
    }
  }

  bool plan_checkpoint(const std::string& module, const banyan::TensorSource& src,
                       BanyanQuantizedWeight& out) {
    if (!reader_) throw Error(banyan::Code::internal, "nf4: no quantization_config was given");
    return reader_->plan(module, src, out);
  }
  void convert_checkpoint(const std::string& module, const banyan::TensorSource& src,
                          BanyanQuantizedWeight& out) {
    if (!reader_) throw Error(banyan::Code::internal, "nf4: no quantization_config was given");
    reader_->convert(module, src, out);
  }

 private:
  int64_t block_ = 64;
  bool nested_ = false;
  std::optional<BnbReader> reader_;
};

}  // namespace

BANYAN_QUANTIZER_PLUGIN(Nf4Quantizer, "nf4", "0.1.0")
