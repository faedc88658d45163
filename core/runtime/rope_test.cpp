// Rotary embeddings: every rope type's frequencies against the formulas written
// out here in double precision, and the rotation op against a direct reference.
#include "core/runtime/rope.h"
#include "core/runtime/backend.h"
#include "core/runtime/device_buffer.h"
#include "core/runtime/test_util.h"

#include <cmath>

namespace banyan::core {
namespace {

BanyanRopeSpec spec(int32_t type, int32_t dim, double theta) {
  BanyanRopeSpec s{};
  s.type = type;
  s.head_dim = dim;
  s.rotary_dim = dim;
  s.neox = 1;
  s.theta = theta;
  s.max_position = 2048;
  return s;
}

std::vector<double> plain(double theta, int dim) {
  std::vector<double> f;
  for (int i = 0; i < dim; i += 2) f.push_back(1.0 / std::pow(theta, double(i) / dim));
  return f;
}

void expect_rel(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::fabs(want[i])) << "frequency " << i;
}

TEST(Rope, DefaultAndLinear) {
  auto s = spec(BANYAN_ROPE_DEFAULT, 64, 10000.0);
  auto r = rope_frequencies(s);
  expect_rel(r.inv_freq, plain(10000.0, 64), 1e-6);
  EXPECT_EQ(r.attention_scaling, 1.0f);
  s.type = BANYAN_ROPE_LINEAR;
  s.factor = 4.0;
  auto want = plain(10000.0, 64);
  for (auto& w : want) w /= 4.0;
  expect_rel(rope_frequencies(s).inv_freq, want, 1e-6);
}

TEST(Rope, DynamicNtkScalesOnlyBeyondMaxPosition) {
  auto s = spec(BANYAN_ROPE_DYNAMIC, 32, 10000.0);
  s.factor = 2.0;
  expect_rel(rope_frequencies(s, 100).inv_freq, plain(10000.0, 32), 1e-6);
  expect_rel(rope_frequencies(s, 2048).inv_freq, plain(10000.0, 32), 1e-6);
  const double len = 5000, dim = 32;
  const double base = 10000.0 * std::pow(2.0 * len / 2048 - 1.0, dim / (dim - 2));
  expect_rel(rope_frequencies(s, 5000).inv_freq, plain(base, 32), 1e-6);
}

TEST(Rope, Llama3) {
  auto s = spec(BANYAN_ROPE_LLAMA3, 128, 500000.0);
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_position = 8192;
  std::vector<double> want;
  for (double f : plain(500000.0, 128)) {
    const double wavelen = 2 * M_PI / f, low_wl = 8192.0 / 1, high_wl = 8192.0 / 4;
    if (wavelen < high_wl) {
      want.push_back(f);
    } else if (wavelen > low_wl) {
      want.push_back(f / 8);
    } else {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want.push_back((1 - smooth) * f / 8 + smooth * f);
    }
  }
  expect_rel(rope_frequencies(s).inv_freq, want, 2e-6);
}

TEST(Rope, Yarn) {
  auto s = spec(BANYAN_ROPE_YARN, 64, 10000.0);
  s.factor = 4;
  s.original_max_position = 2048;
  const double dim = 64;
  auto corr = [&](double rot) { return dim * std::log(2048 / (rot * 2 * M_PI)) / (2 * std::log(10000.0)); };
  const double low = std::max(std::floor(corr(32)), 0.0), high = std::min(std::ceil(corr(1)), dim - 1);
  std::vector<double> want;
  auto base = plain(10000.0, 64);
  for (size_t i = 0; i < base.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1 - ramp;
    want.push_back(base[i] / 4 * (1 - extrapolation_weight) + base[i] * extrapolation_weight);
  }
  auto r = rope_frequencies(s);
  expect_rel(r.inv_freq, want, 2e-6);
  EXPECT_NEAR(r.attention_scaling, 0.1 * std::log(4.0) + 1.0, 1e-6);
  s.attention_factor = 1.5;
  EXPECT_FLOAT_EQ(rope_frequencies(s).attention_scaling, 1.5f);
}

TEST(Rope, RefusesUnknownTypesAndMissingParameters) {
  auto s = spec(7, 64, 10000.0);
  test::expect_error([&] { validate_rope(s); }, {"unknown rope type 7"});
  s = spec(BANYAN_ROPE_LLAMA3, 64, 10000.0);
  s.factor = 8;
  s.original_max_position = 8192;
  test::expect_error([&] { validate_rope(s); }, {"llama3", "low_freq_factor"});
  s = spec(BANYAN_ROPE_DEFAULT, 64, 10000.0);
  s.rotary_dim = 65;
  test::expect_error([&] { validate_rope(s); }, {"rotary_dim 65"});
}

TEST(Rope, RotationAgainstReference) {
  auto be = make_backend("cpu");
  const int64_t T = 5, Hq = 3, Hk = 2, D = 16;
  for (int neox : {1, 0}) {
    for (int32_t rot : {16, 8}) {  // full and partial rotation
      SCOPED_TRACE(testing::Message() << "neox=" << neox << " rotary_dim=" << rot);
      auto q = test::random_floats(T * Hq * D, 1), k = test::random_floats(T * Hk * D, 2);
      std::vector<int32_t> pos = {0, 1, 7, 300, 4095};
      auto s = spec(BANYAN_ROPE_YARN, D, 10000.0);
      s.rotary_dim = rot;
      s.neox = neox;
      s.factor = 2;
      s.original_max_position = 1024;
      auto f = rope_frequencies(s);
      DeviceBuffer bq(*be, q.size() * 4), bk(*be, k.size() * 4), bp(*be, 20), bf(*be, f.inv_freq.size() * 4);
      be->upload(bq.data(), q.data(), q.size() * 4);
      be->upload(bk.data(), k.data(), k.size() * 4);
      be->upload(bp.data(), pos.data(), 20);
      be->upload(bf.data(), f.inv_freq.data(), f.inv_freq.size() * 4);
      Tensor tq = bq.view(DType::f32, {T, Hq * D}), tk = bk.view(DType::f32, {T, Hk * D});
      RotaryParams p;
      p.positions = bp.view(DType::i32, {T});
      p.inv_freq = bf.view(DType::f32, {1, rot / 2});
      p.attention_scaling = f.attention_scaling;
      p.head_dim = D;
      p.rotary_dim = rot;
      p.neox = neox;
      be->rotary(tq, tk, p);
      auto check = [&](const std::vector<float>& orig, const Tensor& t, int64_t heads) {
        const float* got = t.as<float>();
        for (int64_t tok = 0; tok < T; ++tok)
          for (int64_t h = 0; h < heads; ++h) {
            const float* x = &orig[(tok * heads + h) * D];
            const float* y = got + (tok * heads + h) * D;
            for (int i = 0; i < rot / 2; ++i) {
              // transformers forms the angle in f32: position * inv_freq
              const double a = static_cast<float>(pos[tok]) * f.inv_freq[i];
              const double c = std::cos(a) * f.attention_scaling, sn = std::sin(a) * f.attention_scaling;
              const int i1 = neox ? i : 2 * i, i2 = neox ? i + rot / 2 : 2 * i + 1;
              EXPECT_NEAR(y[i1], x[i1] * c - x[i2] * sn, 1e-5);
              EXPECT_NEAR(y[i2], x[i2] * c + x[i1] * sn, 1e-5);
            }
            for (int i = rot; i < D; ++i) EXPECT_EQ(y[i], x[i]);  // pass-through dims
          }
      };
      check(q, tq, Hq);
      check(k, tk, Hk);
    }
  }
}

}  // namespace
}  // namespace banyan::core
