// The "fp8" quantizer: e4m3fn weights with one float32 scale per tensor or per
// output channel, weight-only (activations stay in the backend's dtype).
//   s = max|w| / 448;  q = e4m3fn(w / s), round to nearest even (saturating at 448);
//   w' = float(q) * s. A tensor (row) of zeros gets s = 0 and q = 0.
// Reads FP8 checkpoints (quant_method "fp8"): weight F8_E4M3 [N, K] and weight_scale
// with 1 or N values; block-wise scales (weight_block_size) are refused.
#include <banyan/quantizer.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

using banyan::Code;
using banyan::DType;
using banyan::Error;
using banyan::Tensor;

/// float to e4m3fn, round to nearest even; |x| >= 464 saturates to 448; NaN stays NaN.
uint8_t to_e4m3fn(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (std::isnan(a)) return 0x7f;
  if (a >= 464.0f) return sign | 0x7e;
  if (a < 0.015625f) {  // subnormal: multiples of 2^-9 (8 of them reach 2^-6, the smallest normal)
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  int e;
  std::frexp(a, &e);                        // a = f * 2^e, f in [0.5, 1)
  float m = std::nearbyint(std::ldexp(a, 4 - e));  // in [8, 16]
  int exp = e - 1 + 7;
  if (m == 16.0f) {
    m = 8.0f;
    ++exp;
  }
  return sign | static_cast<uint8_t>((exp << 3) | (static_cast<int>(m) - 8));
}

class Fp8Quantizer {
 public:
  Fp8Quantizer(const BanyanHostV1*, const char* options) {
    auto o = nlohmann::json::parse(options);
    per_channel_ = o.value("per_channel", false);
    if (auto it = o.find("quantization_config"); it != o.end()) {
      const auto& c = *it;
      const std::string method = c.value("quant_method", std::string());
      if (method != "fp8")
        throw Error(Code::unsupported, "the fp8 plugin does not read quant_method \"" + method + "\"");
      if (c.contains("weight_block_size") && !c["weight_block_size"].is_null())
        throw Error(Code::unsupported, "block-wise FP8 checkpoints (weight_block_size " +
                                           c["weight_block_size"].dump() + ") are not read");
      const std::string fmt = c.value("fmt", std::string("e4m3"));
      if (fmt != "e4m3")
        throw Error(Code::unsupported, "FP8 checkpoint fmt \"" + fmt + "\" is not read (e4m3 is)");
      from_checkpoint_ = true;
    }
  }

  void plan(const std::string&, int64_t rows, int64_t cols, BanyanQuantizedWeight& out) {
    out.layout = BANYAN_QUANT_FP8;
    out.rows = rows;
    out.cols = cols;
    banyan::plan_tensor(out.qweight, DType::fp8_e4m3, {rows, cols});
    banyan::plan_tensor(out.scales, DType::f32, {per_channel_ ? rows : 1});
  }

  void quantize(const std::string&, const Tensor& w, BanyanQuantizedWeight& out) {
    banyan::require_float(w);
    const int64_t N = out.rows, K = out.cols;
    auto* q = static_cast<uint8_t*>(out.qweight.data);
    auto* s = static_cast<float*>(out.scales.data);
    // Runs of at most kRun elements within one scale's span, each converted once per
    // pass; the max is exact, so any thread count gives the same bits.
    constexpr int64_t kRun = 4096;
    const int64_t span = per_channel_ ? K : N * K;  // elements per scale
    if (span == 0) {
      std::fill(s, s + (per_channel_ ? N : 1), 0.0f);
      return;
    }
    const int64_t runs_per_span = banyan::ceil_div(span, kRun), spans = per_channel_ ? N : 1;
    std::vector<float> amax(static_cast<size_t>(spans * runs_per_span), 0.0f);
    auto each_run = [&](auto&& body) {
#pragma omp parallel
      {
        std::vector<float> v(static_cast<size_t>(kRun));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < spans * runs_per_span; ++r) {
          const int64_t sp = r / runs_per_span, i0 = sp * span + (r % runs_per_span) * kRun;
          const int64_t len = std::min(kRun, (sp + 1) * span - i0);
          banyan::float_elements(w, i0, len, v.data());
          body(r, sp, i0, len, v.data());
        }
      }
    };
    each_run([&](int64_t r, int64_t, int64_t, int64_t len, const float* v) {
      float m = 0.0f;
      for (int64_t i = 0; i < len; ++i) m = std::max(m, std::fabs(v[i]));
      amax[r] = m;
    });
    for (int64_t sp = 0; sp < spans; ++sp)
      s[sp] = *std::max_element(amax.begin() + sp * runs_per_span, amax.begin() + (sp + 1) * runs_per_span) /
              448.0f;
    each_run([&](int64_t, int64_t sp, int64_t i0, int64_t len, const float* v) {
      const float scale = s[sp];
      for (int64_t i = 0; i < len; ++i) q[i0 + i] = scale > 0.0f ? to_e4m3fn(v[i] / scale) : 0;
    });
  }

  void dequantize(const BanyanQuantizedWeight& w, Tensor& out) {
    if (w.layout != BANYAN_QUANT_FP8) throw Error("fp8: not an FP8 weight");
    const auto* q = static_cast<const uint8_t*>(w.qweight.data);
    const auto* s = static_cast<const float*>(w.scales.data);
    const bool per_row = Tensor(w.scales).numel() == w.rows && w.rows > 1;
    auto* o = out.as<float>();
    for (int64_t n = 0; n < w.rows; ++n)
      for (int64_t k = 0; k < w.cols; ++k)
        o[n * w.cols + k] = banyan::e4m3fn_bits_to_float(q[n * w.cols + k]) * s[per_row ? n : 0];
  }

  bool plan_checkpoint(const std::string& m, const banyan::TensorSource& src, BanyanQuantizedWeight& out) {
    if (!from_checkpoint_) throw Error(Code::internal, "fp8: no quantization_config was given");
    Tensor w;
    if (!src.find(m + ".weight", &w)) throw Error(Code::not_found, "checkpoint has no tensor " + m + ".weight");
    if (w.type() != DType::fp8_e4m3) return false;  // left in a float dtype
    if (w.ndim != 2) throw Error(m + ".weight is " + w.shape_string() + ", expected 2 dimensions");
    Tensor s;
    if (src.find(m + ".weight_scale_inv", nullptr))
      throw Error(Code::unsupported, m + ": block-wise FP8 (weight_scale_inv) is not read");
    if (!src.find(m + ".weight_scale", &s))
      throw Error(Code::not_found, m + ": FP8 weight without " + m + ".weight_scale");
    const int64_t N = w.shape[0], K = w.shape[1];
    if (s.numel() != 1 && s.numel() != N)
      throw Error(m + ".weight_scale has " + std::to_string(s.numel()) + " values, expected 1 or " +
                  std::to_string(N));
    out.layout = BANYAN_QUANT_FP8;
    out.rows = N;
    out.cols = K;
    banyan::plan_tensor(out.qweight, DType::fp8_e4m3, {N, K});
    banyan::plan_tensor(out.scales, DType::f32, {s.numel()});
    return true;
  }

  void convert_checkpoint(const std::string& m, const banyan::TensorSource& src, BanyanQuantizedWeight& out) {
    const Tensor w = src.get(m + ".weight"), s = src.get(m + ".weight_scale");
    std::memcpy(out.qweight.data, w.data, static_cast<size_t>(out.rows * out.cols));
    auto* dst = static_cast<float*>(out.scales.data);
    for (int64_t i = 0; i < s.numel(); ++i) dst[i] = banyan::float_element(s, i);
  }

 private:
  bool per_channel_ = false;
  bool from_checkpoint_ = false;
};

}  // namespace

BANYAN_QUANTIZER_PLUGIN(Fp8Quantizer, "fp8", "0.1.0")
