// The "int4" quantizer: weight-only 4-bit, groups of `group_size` input features,
// asymmetric round-to-nearest as AutoAWQ computes it (all in float32):
//   s = max(max - min, 1e-5) / 15;  z = clamp(-round(min / s), 0, 15)
//   q = clamp(round(w / s) + z, 0, 15);  w' = (q - z) * s
// round() is round-half-even (torch.round). Also reads GPTQ / AWQ checkpoints.
#include "int4_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

namespace {

using banyan::DType;
using banyan::Error;
using banyan::Tensor;
using banyan::int4::get_nibble;
using banyan::int4::put_nibble;

class Int4Quantizer {
 public:
  Int4Quantizer(const BanyanHostV1*, const char* options) {
    auto o = nlohmann::json::parse(options);
    group_ = o.value("group_size", int64_t{128});
    if (auto it = o.find("quantization_config"); it != o.end())
      reader_.emplace(it->dump());
  }

  void plan(const std::string& module, int64_t rows, int64_t cols, BanyanQuantizedWeight& out) {
    banyan::int4::plan_int4(module, rows, cols, group_, out);
  }

  void quantize(const std::string&, const Tensor& w, BanyanQuantizedWeight& out) {
    banyan::require_float(w);
    const int64_t N = out.rows, K = out.cols, G = out.group_size, ng = K / G;
    auto* q = static_cast<uint8_t*>(out.qweight.data);
    auto* s = static_cast<float*>(out.scales.data);
    auto* z = static_cast<uint8_t*>(out.zeros.data);
#pragma omp parallel
    {
      std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n) {  // rows are independent: any thread count, same bits
        banyan::float_elements(w, n * K, K, row.data());
        uint8_t* qrow = q + n * (K / 2);
        for (int64_t g = 0; g < ng; ++g) {
          const float* v = row.data() + g * G;
          float mx = -INFINITY, mn = INFINITY;
          for (int64_t j = 0; j < G; ++j) {
            mx = std::max(mx, v[j]);
            mn = std::min(mn, v[j]);
          }
          const float scale = std::max(mx - mn, 1e-5f) / 15.0f;
          const float zero = std::clamp(-std::nearbyint(mn / scale), 0.0f, 15.0f);
          s[n * ng + g] = scale;
          z[n * ng + g] = static_cast<uint8_t>(zero);
          for (int64_t j = 0; j < G; ++j) {
            float qv = std::clamp(std::nearbyint(v[j] / scale) + zero, 0.0f, 15.0f);
            put_nibble(qrow, g * G + j, static_cast<uint32_t>(qv));
          }
        }
      }
    }
  }

  void dequantize(const BanyanQuantizedWeight& w, Tensor& out) {
    if (w.layout != BANYAN_QUANT_INT4_GROUP) throw Error("int4: not an INT4_GROUP weight");
    const int64_t K = w.cols, G = w.group_size, ng = K / G;
    const auto* q = static_cast<const uint8_t*>(w.qweight.data);
    const auto* s = static_cast<const float*>(w.scales.data);
    const auto* z = static_cast<const uint8_t*>(w.zeros.data);
    auto* o = out.as<float>();
    for (int64_t n = 0; n < w.rows; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = n * ng + k / G;
        o[n * K + k] = (static_cast<float>(get_nibble(q + n * (K / 2), k)) - z[g]) * s[g];
      }
  }

  bool plan_checkpoint(const std::string& module, const banyan::TensorSource& src,
                       BanyanQuantizedWeight& out) {
    if (!reader_) throw Error(banyan::Code::internal, "int4: no quantization_config was given");
    return reader_->plan(module, src, out);
  }
  void convert_checkpoint(const std::string& module, const banyan::TensorSource& src,
                          BanyanQuantizedWeight& out) {
    if (!reader_) throw Error(banyan::Code::internal, "int4: no quantization_config was given");
    reader_->convert(module, src, out);
  }

 private:
  int64_t group_ = 128;
  std::optional<banyan::int4::CheckpointReader> reader_;
};

}  // namespace

BANYAN_QUANTIZER_PLUGIN(Int4Quantizer, "int4", "0.1.0")
