// Packing an adapter for the kernels: A kept, B transposed, and the DoRA scale
// m / ||W + scaling·B·A|| (per output row) and bias term against a direct double
// computation, for a base weight stored [out, in] and the same weight stored
// [in, out] (GPT-2 Conv1D, fan_in_fan_out), which must pack identically.
#include "core/adapters/packed_adapter.h"
#include "core/adapters/test_adapters.h"

#include <gtest/gtest.h>

#include <cmath>

namespace banyan::core {
namespace {

using namespace test;

TEST(PackedAdapter, DoraScaleForNormalAndTransposedBaseWeights) {
  const int64_t in = 24, out = 20, r = 4;
  const float scaling = 1.5f;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<uint16_t> w(static_cast<size_t>(out * in)), wt(w.size()), bias(static_cast<size_t>(out));
  for (auto& x : w) x = kernels::cpu::f32_to_bf16(d(rng));
  for (int64_t j = 0; j < out; ++j)
    for (int64_t i = 0; i < in; ++i) wt[i * out + j] = w[j * in + i];
  for (auto& x : bias) x = kernels::cpu::f32_to_bf16(d(rng));
  TempDir tmp;
  auto bytes = [](const std::vector<uint16_t>& v) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(v.data()), v.size() * 2);
  };
  write_safetensors(tmp / "model.safetensors",
                    {{"n.weight", DType::bf16, {out, in}, bytes(w)},
                     {"n.bias", DType::bf16, {out}, bytes(bias)},
                     {"t.weight", DType::bf16, {in, out}, bytes(wt)}});
  Checkpoint base(tmp.path());
  LoraTensors l = random_lora(r, in, out, 5, true, 0.5f);
  auto module = [&](const char* name, int transposed) {
    BanyanAdapterModule m{};
    m.name = name;
    m.rank = static_cast<int32_t>(r);
    m.scaling = scaling;
    m.lora_a = Tensor(l.a.data(), DType::f32, {r, in});
    m.lora_b = Tensor(l.b.data(), DType::f32, {out, r});
    m.magnitude = Tensor(l.m.data(), DType::f32, {out});
    m.weight_transposed = transposed;
    return m;
  };
  BanyanAdapterModule mods[2] = {module("n", 0), module("t", 1)};
  BanyanAdapterInfo info{sizeof(BanyanAdapterInfo), 2, mods, static_cast<int32_t>(r), "dora", ""};
  AdapterLayout layout = plan_adapter(info, DType::f32, [](const std::string& n) { return n == "n" ? 0 : 1; }, base);
  std::vector<std::byte> image(layout.bytes);
  pack_adapter(info, layout, base, image.data());
  ASSERT_TRUE(layout.modules[0].bias);
  ASSERT_FALSE(layout.modules[1].bias);
  const auto* s0 = reinterpret_cast<const float*>(image.data() + layout.modules[0].scale_offset);
  const auto* s1 = reinterpret_cast<const float*>(image.data() + layout.modules[1].scale_offset);
  const auto* b0 = reinterpret_cast<const float*>(image.data() + layout.modules[0].bias_offset);
  const auto* bt = reinterpret_cast<const float*>(image.data() + layout.modules[0].bt_offset);
  for (int64_t j = 0; j < out; ++j) {
    double norm = 0;
    for (int64_t i = 0; i < in; ++i) {
      double ba = 0;
      for (int64_t k = 0; k < r; ++k) ba += double(l.b[j * r + k]) * l.a[k * in + i];
      const double v = kernels::cpu::bf16_to_f32(w[j * in + i]) + scaling * ba;
      norm += v * v;
    }
    const double scale = l.m[j] / std::sqrt(norm);
    EXPECT_NEAR(s0[j], scale, 1e-5 * scale) << j;
    EXPECT_EQ(s0[j], s1[j]) << "transposed storage packs differently at " << j;
    EXPECT_NEAR(b0[j], (1 - scale) * kernels::cpu::bf16_to_f32(bias[j]), 1e-5) << j;
    for (int64_t k = 0; k < r; ++k) EXPECT_EQ(bt[k * out + j], l.b[j * r + k]);
  }
}

}  // namespace
}  // namespace banyan::core
