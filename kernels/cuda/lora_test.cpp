// The CUDA multi-LoRA kernels against the CPU ones (core/adapters), on fresh random
// inputs: mixed slots and ranks (1 to 64) in one batch, DoRA with and without a
// bias, rows without an adapter (left bit-identical), slots out of range, odd
// sizes (the scalar paths), every kernel variant, merge form and the late expand,
// lookahead over modules sharing x, and captured graphs replayed over new slots.
#include "kernels/cuda/cuda_test_util.h"

#if defined(BANYAN_WITH_ADAPTERS)
#include "core/adapters/lora_kernels.h"
#include "core/runtime/step_arena.h"
#include "kernels/cuda/cuda_lora_kernels.h"
#include "kernels/cuda/lora.h"

namespace banyan::kernels::cuda::test {
namespace {

struct Shape {
  int64_t in, out;
};

struct Fixture {
  Backends be;
  core::StepArena cpu_arena{*be.cpu, size_t{1} << 20};
  std::unique_ptr<core::LoraKernels> gpu = make_cuda_lora_kernels(*be.gpu);
  std::unique_ptr<core::LoraKernels> cpu = core::make_cpu_lora_kernels();
  std::vector<Shape> shapes;
  int32_t slots = 0;
  std::vector<std::vector<int32_t>> rank;  // [module][slot]
  std::vector<std::vector<uint16_t>> host; // CPU copies of the weights (kept alive)
  std::vector<std::vector<float>> host_f;
  std::vector<Dev> dev;
  uint64_t step = 0;

  Fixture(std::vector<Shape> s, int32_t n_slots, uint32_t seed) : shapes(std::move(s)), slots(n_slots) {
    const int32_t M = static_cast<int32_t>(shapes.size());
    gpu->resize(M, slots);
    cpu->resize(M, slots);
    std::mt19937 rng(seed);
    const int32_t ranks[] = {0, 1, 3, 8, 16, 24, 64};
    rank.assign(static_cast<size_t>(M), std::vector<int32_t>(static_cast<size_t>(slots), 0));
    for (int32_t m = 0; m < M; ++m) {
      const int64_t in = shapes[m].in, out = shapes[m].out;
      for (int32_t s = 0; s < slots; ++s) {
        const int32_t r = ranks[rng() % 7];
        rank[m][s] = r;
        if (r == 0) continue;
        const float amp = 1.0f / std::sqrt(static_cast<float>(in));
        auto bits = [&](const std::vector<float>& v) {
          std::vector<uint16_t> h(v.size());
          for (size_t i = 0; i < v.size(); ++i) h[i] = cpu::f32_to_bf16(v[i]);
          return h;
        };
        const auto a = random_bf16(static_cast<size_t>(r * in), rng(), -amp, amp);
        const auto bt = random_bf16(static_cast<size_t>(r * out), rng(), -1.0f, 1.0f);
        core::LoraSlotWeights wc, wg;
        wc.rank = wg.rank = r;
        wc.scaling = wg.scaling = 0.25f + static_cast<float>(rng() % 8) * 0.25f;
        wc.dtype = wg.dtype = DType::bf16;
        host.push_back(bits(a));
        wc.a = host.back().data();
        dev.push_back(make(*be.gpu, DType::bf16, {r, in}));
        put(*be.gpu, dev.back().t, a);
        wg.a = dev.back().t.data;
        host.push_back(bits(bt));
        wc.bt = host.back().data();
        dev.push_back(make(*be.gpu, DType::bf16, {r, out}));
        put(*be.gpu, dev.back().t, bt);
        wg.bt = dev.back().t.data;
        const int kind = static_cast<int>(rng() % 3);  // 0 LoRA, 1 DoRA, 2 DoRA with bias
        if (kind >= 1) {
          host_f.push_back(random_bf16(static_cast<size_t>(out), rng(), 0.5f, 1.5f));
          wc.dora_scale = host_f.back().data();
          dev.push_back(make(*be.gpu, DType::f32, {out}));
          put(*be.gpu, dev.back().t, host_f.back());
          wg.dora_scale = dev.back().t.as<float>();
        }
        if (kind == 2) {
          host_f.push_back(random_bf16(static_cast<size_t>(out), rng(), -0.5f, 0.5f));
          wc.dora_bias = host_f.back().data();
          dev.push_back(make(*be.gpu, DType::f32, {out}));
          put(*be.gpu, dev.back().t, host_f.back());
          wg.dora_bias = dev.back().t.as<float>();
        }
        cpu->set(m, s, wc);
        gpu->set(m, s, wg);
      }
    }
  }

  /// The CPU result for module m: out0 plus every row's delta, in f32.
  std::vector<float> reference(int32_t m, const std::vector<int32_t>& row_slots,
                               const std::vector<float>& x, const std::vector<float>& out0) {
    const int64_t T = static_cast<int64_t>(row_slots.size());
    std::vector<float> xs = x, out = out0;
    std::vector<int32_t> sl = row_slots;
    Tensor xt(xs.data(), DType::f32, {T, shapes[m].in}), ot(out.data(), DType::f32, {T, shapes[m].out});
    core::StepLayout layout;
    core::ForwardBatch batch;
    cpu_arena.reset();
    core::LinearContext ctx{*be.cpu, cpu_arena, layout, batch, Tensor(sl.data(), DType::i32, {T}), true};
    cpu->apply(m, ctx, xt, ot);
    return out;
  }

  /// Checks `got` (bf16 results) against the reference: one bf16 rounding of each
  /// adapted element; rows the module's adapters leave alone are bit-identical.
  void expect_matches(int32_t m, const std::vector<int32_t>& row_slots, const std::vector<float>& ref,
                      const std::vector<float>& out0, const std::vector<float>& got, const std::string& what) {
    const int64_t n = shapes[m].out;
    int64_t bad = 0, adapted = 0;
    for (size_t row = 0; row < row_slots.size(); ++row) {
      const int32_t s = row_slots[row];
      const bool adapts = s >= 0 && s < slots && rank[m][s] > 0;
      adapted += adapts;
      for (int64_t j = 0; j < n; ++j) {
        const size_t i = row * static_cast<size_t>(n) + static_cast<size_t>(j);
        const bool ok = adapts ? std::fabs(got[i] - ref[i]) <= 0.0040 * std::fabs(ref[i]) + 2e-4 &&
                                     std::isfinite(got[i])
                               : got[i] == out0[i];
        if (!ok && bad++ < 5)
          ADD_FAILURE() << what << " module " << m << " row " << row << " (slot " << s << ", rank "
                        << (adapts ? rank[m][s] : 0) << ") col " << j << ": got " << got[i]
                        << ", reference " << ref[i] << ", base " << out0[i];
      }
    }
    EXPECT_EQ(bad, 0) << what << " module " << m << ": " << bad << " elements off";
    (void)adapted;
  }
};

TEST(CudaLora, MixedAdaptersAndRanksMatchCpuKernels) {
  BANYAN_REQUIRE_GPU();
  // Multiples of 8 take the 16-byte paths; 60 x 36 and 4101 the scalar ones.
  Fixture f({{256, 512}, {512, 136}, {60, 36}, {1024, 4096}, {4096, 1000}, {4101, 264}}, 9, 11);
  std::mt19937 rng(12);
  for (int64_t T : {1, 3, 8, 9, 64, 77, 300}) {
    for (int32_t m = 0; m < static_cast<int32_t>(f.shapes.size()); ++m) {
      const int64_t in = f.shapes[m].in, n = f.shapes[m].out;
      std::vector<int32_t> row_slots(static_cast<size_t>(T));
      // Few slots for long batches (tiles of several rows), any slot for short ones;
      // -1 and an out-of-range slot mean no adapter.
      const int32_t spread = T > 64 ? 3 : f.slots + 2;
      for (auto& s : row_slots) s = static_cast<int32_t>(rng() % spread) - 1;
      const auto x = random_bf16(static_cast<size_t>(T * in), rng());
      const auto out0 = random_bf16(static_cast<size_t>(T * n), rng(), -2.0f, 2.0f);
      const auto ref = f.reference(m, row_slots, x, out0);

      Dev xd = make(*f.be.gpu, DType::bf16, {T, in}), od = make(*f.be.gpu, DType::bf16, {T, n});
      Dev sd = make(*f.be.gpu, DType::i32, {T});
      put(*f.be.gpu, xd.t, x);
      put(*f.be.gpu, od.t, out0);
      put_i32(*f.be.gpu, sd.t, row_slots);
      core::StepArena arena(*f.be.gpu, size_t{1} << 20);
      core::StepLayout layout;
      layout.step_id = ++f.step;
      layout.adapter_slots = sd.t;
      core::ForwardBatch batch;
      // The host copy of the slots picks the kernels' variants (a hint): none (one
      // pass per tile), the true one, or a false one saying every row has its own
      // adapter (the distinct-adapter variants then run tiles of several rows in
      // several passes).
      const int hint = static_cast<int>((T + 2 * m) % 3);
      if (hint == 1) batch.adapter_slots = row_slots;
      if (hint == 2)
        for (int32_t i = 0; i < T; ++i) batch.adapter_slots.push_back(i);
      core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
      // Every other call announces the module first (deltas on the side stream,
      // merged by apply), as the hook does before the base product; the merge in
      // each of its forms (first version, 16-byte, 16-byte with PDL).
      // The late expand (shrink beside the product, expand after it): off (default),
      // for tiles of several rows, always.
      const bool overlapped = (T + m) % 2 == 0;
      const int merge = static_cast<int>(T % 3);
      const int late = static_cast<int>((T + 3 * m) % 4);  // 0 off, 3 always, else shared
      lora_set_merge_mode(merge);
      if (m % 2) lora_set_shrink_features(1024, 2048);  // the other warp splits of the input
      set_lora_late_expand(*f.gpu, late == 0   ? LoraLateExpand::off
                                   : late == 3 ? LoraLateExpand::always
                                               : LoraLateExpand::shared);
      if (overlapped) f.gpu->prepare(m, ctx, xd.t, od.t);
      f.gpu->apply(m, ctx, xd.t, od.t);
      lora_set_merge_mode(1);  // the defaults
      lora_set_shrink_features(2048, 1024);
      set_lora_late_expand(*f.gpu, LoraLateExpand::off);
      f.expect_matches(m, row_slots, ref, out0, get(*f.be.gpu, od.t),
                       "T=" + std::to_string(T) + " hint " + std::to_string(hint) +
                           (overlapped ? " (overlapped, merge " + std::to_string(merge) +
                                             ", late expand " + std::to_string(late) + ")"
                                       : ""));
    }
  }
}

TEST(CudaLora, F32OutputsOfTheFinalProjection) {
  BANYAN_REQUIRE_GPU();
  Fixture f({{128, 1000}}, 4, 21);
  const int64_t T = 5, in = 128, n = 1000;
  const std::vector<int32_t> row_slots = {0, 1, 2, 3, -1};
  const auto x = random_bf16(static_cast<size_t>(T * in), 22);
  const auto out0 = random_bf16(static_cast<size_t>(T * n), 23);
  const auto ref = f.reference(0, row_slots, x, out0);
  Dev xd = make(*f.be.gpu, DType::bf16, {T, in}), od = make(*f.be.gpu, DType::f32, {T, n});
  Dev sd = make(*f.be.gpu, DType::i32, {T});
  put(*f.be.gpu, xd.t, x);
  put(*f.be.gpu, od.t, out0);
  put_i32(*f.be.gpu, sd.t, row_slots);
  core::StepArena arena(*f.be.gpu, size_t{1} << 20);
  core::StepLayout layout;
  layout.step_id = 1;
  core::ForwardBatch batch;
  core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
  f.gpu->prepare(0, ctx, xd.t, od.t);
  f.gpu->apply(0, ctx, xd.t, od.t);
  const auto got = get(*f.be.gpu, od.t);
  for (size_t i = 0; i < got.size(); ++i) {
    const int32_t s = row_slots[i / n];
    if (s >= 0 && f.rank[0][s] > 0)
      EXPECT_NEAR(got[i], ref[i], 1e-4 * (1 + std::fabs(ref[i]))) << "element " << i;
    else
      EXPECT_EQ(got[i], out0[i]) << "element " << i;
  }
}

// Runs of at least 128 rows of one adapter (prefill chunks) take cuBLASLt (t rounded
// to bf16, as peft does), the other rows the kernels, in one call.
TEST(CudaLora, LongRunsTakeTheDensePath) {
  BANYAN_REQUIRE_GPU();
  Fixture f({{256, 512}, {512, 136}, {1024, 4096}, {4096, 1000}}, 6, 41);
  std::mt19937 rng(42);
  const int64_t T = 330;
  for (int32_t m = 0; m < static_cast<int32_t>(f.shapes.size()); ++m) {
    const int64_t in = f.shapes[m].in, n = f.shapes[m].out;
    std::vector<int32_t> adapting;
    for (int32_t s = 0; s < f.slots; ++s)
      if (f.rank[m][s] > 0) adapting.push_back(s);
    if (adapting.size() < 2) continue;
    // [0, 150): one adapter; [150, 170): others, or none; [170, 330): another.
    std::vector<int32_t> row_slots(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) {
      int32_t s = static_cast<int32_t>(rng() % 7) - 1;
      if (s == adapting[0] || s == adapting[1]) s = -1;
      row_slots[i] = i < 150 ? adapting[0] : i < 170 ? s : adapting[1];
    }
    const auto x = random_bf16(static_cast<size_t>(T * in), rng());
    const auto out0 = random_bf16(static_cast<size_t>(T * n), rng(), -2.0f, 2.0f);
    const auto ref = f.reference(m, row_slots, x, out0);
    Dev xd = make(*f.be.gpu, DType::bf16, {T, in}), od = make(*f.be.gpu, DType::bf16, {T, n});
    Dev sd = make(*f.be.gpu, DType::i32, {T});
    put(*f.be.gpu, xd.t, x);
    put(*f.be.gpu, od.t, out0);
    put_i32(*f.be.gpu, sd.t, row_slots);
    core::StepArena arena(*f.be.gpu, size_t{1} << 20);
    core::StepLayout layout;
    layout.step_id = ++f.step;
    layout.adapter_slots = sd.t;  // the token rows: the batch holds their host copy
    core::ForwardBatch batch;
    batch.adapter_slots = row_slots;
    core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
    f.gpu->apply(m, ctx, xd.t, od.t);
    const auto got = get(*f.be.gpu, od.t);
    // The kernels' rows element by element; the dense rows by their norm (two more
    // bf16 roundings, of t and of its scaling, before the sum).
    std::vector<int32_t> mixed(row_slots.begin() + 150, row_slots.begin() + 170);
    f.expect_matches(m, mixed, std::vector<float>(ref.begin() + 150 * n, ref.begin() + 170 * n),
                     std::vector<float>(out0.begin() + 150 * n, out0.begin() + 170 * n),
                     std::vector<float>(got.begin() + 150 * n, got.begin() + 170 * n), "mixed rows");
    double err = 0, scale = 0;
    for (int64_t i = 0; i < T; ++i) {
      if (i >= 150 && i < 170) continue;
      for (int64_t j = 0; j < n; ++j) {
        const size_t k = static_cast<size_t>(i * n + j);
        ASSERT_TRUE(std::isfinite(got[k])) << "module " << m << " row " << i;
        err += (got[k] - ref[k]) * (got[k] - ref[k]);
        scale += (ref[k] - out0[k]) * (ref[k] - out0[k]);
      }
    }
    EXPECT_LE(std::sqrt(err / scale), 1e-2) << "module " << m << ": dense rows off";
  }
}

// A captured step regroups its rows on every replay: new slots in the same buffer
// give the new slots' results.
TEST(CudaLora, GraphReplaysRegroupNewSlots) {
  BANYAN_REQUIRE_GPU();
  Fixture f({{512, 1024}, {1024, 256}}, 16, 31);
  const int64_t T = 64;
  std::mt19937 rng(32);
  auto random_slots = [&] {
    std::vector<int32_t> v(static_cast<size_t>(T));
    for (auto& s : v) s = static_cast<int32_t>(rng() % 17) - 1;
    return v;
  };
  Dev x0 = make(*f.be.gpu, DType::bf16, {T, 512}), o0 = make(*f.be.gpu, DType::bf16, {T, 1024});
  Dev o1 = make(*f.be.gpu, DType::bf16, {T, 256}), sd = make(*f.be.gpu, DType::i32, {T});
  core::StepArena arena(*f.be.gpu, size_t{1} << 20);
  core::StepLayout layout;
  core::ForwardBatch batch;
  core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
  // Module 0 writes o0; module 1 reads o0 (as its x) and writes o1. Module 0 takes
  // the overlapped path (side stream inside the capture); module 1 the direct one on
  // even replays' graph and the overlapped one on the other graph.
  Tensor x1 = o0.t;
  bool second_overlapped = false;
  auto enqueue = [&] {
    f.gpu->prepare(0, ctx, x0.t, o0.t);
    f.gpu->apply(0, ctx, x0.t, o0.t);
    if (second_overlapped) f.gpu->prepare(1, ctx, x1, o1.t);
    f.gpu->apply(1, ctx, x1, o1.t);
  };
  put_i32(*f.be.gpu, sd.t, random_slots());
  layout.step_id = 1;
  enqueue();  // warm-up: buffers and tables exist before the capture
  layout.step_id = 2;
  f.be.gpu->begin_capture();
  enqueue();
  Graph direct = f.be.gpu->end_capture();
  second_overlapped = true;
  layout.step_id = 3;
  enqueue();
  layout.step_id = 4;
  f.be.gpu->begin_capture();
  enqueue();
  Graph overlapped = f.be.gpu->end_capture();
  for (int rep = 0; rep < 4; ++rep) {
    const Graph& g = rep % 2 ? overlapped : direct;
    const auto slots = random_slots();
    const auto x = random_bf16(static_cast<size_t>(T * 512), rng());
    const auto base0 = random_bf16(static_cast<size_t>(T * 1024), rng());
    const auto base1 = random_bf16(static_cast<size_t>(T * 256), rng());
    put_i32(*f.be.gpu, sd.t, slots);
    put(*f.be.gpu, x0.t, x);
    put(*f.be.gpu, o0.t, base0);
    put(*f.be.gpu, o1.t, base1);
    f.be.gpu->launch(g);
    const auto got0 = get(*f.be.gpu, o0.t), got1 = get(*f.be.gpu, o1.t);
    const auto ref0 = f.reference(0, slots, x, base0);
    f.expect_matches(0, slots, ref0, base0, got0, "replay " + std::to_string(rep));
    // Module 1's input is the GPU's (bf16) module-0 output.
    const auto ref1 = f.reference(1, slots, got0, base1);
    f.expect_matches(1, slots, ref1, base1, got1, "replay " + std::to_string(rep));
  }
}

// Modules that take the same x in a row (q, k, v): the prepare() of the first also
// launches the deltas of those learned to follow it (lookahead), which their own
// prepare() claims. Results match the CPU's in the usual order, in another order, with
// a different x for one of them (not claimed: computed anew), and in a captured graph
// replayed over new slots and inputs.
TEST(CudaLora, SharedInputsRunAhead) {
  BANYAN_REQUIRE_GPU();
  Fixture f({{512, 1024}, {512, 136}, {512, 264}, {1024, 512}}, 9, 41);
  const int64_t T = 64;
  std::mt19937 rng(42);
  Dev xa = make(*f.be.gpu, DType::bf16, {T, 512}), xb = make(*f.be.gpu, DType::bf16, {T, 512});
  Dev x3 = make(*f.be.gpu, DType::bf16, {T, 1024}), sd = make(*f.be.gpu, DType::i32, {T});
  std::vector<Dev> od;
  for (int32_t m = 0; m < 4; ++m) od.push_back(make(*f.be.gpu, DType::bf16, {T, f.shapes[m].out}));
  core::StepArena arena(*f.be.gpu, size_t{1} << 20);
  core::StepLayout layout;
  core::ForwardBatch batch;
  core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
  // Lookahead runs with the deltas on the side stream (not with the late expand)
  // and, by default, in steps of distinct adapters only.
  set_lora_late_expand(*f.gpu, LoraLateExpand::off);
  set_lora_lookahead(*f.gpu, LoraLookahead::always);
  std::vector<int32_t> order = {0, 1, 2, 3};
  bool other_x = false;  // module 1 reads xb (same values, another buffer)
  auto input = [&](int32_t m) -> const Tensor& { return m == 3 ? x3.t : m == 1 && other_x ? xb.t : xa.t; };
  auto enqueue = [&] {
    for (int32_t m : order) {
      f.gpu->prepare(m, ctx, input(m), od[static_cast<size_t>(m)].t);
      f.gpu->apply(m, ctx, input(m), od[static_cast<size_t>(m)].t);
    }
  };
  struct Data {
    std::vector<int32_t> slots;
    std::vector<float> x, x3;
    std::vector<std::vector<float>> base;
  };
  auto fresh = [&] {
    Data d;
    d.slots.resize(static_cast<size_t>(T));
    for (auto& s : d.slots) s = static_cast<int32_t>(rng() % 11) - 1;
    d.x = random_bf16(static_cast<size_t>(T * 512), rng());
    d.x3 = random_bf16(static_cast<size_t>(T * 1024), rng());
    for (int32_t m = 0; m < 4; ++m) d.base.push_back(random_bf16(static_cast<size_t>(T * f.shapes[m].out), rng()));
    put_i32(*f.be.gpu, sd.t, d.slots);
    put(*f.be.gpu, xa.t, d.x);
    put(*f.be.gpu, xb.t, d.x);
    put(*f.be.gpu, x3.t, d.x3);
    for (int32_t m = 0; m < 4; ++m) put(*f.be.gpu, od[static_cast<size_t>(m)].t, d.base[static_cast<size_t>(m)]);
    return d;
  };
  auto check = [&](const Data& d, const std::string& what) {
    for (int32_t m = 0; m < 4; ++m) {
      const auto& base = d.base[static_cast<size_t>(m)];
      const auto ref = f.reference(m, d.slots, m == 3 ? d.x3 : d.x, base);
      f.expect_matches(m, d.slots, ref, base, get(*f.be.gpu, od[static_cast<size_t>(m)].t), what);
    }
  };
  const LoraStats before = lora_stats(*f.gpu);
  for (int step = 1; step <= 6; ++step) {
    order = step == 4 ? std::vector<int32_t>{0, 2, 1, 3} : std::vector<int32_t>{0, 1, 2, 3};
    other_x = step == 5;
    const Data d = fresh();
    layout.step_id = static_cast<uint64_t>(step);
    enqueue();
    check(d, "step " + std::to_string(step));
  }
  const LoraStats after = lora_stats(*f.gpu);
  // Steps 2-4 launch and claim two modules each (step 4 in the order it learned);
  // step 5 claims none of what it launches ahead, and relearns the order.
  EXPECT_GE(after.ahead_claimed - before.ahead_claimed, 6u);
  EXPECT_GT(after.ahead_launched - before.ahead_launched, after.ahead_claimed - before.ahead_claimed);

  order = {0, 1, 2, 3};
  other_x = false;
  layout.step_id = 7;
  fresh();
  f.be.gpu->begin_capture();
  enqueue();
  Graph g = f.be.gpu->end_capture();
  EXPECT_GE(lora_stats(*f.gpu).ahead_claimed - after.ahead_claimed, 2u) << "no lookahead in the capture";
  for (int rep = 0; rep < 2; ++rep) {
    const Data d = fresh();
    f.be.gpu->launch(g);
    check(d, "replay " + std::to_string(rep));
  }
}

// A fused group on a step with adapters (LinearRegistry::forward_n): every module's
// prepare() with the same x before the group's one product, then every apply(). The
// deltas of all of them are computed beside the product, each in its own buffer, and
// match the CPU's: without lookahead, with it (claimed by the later prepare()s), with
// the late expand (the earlier modules are then computed anew), on a side stream per
// module (default) or on one, and in a captured graph replayed over new slots and
// inputs.
TEST(CudaLora, FusedGroupsPrepareEveryModuleFirst) {
  BANYAN_REQUIRE_GPU();
  Fixture f({{512, 1024}, {512, 136}, {512, 264}, {1024, 512}}, 9, 51);
  const int64_t T = 64;
  std::mt19937 rng(52);
  Dev xa = make(*f.be.gpu, DType::bf16, {T, 512}), x3 = make(*f.be.gpu, DType::bf16, {T, 1024});
  Dev sd = make(*f.be.gpu, DType::i32, {T});
  std::vector<Dev> od;
  for (int32_t m = 0; m < 4; ++m) od.push_back(make(*f.be.gpu, DType::bf16, {T, f.shapes[m].out}));
  core::StepArena arena(*f.be.gpu, size_t{1} << 20);
  core::StepLayout layout;
  core::ForwardBatch batch;
  core::LinearContext ctx{*f.be.gpu, arena, layout, batch, sd.t, true};
  auto enqueue = [&] {
    for (int32_t m = 0; m < 3; ++m) f.gpu->prepare(m, ctx, xa.t, od[static_cast<size_t>(m)].t);
    for (int32_t m = 0; m < 3; ++m) f.gpu->apply(m, ctx, xa.t, od[static_cast<size_t>(m)].t);
    f.gpu->prepare(3, ctx, x3.t, od[3].t);
    f.gpu->apply(3, ctx, x3.t, od[3].t);
  };
  struct Data {
    std::vector<int32_t> slots;
    std::vector<float> x, x3;
    std::vector<std::vector<float>> base;
  };
  auto fresh = [&] {
    Data d;
    d.slots.resize(static_cast<size_t>(T));
    for (auto& s : d.slots) s = static_cast<int32_t>(rng() % 11) - 1;
    d.x = random_bf16(static_cast<size_t>(T * 512), rng());
    d.x3 = random_bf16(static_cast<size_t>(T * 1024), rng());
    for (int32_t m = 0; m < 4; ++m) d.base.push_back(random_bf16(static_cast<size_t>(T * f.shapes[m].out), rng()));
    put_i32(*f.be.gpu, sd.t, d.slots);
    put(*f.be.gpu, xa.t, d.x);
    put(*f.be.gpu, x3.t, d.x3);
    for (int32_t m = 0; m < 4; ++m) put(*f.be.gpu, od[static_cast<size_t>(m)].t, d.base[static_cast<size_t>(m)]);
    return d;
  };
  auto check = [&](const Data& d, const std::string& what) {
    for (int32_t m = 0; m < 4; ++m) {
      const auto& base = d.base[static_cast<size_t>(m)];
      const auto ref = f.reference(m, d.slots, m == 3 ? d.x3 : d.x, base);
      f.expect_matches(m, d.slots, ref, base, get(*f.be.gpu, od[static_cast<size_t>(m)].t), what);
    }
  };
  struct Mode {
    LoraLookahead ahead;
    LoraLateExpand late;
    bool streams;
    const char* name;
  };
  for (const Mode& mode : {Mode{LoraLookahead::off, LoraLateExpand::off, true, "a stream per module"},
                           Mode{LoraLookahead::off, LoraLateExpand::off, false, "one side stream"},
                           Mode{LoraLookahead::always, LoraLateExpand::off, true, "lookahead"},
                           Mode{LoraLookahead::off, LoraLateExpand::always, true, "late expand"}}) {
    set_lora_lookahead(*f.gpu, mode.ahead);
    set_lora_late_expand(*f.gpu, mode.late);
    set_lora_group_streams(*f.gpu, mode.streams);
    for (int step = 0; step < 3; ++step) {
      layout.step_id = ++f.step;
      const Data d = fresh();
      enqueue();
      check(d, std::string(mode.name) + " step " + std::to_string(step));
    }
  }
  set_lora_late_expand(*f.gpu, LoraLateExpand::off);
  set_lora_lookahead(*f.gpu, LoraLookahead::off);
  set_lora_group_streams(*f.gpu, true);
  layout.step_id = ++f.step;
  fresh();
  enqueue();  // the eager step before the capture grows what the capture uses
  layout.step_id = ++f.step;
  f.be.gpu->begin_capture();
  enqueue();
  Graph g = f.be.gpu->end_capture();
  for (int rep = 0; rep < 2; ++rep) {
    const Data d = fresh();
    f.be.gpu->launch(g);
    check(d, "replay " + std::to_string(rep));
  }
  set_lora_lookahead(*f.gpu, LoraLookahead::distinct);  // the default
}

}  // namespace
}  // namespace banyan::kernels::cuda::test

#else
TEST(CudaLora, NeedsTheAdaptersLibrary) {
  GTEST_SKIP() << "the CUDA LoRA tests compare with core/adapters' CPU kernels, which this "
                  "(standalone kernels) build does not include";
}
#endif
