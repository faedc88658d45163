// The "int8" quantizer: weight-only, per output row, symmetric.
//   s[n] = max_k |w[n,k]| / 127;  q[n,k] = round_half_even(w[n,k] / s[n]) in [-127, 127]
// A row of zeros gets s = 0 and q = 0.
#include <banyan/quantizer.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using banyan::DType;
using banyan::Error;
using banyan::Tensor;

class Int8Quantizer {
 public:
  Int8Quantizer(const BanyanHostV1*, const char* options) {
    auto o = nlohmann::json::parse(options);
    if (o.contains("quantization_config"))
      throw Error(banyan::Code::unsupported, "int8 reads no pre-quantized checkpoints");
  }

  void plan(const std::string&, int64_t rows, int64_t cols, BanyanQuantizedWeight& out) {
    out.layout = BANYAN_QUANT_INT8_ROW;
    out.rows = rows;
    out.cols = cols;
    banyan::plan_tensor(out.qweight, DType::i8, {rows, cols});
    banyan::plan_tensor(out.scales, DType::f32, {rows});
  }

  void quantize(const std::string&, const Tensor& w, BanyanQuantizedWeight& out) {
    banyan::require_float(w);
    const int64_t N = out.rows, K = out.cols;
    auto* q = static_cast<int8_t*>(out.qweight.data);
    auto* s = static_cast<float*>(out.scales.data);
#pragma omp parallel
    {
      std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n) {  // rows are independent: any thread count, same bits
        banyan::float_elements(w, n * K, K, row.data());
        float amax = 0.0f;
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
        const float scale = amax / 127.0f;
        s[n] = scale;
        for (int64_t k = 0; k < K; ++k) {
          float v = scale > 0.0f ? std::nearbyint(row[k] / scale) : 0.0f;
          q[n * K + k] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
        }
      }
    }
  }

  void dequantize(const BanyanQuantizedWeight& w, Tensor& out) {
    if (w.layout != BANYAN_QUANT_INT8_ROW) throw Error("int8: not an INT8_ROW weight");
    const auto* q = static_cast<const int8_t*>(w.qweight.data);
    const auto* s = static_cast<const float*>(w.scales.data);
    auto* o = out.as<float>();
    for (int64_t n = 0; n < w.rows; ++n)
      for (int64_t k = 0; k < w.cols; ++k) o[n * w.cols + k] = q[n * w.cols + k] * s[n];
  }
};

}  // namespace

BANYAN_QUANTIZER_PLUGIN(Int8Quantizer, "int8", "0.1.0")
