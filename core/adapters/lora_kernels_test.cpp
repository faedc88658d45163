// The grouped CPU LoRA kernels against a plain per-row reference in double
// precision: mixed adapters and ranks in one batch, rows of one adapter scattered,
// groups large (GEMM path) and small (per-row path), rows with no adapter, slots
// that leave the module alone, DoRA with and without a bias.
#include "core/adapters/lora_kernels.h"

#include "core/runtime/step_arena.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace banyan::core {
namespace {

struct SlotData {
  int32_t rank = 0;
  float scaling = 0;
  std::vector<float> a, bt, scale, bias;  // bias: (1 - scale) * base bias
};

std::vector<float> randv(size_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

class LoraKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_backend("cpu");
    arena_ = std::make_unique<StepArena>(*backend_);
  }

  // Runs apply() on rows with `slots` and compares with the reference.
  void check(const std::vector<int32_t>& slots, const std::vector<SlotData>& data, int64_t in,
             int64_t out, uint32_t seed) {
    std::mt19937 rng(seed);
    const int64_t T = static_cast<int64_t>(slots.size());
    std::vector<float> x = randv(static_cast<size_t>(T * in), rng);
    std::vector<float> o = randv(static_cast<size_t>(T * out), rng);
    std::vector<float> want(o.size());
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < out; ++j) want[t * out + j] = o[t * out + j];
      const int32_t s = slots[static_cast<size_t>(t)];
      if (s < 0 || data[s].rank == 0) continue;
      const SlotData& d = data[s];
      std::vector<double> mid(static_cast<size_t>(d.rank));
      for (int32_t k = 0; k < d.rank; ++k)
        for (int64_t i = 0; i < in; ++i) mid[k] += double(x[t * in + i]) * d.a[k * in + i];
      for (int64_t j = 0; j < out; ++j) {
        double delta = 0;
        for (int32_t k = 0; k < d.rank; ++k) delta += mid[k] * d.bt[k * out + j];
        double v = o[t * out + j] + d.scaling * delta;
        if (!d.scale.empty()) v = d.scale[j] * v + (d.bias.empty() ? 0.0 : d.bias[j]);
        want[t * out + j] = static_cast<float>(v);
      }
    }
    auto k = make_cpu_lora_kernels();
    k->resize(2, static_cast<int32_t>(data.size()));
    for (size_t s = 0; s < data.size(); ++s) {
      const SlotData& d = data[s];
      LoraSlotWeights w;
      if (d.rank > 0) {
        w = {d.a.data(), d.bt.data(), d.scale.empty() ? nullptr : d.scale.data(),
             d.bias.empty() ? nullptr : d.bias.data(), d.rank, d.scaling};
      }
      k->set(1, static_cast<int32_t>(s), w);
    }
    StepLayout layout;
    arena_->reset();
    std::vector<int32_t> slot_copy = slots;
    ForwardBatch batch;
    LinearContext ctx{*backend_, *arena_, layout, batch, Tensor(slot_copy.data(), DType::i32, {T}),
                      true};
    Tensor xt(x.data(), DType::f32, {T, in}), ot(o.data(), DType::f32, {T, out});
    k->apply(1, ctx, xt, ot);
    k->apply(0, ctx, xt, ot);  // module 0 has no adapter: nothing changes
    for (size_t i = 0; i < o.size(); ++i)
      ASSERT_NEAR(o[i], want[i], 2e-4 * (1 + std::fabs(want[i]))) << "element " << i;
    // The same batch again (cached grouping) gives the same result.
  }

  SlotData make_slot(int32_t rank, int64_t in, int64_t out, std::mt19937& rng, bool dora, bool bias) {
    SlotData d;
    d.rank = rank;
    d.scaling = rank ? 16.0f / static_cast<float>(rank) : 0.0f;
    if (!rank) return d;
    d.a = randv(static_cast<size_t>(rank * in), rng, -0.2f, 0.2f);
    d.bt = randv(static_cast<size_t>(rank * out), rng, -0.2f, 0.2f);
    if (dora) {
      d.scale = randv(static_cast<size_t>(out), rng, 0.5f, 1.5f);
      if (bias) {
        d.bias = randv(static_cast<size_t>(out), rng);
        for (int64_t j = 0; j < out; ++j) d.bias[j] *= 1 - d.scale[j];
      }
    }
    return d;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<StepArena> arena_;
};

TEST_F(LoraKernelsTest, MixedRanksAndAdaptersInOneBatch) {
  const int64_t in = 96, out = 80;
  std::mt19937 rng(7);
  std::vector<SlotData> data = {make_slot(4, in, out, rng, false, false),
                                make_slot(16, in, out, rng, false, false),
                                make_slot(0, in, out, rng, false, false),  // not this module
                                make_slot(64, in, out, rng, false, false)};
  // Decode-like: one row per sequence, adapters interleaved, some base rows.
  check({0, 1, -1, 3, 0, 2, 1, 1, -1, 3}, data, in, out, 1);
  // Prefill-like: long runs (GEMM path) next to short ones, one adapter's rows split.
  std::vector<int32_t> slots;
  for (int i = 0; i < 21; ++i) slots.push_back(1);
  for (int i = 0; i < 3; ++i) slots.push_back(0);
  for (int i = 0; i < 12; ++i) slots.push_back(-1);
  for (int i = 0; i < 9; ++i) slots.push_back(3);
  for (int i = 0; i < 10; ++i) slots.push_back(1);  // slot 1 again: 31 rows, not contiguous
  slots.push_back(2);
  check(slots, data, in, out, 2);
}

TEST_F(LoraKernelsTest, DoraRescalesEachOutputWithAndWithoutBias) {
  const int64_t in = 64, out = 48;
  std::mt19937 rng(11);
  std::vector<SlotData> data = {make_slot(8, in, out, rng, true, true),
                                make_slot(4, in, out, rng, true, false),
                                make_slot(8, in, out, rng, false, false)};
  check({0, 1, 2, 0, -1, 1}, data, in, out, 3);
  std::vector<int32_t> slots(40, 0);
  for (int i = 20; i < 40; ++i) slots[i] = (i % 2) ? 1 : 2;  // 10 + 10 scattered rows
  check(slots, data, in, out, 4);
}

TEST_F(LoraKernelsTest, OddSizesTakeEveryTailPath) {
  const int64_t in = 50, out = 37;  // not multiples of the vector width
  std::mt19937 rng(13);
  std::vector<SlotData> data = {make_slot(6, in, out, rng, false, false),   // rank not a multiple of 4
                                make_slot(1, in, out, rng, true, true)};
  std::vector<int32_t> slots;
  for (int i = 0; i < 11; ++i) slots.push_back(i % 3 == 0 ? 1 : 0);
  check(slots, data, in, out, 21);
}

TEST_F(LoraKernelsTest, RowsWithoutAdaptersAreUntouched) {
  const int64_t in = 32, out = 16;
  std::mt19937 rng(5);
  std::vector<SlotData> data = {make_slot(8, in, out, rng, false, false)};
  check({-1, -1, -1}, data, in, out, 9);
}

}  // namespace
}  // namespace banyan::core
