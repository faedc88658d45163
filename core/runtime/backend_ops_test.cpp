// Every CPU backend op against a plain reference written here (double precision),
// on fresh random inputs.
#include "core/runtime/backend.h"
#include "core/runtime/device_buffer.h"
#include "core/runtime/test_util.h"

#include <cmath>
#include <cstring>

namespace banyan::core {
namespace {

using test::random_floats;

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

class BackendOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend("cpu");
  std::vector<DeviceBuffer> keep;

  Tensor dev(const std::vector<float>& v, std::initializer_list<int64_t> shape) {
    keep.emplace_back(*be, v.size() * 4);
    Tensor t = keep.back().view(DType::f32, shape);
    be->upload(t.data, v.data(), v.size() * 4);
    return t;
  }
  Tensor dev_bf16(const std::vector<float>& v, std::initializer_list<int64_t> shape) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = to_bf16(v[i]);
    keep.emplace_back(*be, h.size() * 2);
    Tensor t = keep.back().view(DType::bf16, shape);
    be->upload(t.data, h.data(), h.size() * 2);
    return t;
  }
  Tensor dev_i32(const std::vector<int32_t>& v) {
    keep.emplace_back(*be, v.size() * 4);
    Tensor t = keep.back().view(DType::i32, {static_cast<int64_t>(v.size())});
    be->upload(t.data, v.data(), v.size() * 4);
    return t;
  }
  Tensor zeros(std::initializer_list<int64_t> shape) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return dev(std::vector<float>(static_cast<size_t>(n), 0.0f), shape);
  }
  std::vector<float> host(const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    be->download(v.data(), t.data, t.nbytes());
    return v;
  }
};

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::fabs(want[i]))) << "at " << i;
}

TEST_F(BackendOps, MatmulAllPathsAgainstReference) {
  struct Case { int64_t M, K, N; bool bf16, transposed, bias, accumulate; };
  const Case cases[] = {
      {1, 64, 40, false, false, false, false}, {3, 70, 33, true, false, true, false},
      {8, 128, 96, true, false, false, true},  {5, 48, 300, false, true, true, false},
      {2, 40, 260, true, true, false, false},  {37, 96, 130, false, false, true, false},
      {64, 200, 150, true, false, true, true}, {20, 64, 290, true, true, true, false},
      {33, 50, 70, false, true, false, true},
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "M=" << c.M << " K=" << c.K << " N=" << c.N
                                    << " bf16=" << c.bf16 << " T=" << c.transposed);
    auto x = random_floats(c.M * c.K, seed++);
    auto w = random_floats(c.K * c.N, seed++);
    auto b = random_floats(c.N, seed++);
    auto o0 = random_floats(c.M * c.N, seed++);
    if (c.bf16)
      for (auto& v : w) v = from_bf16(to_bf16(v));  // the reference sees the rounded weights
    Tensor tw = c.bf16 ? dev_bf16(w, {c.transposed ? c.K : c.N, c.transposed ? c.N : c.K})
                       : dev(w, {c.transposed ? c.K : c.N, c.transposed ? c.N : c.K});
    Tensor tb = dev(b, {c.N});
    Tensor out = dev(o0, {c.M, c.N});
    be->matmul(dev(x, {c.M, c.K}), tw, c.transposed, c.bias ? &tb : nullptr, out, c.accumulate);
    std::vector<double> want(c.M * c.N);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double s = c.bias ? b[n] : 0.0;
        for (int64_t k = 0; k < c.K; ++k)
          s += double(x[m * c.K + k]) * (c.transposed ? w[k * c.N + n] : w[n * c.K + k]);
        want[m * c.N + n] = (c.accumulate ? o0[m * c.N + n] : 0.0) + s;
      }
    expect_close(host(out), want, 1e-5);
  }
}

TEST_F(BackendOps, RmsNormWithResidualAndOffset) {
  const int64_t R = 7, H = 53;
  auto x = random_floats(R * H, 11), r0 = random_floats(R * H, 12), w = random_floats(H, 13);
  for (bool with_res : {false, true}) {
    Tensor res = dev(r0, {R, H});
    Tensor out = zeros({R, H});
    be->rms_norm(dev(x, {R, H}), with_res ? &res : nullptr, dev(w, {H}), 1e-5f, 0.5f, out);
    std::vector<double> want(R * H), want_res(R * H);
    for (int64_t r = 0; r < R; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < H; ++i) {
        double v = x[r * H + i] + (with_res ? r0[r * H + i] : 0.0);
        want_res[r * H + i] = v;
        ss += v * v;
      }
      double inv = 1.0 / std::sqrt(ss / H + 1e-5);
      for (int64_t i = 0; i < H; ++i) want[r * H + i] = (w[i] + 0.5) * want_res[r * H + i] * inv;
    }
    expect_close(host(out), want, 1e-5);
    if (with_res) expect_close(host(res), want_res, 1e-6);
  }
}

TEST_F(BackendOps, LayerNormWithBias) {
  const int64_t R = 5, H = 37;
  auto x = random_floats(R * H, 21, -3, 5), w = random_floats(H, 22), b = random_floats(H, 23);
  Tensor out = zeros({R, H});
  Tensor tb = dev(b, {H});
  be->layer_norm(dev(x, {R, H}), nullptr, dev(w, {H}), &tb, 1e-5f, out);
  std::vector<double> want(R * H);
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < H; ++i) mean += x[r * H + i];
    mean /= H;
    for (int64_t i = 0; i < H; ++i) var += (x[r * H + i] - mean) * (x[r * H + i] - mean);
    var /= H;
    for (int64_t i = 0; i < H; ++i)
      want[r * H + i] = (x[r * H + i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i];
  }
  expect_close(host(out), want, 1e-5);
}

TEST_F(BackendOps, EmbeddingFromF32AndBf16Tables) {
  const int64_t V = 17, H = 24;
  auto table = random_floats(V * H, 31);
  for (auto& v : table) v = from_bf16(to_bf16(v));
  std::vector<int32_t> ids = {3, 0, 16, 3, 9};
  for (bool bf16 : {false, true}) {
    Tensor out = zeros({5, H});
    be->embedding(bf16 ? dev_bf16(table, {V, H}) : dev(table, {V, H}), dev_i32(ids), out);
    std::vector<double> want;
    for (int32_t id : ids)
      for (int64_t i = 0; i < H; ++i) want.push_back(table[id * H + i]);
    expect_close(host(out), want, 0);
  }
}

double ref_act(double v, int32_t a) {
  switch (a) {
    case BANYAN_ACT_SILU: return v / (1 + std::exp(-v));
    case BANYAN_ACT_GELU: return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    case BANYAN_ACT_GELU_TANH:
      return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    default: return v > 0 ? v : 0;
  }
}

TEST_F(BackendOps, ActivationsActMulAddGather) {
  const int64_t n = 40000;  // more than one parallel chunk
  auto g = random_floats(n, 41, -8, 8), u = random_floats(n, 42);
  for (int32_t a : {BANYAN_ACT_SILU, BANYAN_ACT_GELU, BANYAN_ACT_GELU_TANH, BANYAN_ACT_RELU}) {
    SCOPED_TRACE(a);
    Tensor out = zeros({n}), out2 = zeros({n});
    be->act_mul(dev(g, {n}), dev(u, {n}), a, out);
    be->activation(dev(g, {n}), a, out2);
    std::vector<double> want(n), want2(n);
    for (int64_t i = 0; i < n; ++i) {
      want2[i] = ref_act(g[i], a);
      want[i] = want2[i] * u[i];
    }
    expect_close(host(out), want, 1e-5);
    expect_close(host(out2), want2, 1e-5);
  }
  Tensor sum = zeros({n});
  be->add(dev(g, {n}), dev(u, {n}), sum);
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = double(g[i]) + u[i];
  expect_close(host(sum), want, 1e-7);

  auto x = random_floats(6 * 5, 43);
  Tensor rows = zeros({3, 5});
  be->gather_rows(dev(x, {6, 5}), dev_i32({5, 0, 2}), rows);
  std::vector<double> wg;
  for (int r : {5, 0, 2})
    for (int i = 0; i < 5; ++i) wg.push_back(x[r * 5 + i]);
  expect_close(host(rows), wg, 0);
}

// Each row of gate_up is [gate | up] (a fused product): the halves are read in place.
TEST_F(BackendOps, ActMulHalvesActsOnEachRowsTwoHalves) {
  for (const auto& [T, N] : {std::pair<int64_t, int64_t>{5, 48}, {3, 13}, {1, 8}}) {
    SCOPED_TRACE(std::to_string(T) + " x " + std::to_string(N));
    auto gu = random_floats(static_cast<size_t>(T * 2 * N), 44, -6, 6);
    for (int32_t a : {BANYAN_ACT_SILU, BANYAN_ACT_GELU_TANH}) {
      Tensor out = zeros({T, N});
      be->act_mul_halves(dev(gu, {T, 2 * N}), a, out);
      std::vector<double> want;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < N; ++j) want.push_back(ref_act(gu[t * 2 * N + j], a) * gu[t * 2 * N + N + j]);
      expect_close(host(out), want, 1e-5);
    }
  }
  Tensor bad = zeros({2, 3});
  EXPECT_THROW(be->act_mul_halves(dev(random_floats(10, 45), {2, 5}), BANYAN_ACT_SILU, bad), Error);
}

TEST_F(BackendOps, LoadWeightConvertsBf16F16F32) {
  const uint16_t bf[] = {0x3f80, 0xc040, 0x0000, 0x7f80};  // 1, -3, 0, inf
  const uint16_t hf[] = {0x3c00, 0xc200, 0x0001, 0x7bff};  // 1, -3, 2^-24, 65504
  const float want_bf[] = {1, -3, 0, INFINITY};
  const float want_hf[] = {1, -3, 5.9604644775390625e-8f, 65504};
  for (int which = 0; which < 2; ++which) {
    Tensor t = zeros({4});
    be->load_weight(which ? static_cast<const void*>(hf) : bf, which ? DType::f16 : DType::bf16, t);
    auto h = host(t);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h[i], which ? want_hf[i] : want_bf[i]);
  }
  EXPECT_EQ(be->weight_dtype(DType::bf16, 2), DType::bf16);  // kept (default option)
  EXPECT_EQ(be->weight_dtype(DType::bf16, 1), DType::f32);
  EXPECT_EQ(be->weight_dtype(DType::f16, 2), DType::f32);
  auto f32_only = make_backend("cpu", CpuBackendOptions{0, false});
  EXPECT_EQ(f32_only->weight_dtype(DType::bf16, 2), DType::f32);
}

TEST(Backend, UnknownDevicesAreRefusedByName) {
  test::expect_error([] { make_backend("tpu"); }, {"unknown device \"tpu\""});
}

}  // namespace
}  // namespace banyan::core
