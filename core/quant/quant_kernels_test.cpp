// The host's CPU kernels against the plugins' dequantize(): every row the kernels
// unpack equals the plugin's dequantized row bit for bit, and the products (decode
// and prefill paths, bias, accumulate, odd shapes) equal x · W'^T computed in double.
#include "core/quant/quant_kernels.h"
#include "core/quant/quant_test_util.h"
#include "core/quant/quantizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace banyan::core {
namespace {

struct Case {
  std::string name, method, options;
  int64_t rows, cols;
};

std::vector<Case> cases() {
  return {{"int8", "int8", "{}", 70, 96},
          {"int8_rows", "int8", "{}", 33, 128},  // the fused kernels take K % 64 == 0
          {"fp8_rows", "fp8", "{}", 20, 192},
          {"int4_g32", "int4", "{\"group_size\": 32}", 70, 96},
          {"int4_g128", "int4", "{\"group_size\": 128}", 33, 256},
          {"nf4", "nf4", "{}", 70, 96},
          {"nf4_odd", "nf4", "{}", 33, 71},  // rows start inside a byte, blocks cross rows
          {"nf4_double", "nf4", "{\"double_quant\": true}", 300, 100},
          {"nf4_rows", "nf4", "{}", 40, 128},  // blocks inside rows: the fused kernel
          {"nf4_double_rows", "nf4", "{\"double_quant\": true}", 300, 192},
          {"fp8_channel_rows", "fp8", "{\"per_channel\": true}", 33, 64},
          {"fp8", "fp8", "{}", 70, 96},
          {"fp8_channel", "fp8", "{\"per_channel\": true}", 33, 71}};
}

QuantView view_of(const QuantizedMatrix& m) {
  const BanyanQuantizedWeight& w = m.get();
  QuantView v;
  v.layout = w.layout;
  v.rows = w.rows;
  v.cols = w.cols;
  v.group_size = w.group_size;
  v.group_size2 = w.group_size2;
  v.offset = w.offset;
  v.per_row_scale = Tensor(w.scales).numel() == w.rows && w.rows > 1;
  v.qweight = w.qweight.data;
  v.scales = w.scales.data;
  v.zeros = static_cast<const uint8_t*>(w.zeros.data);
  v.code = static_cast<const float*>(w.code.data);
  v.scales2 = static_cast<const float*>(w.scales2.data);
  v.code2 = static_cast<const float*>(w.code2.data);
  return v;
}

class QuantKernels : public ::testing::TestWithParam<Case> {};

TEST_P(QuantKernels, RowsAndProductsMatchTheDequantizedWeight) {
  const Case& c = GetParam();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(c.rows * c.cols));
  for (auto& x : w) x = nd(rng);
  Quantizer q(test::plugins(), c.method, c.options);
  QuantizedMatrix m = q.quantize("model.layers.0.mlp.gate_proj", Tensor(w.data(), DType::f32, {c.rows, c.cols}));
  const auto deq = q.dequantize(m);
  const QuantView v = view_of(m);

  std::vector<float> row(static_cast<size_t>(c.cols));
  for (int64_t n = 0; n < c.rows; ++n) {
    dequantize_row_cpu(v, n, row.data());
    for (int64_t k = 0; k < c.cols; ++k)
      ASSERT_EQ(row[k], deq[n * c.cols + k]) << "row " << n << ", column " << k;
  }

  std::vector<float> bias(static_cast<size_t>(c.rows));
  for (auto& b : bias) b = nd(rng);
  for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 40}) {
    for (bool with_bias : {false, true})
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE("M " + std::to_string(M) + (with_bias ? " bias" : "") + (accumulate ? " accumulate" : ""));
        std::vector<float> x(static_cast<size_t>(M * c.cols)), out(static_cast<size_t>(M * c.rows));
        for (auto& e : x) e = nd(rng) * 20.0f;
        for (auto& e : out) e = nd(rng);
        const std::vector<float> before = out;
        quant_matmul_cpu(v, x.data(), M, with_bias ? bias.data() : nullptr, out.data(), accumulate);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t n = 0; n < c.rows; ++n) {
            double ref = with_bias ? bias[n] : 0.0, mag = std::fabs(ref);
            for (int64_t k = 0; k < c.cols; ++k) {
              ref += double(x[i * c.cols + k]) * deq[n * c.cols + k];
              mag += std::fabs(double(x[i * c.cols + k]) * deq[n * c.cols + k]);
            }
            if (accumulate) ref += before[i * c.rows + n];
            ASSERT_NEAR(out[i * c.rows + n], ref, 1e-5 * (mag + 1.0)) << "row " << i << ", feature " << n;
          }
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, QuantKernels, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace banyan::core
