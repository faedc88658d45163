// Each quantizer plugin's dequantized weights equal the formulas of issue 5,
// computed here independently from the bf16 input (the plugin's code is not called
// for the reference): int8 per row, int4 AutoAWQ groups, NF4 blocks (with and
// without double quantization), FP8 e4m3fn per tensor and per row. Also: the packed
// codes are within their ranges, and option errors name the module.
#include "core/quant/quant_test_util.h"
#include "core/quant/quantizer.h"

#include "kernels/cpu/convert.h"

#include <banyan/error.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <cstring>

namespace banyan::core {
namespace {

/// A bf16 weight [rows, cols] with varied row scales, a row of zeros, a row of
/// negatives only and a few outliers, as uint16 bits plus its float values.
struct Weight {
  int64_t rows, cols;
  std::vector<uint16_t> bits;
  std::vector<float> f;
  Tensor tensor() { return Tensor(bits.data(), DType::bf16, {rows, cols}); }
};

Weight make_weight(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weight w{rows, cols, {}, {}};
  w.bits.resize(static_cast<size_t>(rows * cols));
  w.f.resize(w.bits.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::ldexp(1.0f, static_cast<int>(r % 9) - 8);  // 2^-8 .. 1
    for (int64_t c = 0; c < cols; ++c) {
      float v = nd(rng) * scale;
      if (r == 1) v = 0.0f;                      // a zero row
      if (r == 2) v = -std::fabs(v) - scale;     // all negative
      if ((r * cols + c) % 97 == 5) v *= 12.0f;  // outliers
      const size_t i = static_cast<size_t>(r * cols + c);
      w.bits[i] = kernels::cpu::f32_to_bf16(v);
      w.f[i] = kernels::cpu::bf16_to_f32(w.bits[i]);
    }
  }
  return w;
}

// ------------------------------------------------------------------ references --
std::vector<float> ref_int8(const Weight& w) {
  std::vector<float> out(w.f.size());
  for (int64_t r = 0; r < w.rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < w.cols; ++c) amax = std::max(amax, std::fabs(w.f[r * w.cols + c]));
    const float s = amax / 127.0f;
    for (int64_t c = 0; c < w.cols; ++c) {
      const float x = w.f[r * w.cols + c];
      float q = s > 0 ? std::rint(x / s) : 0.0f;  // FE_TONEAREST: half to even
      q = std::min(127.0f, std::max(-127.0f, q));
      out[r * w.cols + c] = q * s;
    }
  }
  return out;
}

std::vector<float> ref_int4(const Weight& w, int64_t g) {
  std::vector<float> out(w.f.size());
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c0 = 0; c0 < w.cols; c0 += g) {
      const float* x = &w.f[r * w.cols + c0];
      const float mx = *std::max_element(x, x + g), mn = *std::min_element(x, x + g);
      const float s = std::max(mx - mn, 1e-5f) / 15.0f;
      const float z = std::min(15.0f, std::max(0.0f, -std::rint(mn / s)));
      for (int64_t j = 0; j < g; ++j) {
        const float q = std::min(15.0f, std::max(0.0f, std::rint(x[j] / s) + z));
        out[r * w.cols + c0 + j] = (q - z) * s;
      }
    }
  return out;
}

// bitsandbytes' NF4 values (bitsandbytes/functional.py, get_4bit_type("nf4")).
const float kNf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                        0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                        0.7229568362236023f, 1.0f};

/// argmin_j |x - code[j]|, the first j on a tie (torch.argmin).
int argmin_code(const float* code, int n, float x) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (std::fabs(x - code[j]) < std::fabs(x - code[best])) best = j;
  return best;
}

std::vector<float> block_absmax(const std::vector<float>& f, int64_t block) {
  std::vector<float> a;
  for (size_t i = 0; i < f.size(); i += static_cast<size_t>(block)) {
    float m = 0;
    for (size_t j = i; j < std::min(f.size(), i + static_cast<size_t>(block)); ++j) m = std::max(m, std::fabs(f[j]));
    a.push_back(m);
  }
  return a;
}

/// bitsandbytes create_dynamic_map(signed=True): for i in 0..6, the midpoints of
/// linspace(0.1, 1, 2^i + 1) times ±10^(i-6), plus 0 and 1 (here in double, rounded).
std::vector<float> dynamic_map() {
  std::vector<float> v;
  for (int i = 0; i < 7; ++i) {
    const int n = (1 << i) + 1;
    for (int j = 0; j + 1 < n; ++j) {
      const double a = 0.1 + 0.9 * j / (n - 1), b = 0.1 + 0.9 * (j + 1) / (n - 1);
      const double m = std::pow(10.0, i - 6) * (a + b) / 2;
      v.push_back(static_cast<float>(m));
      v.push_back(static_cast<float>(-m));
    }
  }
  v.push_back(0.0f);
  v.push_back(1.0f);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<float> ref_nf4(const Weight& w, int64_t block, bool dq) {
  std::vector<float> absmax = block_absmax(w.f, block), out(w.f.size());
  std::vector<int> idx(w.f.size());
  for (size_t i = 0; i < w.f.size(); ++i) {
    const float a = absmax[i / static_cast<size_t>(block)];
    idx[i] = argmin_code(kNf4, 16, a > 0 ? w.f[i] / a : 0.0f);
  }
  if (dq) {
    const auto code2 = dynamic_map();
    double sum = 0;
    for (float a : absmax) sum += a;
    const float offset = static_cast<float>(sum / static_cast<double>(absmax.size()));
    std::vector<float> centered(absmax.size());
    for (size_t b = 0; b < absmax.size(); ++b) centered[b] = absmax[b] - offset;
    const auto m2 = block_absmax(centered, 256);
    for (size_t b = 0; b < absmax.size(); ++b) {
      const float m = m2[b / 256];
      const int q = argmin_code(code2.data(), 256, m > 0 ? centered[b] / m : 0.0f);
      absmax[b] = code2[q] * m + offset;
    }
  }
  for (size_t i = 0; i < w.f.size(); ++i) out[i] = kNf4[idx[i]] * absmax[i / static_cast<size_t>(block)];
  return out;
}

/// Every finite e4m3fn value with its code, by definition: bias 7, 3 mantissa bits,
/// subnormals at exponent 0, S.1111.111 is NaN (so 448 is the largest).
std::vector<std::pair<float, int>> e4m3fn_values() {
  std::vector<std::pair<float, int>> v;
  for (int code = 0; code < 0x7f; ++code) {
    const int e = code >> 3, m = code & 7;
    const double value = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
    v.emplace_back(static_cast<float>(value), code);
  }
  return v;
}

/// Round to the nearest e4m3fn value; on a tie the one with the even code.
float round_e4m3fn(float x) {
  static const auto values = e4m3fn_values();
  const float a = std::fabs(x);
  float best = 0;
  int best_code = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (const auto& [v, code] : values) {
    const double d = std::fabs(static_cast<double>(a) - v);
    if (d < best_d || (d == best_d && code % 2 == 0)) {
      best = v;
      best_code = code;
      best_d = d;
    }
  }
  (void)best_code;
  return x < 0 ? -best : best;
}

std::vector<float> ref_fp8(const Weight& w, bool per_row) {
  std::vector<float> out(w.f.size());
  const int64_t span = per_row ? w.cols : w.rows * w.cols;
  for (int64_t s0 = 0; s0 < w.rows * w.cols; s0 += span) {
    float amax = 0;
    for (int64_t i = s0; i < s0 + span; ++i) amax = std::max(amax, std::fabs(w.f[i]));
    const float s = amax / 448.0f;
    for (int64_t i = s0; i < s0 + span; ++i) out[i] = s > 0 ? round_e4m3fn(w.f[i] / s) * s : 0.0f;
  }
  return out;
}

// ------------------------------------------------------------------ checks -----
void expect_equal(const std::vector<float>& got, const std::vector<float>& want, double rel = 0) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const bool ok = rel == 0 ? got[i] == want[i]
                             : std::fabs(got[i] - want[i]) <= rel * std::max(1e-30, std::fabs(double(want[i])));
    if (!ok) {
      ++bad;
      ADD_FAILURE() << "element " << i << ": plugin " << got[i] << ", formula " << want[i];
    }
  }
}

std::vector<float> roundtrip(const std::string& method, const std::string& options, Weight& w,
                             BanyanQuantizedWeight* packed = nullptr) {
  Quantizer q(test::plugins(), method, options);
  QuantizedMatrix m = q.quantize("model.layers.0.mlp.down_proj", w.tensor());
  if (packed) *packed = m.get();
  return q.dequantize(m);
}

TEST(QuantizerFormula, Int8PerRowSymmetricRoundHalfEven) {
  Weight w = make_weight(37, 96, 1);
  expect_equal(roundtrip("int8", "{}", w), ref_int8(w));
}

TEST(QuantizerFormula, Int4GroupsAsAutoAwq) {
  for (int64_t g : {32, 64, 128}) {
    SCOPED_TRACE("group " + std::to_string(g));
    Weight w = make_weight(24, 256, 2);
    expect_equal(roundtrip("int4", "{\"group_size\": " + std::to_string(g) + "}", w), ref_int4(w, g));
  }
}

TEST(QuantizerFormula, Int4RefusesAGroupThatDoesNotDivideTheInput) {
  Weight w = make_weight(8, 352, 3);
  try {
    roundtrip("int4", "{\"group_size\": 128}", w);
    FAIL() << "group 128 over 352 inputs was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.0.mlp.down_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("does not divide"), std::string::npos) << msg;
    EXPECT_NE(msg.find("352"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--quantization-group-size 32"), std::string::npos) << msg;
  }
}

TEST(QuantizerFormula, Nf4BlocksOfSixtyFourOverTheFlatWeight) {
  Weight w = make_weight(33, 71, 4);  // 2343 values: blocks cross rows, the last byte is half used
  BanyanQuantizedWeight p{};
  expect_equal(roundtrip("nf4", "{}", w, &p), ref_nf4(w, 64, false));
  EXPECT_EQ(p.group_size, 64);
  EXPECT_EQ(Tensor(p.qweight).numel(), (33 * 71 + 1) / 2);
}

TEST(QuantizerFormula, Nf4DoubleQuantizationAsBitsandbytes) {
  Weight w = make_weight(64, 600, 5);  // 600 blocks: three nested blocks of 256
  Quantizer q(test::plugins(), "nf4", "{\"double_quant\": true}");
  QuantizedMatrix m = q.quantize("model.layers.0.mlp.down_proj", w.tensor());
  const BanyanQuantizedWeight& p = m.get();
  ASSERT_EQ(p.group_size, 64);
  ASSERT_EQ(p.group_size2, 256);
  ASSERT_EQ(Tensor(p.scales).type(), DType::u8);
  const auto absmax = block_absmax(w.f, 64);
  const auto* qw = static_cast<const uint8_t*>(p.qweight.data);
  // The 4-bit indices come from the exact absmax, as without double quantization.
  for (size_t i = 0; i < w.f.size(); ++i) {
    const float a = absmax[i / 64];
    const int want = argmin_code(kNf4, 16, a > 0 ? w.f[i] / a : 0.0f);
    const int got = (i % 2 == 0) ? qw[i / 2] >> 4 : qw[i / 2] & 0xf;
    ASSERT_EQ(got, want) << "element " << i;
  }
  // The second code is bitsandbytes' dynamic map (built in float32 there, so the
  // last bit may differ from this double-precision construction).
  const auto* code2 = static_cast<const float*>(p.code2.data);
  const auto want2 = dynamic_map();
  for (int j = 0; j < 256; ++j) EXPECT_NEAR(code2[j], want2[j], 2e-7 * std::fabs(want2[j])) << j;
  // offset = mean(absmax); scales2 = max |absmax - offset| per 256; each 8-bit index
  // the nearest value of the plugin's code.
  double sum = 0;
  for (float a : absmax) sum += a;
  const float offset = static_cast<float>(sum / static_cast<double>(absmax.size()));
  EXPECT_EQ(p.offset, offset);
  std::vector<float> centered(absmax.size());
  for (size_t b = 0; b < absmax.size(); ++b) centered[b] = absmax[b] - offset;
  const auto m2 = block_absmax(centered, 256);
  const auto* s2 = static_cast<const float*>(p.scales2.data);
  const auto* qa = static_cast<const uint8_t*>(p.scales.data);
  std::vector<float> approx(absmax.size());
  for (size_t b = 0; b < absmax.size(); ++b) {
    ASSERT_EQ(s2[b / 256], m2[b / 256]);
    const float mb = m2[b / 256];
    ASSERT_EQ(qa[b], argmin_code(code2, 256, mb > 0 ? centered[b] / mb : 0.0f)) << "block " << b;
    approx[b] = code2[qa[b]] * mb + offset;
  }
  // And the dequantized weight is code[q] times the reconstructed absmax.
  std::vector<float> want(w.f.size());
  for (size_t i = 0; i < w.f.size(); ++i)
    want[i] = kNf4[(i % 2 == 0) ? qw[i / 2] >> 4 : qw[i / 2] & 0xf] * approx[i / 64];
  expect_equal(q.dequantize(m), want);
}

TEST(QuantizerFormula, Fp8PerTensorAndPerRow) {
  Weight w = make_weight(20, 64, 6);  // row scales 2^-8..1: per tensor, small rows are subnormal
  expect_equal(roundtrip("fp8", "{}", w), ref_fp8(w, false));
  expect_equal(roundtrip("fp8", "{\"per_channel\": true}", w), ref_fp8(w, true));
}

TEST(QuantizerFormula, Fp8TiesRoundToEven) {
  // 448 sets s = 1; then every midpoint between neighbouring e4m3fn values, both signs.
  auto values = e4m3fn_values();
  std::vector<float> f = {448.0f};
  for (size_t i = 0; i + 1 < values.size(); ++i) {
    const float mid = (values[i].first + values[i + 1].first) / 2;  // exact in float
    f.push_back(mid);
    f.push_back(-mid);
  }
  Quantizer q(test::plugins(), "fp8", "{}");
  Tensor t(f.data(), DType::f32, {1, static_cast<int64_t>(f.size())});
  const auto got = q.dequantize(q.quantize("model.layers.0.mlp.up_proj", t));
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(got[i], round_e4m3fn(f[i])) << f[i];
}

TEST(QuantizerFormula, OptionsAreCheckedAgainstTheManifest) {
  EXPECT_THROW(Quantizer(test::plugins(), "int4", "{\"group_size\": 0}"), Error);
  EXPECT_THROW(Quantizer(test::plugins(), "nf4", "{\"double_quant\": 3}"), Error);
  EXPECT_THROW(Quantizer(test::plugins(), "fp8", "{\"per_chanel\": true}"), Error);
  EXPECT_THROW(Quantizer(test::plugins(), "int3", "{}"), Error);
}

// The quantizers split rows or blocks over OpenMP threads at load: every tensor of the
// packed weight is the same bytes with one thread and with several (odd shapes: NF4
// blocks across rows, a half-used last byte, runs of FP8 across a row's end).
TEST(QuantizerFormula, PackedBitsDoNotDependOnTheThreadCount) {
  const int saved = omp_get_max_threads();
  const std::pair<const char*, const char*> cases[] = {
      {"int8", "{}"},
      {"int4", R"({"group_size": 32})"},
      {"nf4", "{}"},
      {"nf4", R"({"block_size": 75, "double_quant": true})"},
      {"fp8", "{}"},
      {"fp8", R"({"per_channel": true})"},
  };
  for (const auto& [method, options] : cases) {
    SCOPED_TRACE(std::string(method) + " " + options);
    Weight w = make_weight(67, 4160, 7);  // 278,720 values: many FP8 runs, 3,717 NF4 blocks of 75
    Quantizer q(test::plugins(), method, options);
    omp_set_num_threads(1);
    QuantizedMatrix one = q.quantize("model.layers.0.mlp.down_proj", w.tensor());
    for (int threads : {2, 3, 7}) {
      omp_set_num_threads(threads);
      QuantizedMatrix many = q.quantize("model.layers.0.mlp.down_proj", w.tensor());
      const auto a = tensor_slots(one.get()), b = tensor_slots(many.get());
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a[i]->data == nullptr, b[i]->data == nullptr) << kTensorSlotNames[i];
        if (!a[i]->data) continue;  // a slot the layout does not use
        const Tensor ta(*a[i]), tb(*b[i]);
        ASSERT_EQ(ta.nbytes(), tb.nbytes()) << kTensorSlotNames[i];
        EXPECT_EQ(std::memcmp(ta.data, tb.data, ta.nbytes()), 0)
            << kTensorSlotNames[i] << " differs with " << threads << " threads";
      }
      EXPECT_EQ(one.get().offset, many.get().offset);
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace banyan::core
