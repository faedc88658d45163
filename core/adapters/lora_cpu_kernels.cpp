// LoRA on the CPU: rows grouped by adapter slot; a group of many rows (prefill) runs
// as two BLAS GEMMs (shrink, then expand accumulating into out), the rows of small
// groups (decode) run in parallel with vectorized dot products and axpys.
#include "core/adapters/lora_kernels.h"

#include "core/runtime/step_arena.h"

#include <banyan/error.h>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

namespace banyan::core {
namespace {

// Rows of one slot at least this many go through GEMMs.
constexpr int32_t kGemmRows = 8;

struct Group {
  int32_t slot;
  int32_t begin;  // into Plan::rows
  int32_t count;
  bool contiguous;
};

struct Plan {
  std::vector<int32_t> slots;  // the row slots it was made from
  std::vector<int32_t> rows;   // row indices, grouped by slot, ascending within a group
  std::vector<Group> groups;
};

void make_plan(const int32_t* slots, int32_t T, Plan& p) {
  p.slots.assign(slots, slots + T);
  p.rows.clear();
  p.groups.clear();
  std::vector<std::pair<int32_t, int32_t>> order;  // (slot, row)
  order.reserve(static_cast<size_t>(T));
  for (int32_t t = 0; t < T; ++t)
    if (slots[t] >= 0) order.emplace_back(slots[t], t);
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && order[j].first == order[i].first) ++j;
    Group g{order[i].first, static_cast<int32_t>(p.rows.size()), static_cast<int32_t>(j - i), true};
    for (size_t k = i; k < j; ++k) {
      p.rows.push_back(order[k].second);
      if (k > i && order[k].second != order[k - 1].second + 1) g.contiguous = false;
    }
    p.groups.push_back(g);
    i = j;
  }
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

inline void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline void dora_rescale(float* o, const LoraSlotWeights& w, int64_t n) {
  if (!w.dora_scale) return;
  if (w.dora_bias) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) o[j] = w.dora_scale[j] * o[j] + w.dora_bias[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) o[j] = w.dora_scale[j] * o[j];
  }
}

// One row: o += scaling * (x·A^T)·B^T, then the DoRA rescale. t: scratch [rank].
void row_kernel(const float* x, float* o, const LoraSlotWeights& w, int64_t in, int64_t out,
                float* t) {
  const auto* A = static_cast<const float*>(w.a);
  const auto* Bt = static_cast<const float*>(w.bt);
  for (int32_t k = 0; k < w.rank; ++k) t[k] = dot(x, A + k * in, in) * w.scaling;
  for (int32_t k = 0; k < w.rank; ++k) axpy(o, t[k], Bt + k * out, out);
  dora_rescale(o, w, out);
}

class CpuLoraKernels final : public LoraKernels {
 public:
  void resize(int32_t modules, int32_t slots) override {
    modules = std::max<int32_t>(modules, static_cast<int32_t>(tables_.size()));
    slots = std::max(slots, slots_);
    for (auto& t : tables_) t.resize(static_cast<size_t>(slots));
    while (static_cast<int32_t>(tables_.size()) < modules)
      tables_.emplace_back(static_cast<size_t>(slots));
    std::vector<std::atomic<int32_t>> active(static_cast<size_t>(modules));
    for (size_t m = 0; m < active_.size(); ++m) active[m].store(active_[m].load());
    active_.swap(active);
    slots_ = slots;
  }

  int32_t slots() const override { return slots_; }

  void set(int32_t module, int32_t slot, const LoraSlotWeights& w) override {
    if (module < 0 || module >= static_cast<int32_t>(tables_.size()) || slot < 0 || slot >= slots_)
      throw Error(Code::internal, "lora kernels: entry (" + std::to_string(module) + ", " +
                                      std::to_string(slot) + ") is outside the tables");
    LoraSlotWeights& e = tables_[module][slot];
    active_[module] += (w.rank > 0 ? 1 : 0) - (e.rank > 0 ? 1 : 0);
    e = w;
  }

  void apply(int32_t module, const LinearContext& ctx, const Tensor& x, Tensor& out) override {
    if (module < 0 || module >= static_cast<int32_t>(tables_.size()) || active_[module].load() == 0)
      return;
    if (x.type() != DType::f32 || out.type() != DType::f32)
      throw Error(Code::unsupported, "lora (cpu): activations must be F32");
    const int32_t T = static_cast<int32_t>(x.shape[0]);
    if (ctx.row_adapter_slots.numel() != T)
      throw Error(Code::internal, "lora (cpu): " + std::to_string(ctx.row_adapter_slots.numel()) +
                                      " row slots for " + std::to_string(T) + " rows");
    const auto* slots = ctx.row_adapter_slots.as<const int32_t>();
    if (plan_.slots.size() != static_cast<size_t>(T) ||
        std::memcmp(plan_.slots.data(), slots, sizeof(int32_t) * static_cast<size_t>(T)) != 0)
      make_plan(slots, T, plan_);
    const int64_t in = x.shape[1], n_out = out.shape[1];
    const auto* X = x.as<const float>();
    auto* O = out.as<float>();
    const std::vector<LoraSlotWeights>& table = tables_[module];

    small_.clear();
    int32_t max_rank = 0;
    for (const Group& g : plan_.groups) {
      if (g.slot >= slots_) continue;
      const LoraSlotWeights& w = table[g.slot];
      if (w.rank <= 0) continue;
      if (g.count >= kGemmRows) {
        gemm_group(g, w, X, O, in, n_out, ctx.arena);
      } else {
        for (int32_t i = 0; i < g.count; ++i) small_.push_back({plan_.rows[g.begin + i], g.slot});
        max_rank = std::max(max_rank, w.rank);
      }
    }
    if (small_.empty()) return;
    const int64_t n = static_cast<int64_t>(small_.size());
    auto* scratch = static_cast<float*>(
        ctx.arena.allocate(sizeof(float) * static_cast<size_t>(omp_get_max_threads()) * max_rank));
    const int64_t work = n * max_rank * (in + n_out);
#pragma omp parallel for schedule(dynamic, 1) if (work > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
      const auto [row, slot] = small_[static_cast<size_t>(i)];
      row_kernel(X + row * in, O + row * n_out, table[slot], in, n_out,
                 scratch + static_cast<int64_t>(omp_get_thread_num()) * max_rank);
    }
  }

 private:
  void gemm_group(const Group& g, const LoraSlotWeights& w, const float* X, float* O, int64_t in,
                  int64_t n_out, StepArena& arena) {
    const int n = g.count, r = w.rank;
    const int32_t* rows = plan_.rows.data() + g.begin;
    const auto* A = static_cast<const float*>(w.a);
    const auto* Bt = static_cast<const float*>(w.bt);
    auto* tmp = static_cast<float*>(arena.allocate(sizeof(float) * static_cast<size_t>(n) * r));
    const float* xs = X + static_cast<int64_t>(rows[0]) * in;
    float* os = O + static_cast<int64_t>(rows[0]) * n_out;
    float* xg = nullptr;
    float* og = nullptr;
    if (!g.contiguous) {  // gather the rows, run, scatter back
      xg = static_cast<float*>(arena.allocate(sizeof(float) * static_cast<size_t>(n * in)));
      og = static_cast<float*>(arena.allocate(sizeof(float) * static_cast<size_t>(n * n_out)));
      for (int i = 0; i < n; ++i) {
        std::memcpy(xg + i * in, X + rows[i] * in, sizeof(float) * in);
        std::memcpy(og + i * n_out, O + rows[i] * n_out, sizeof(float) * n_out);
      }
      xs = xg;
      os = og;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, static_cast<int>(in), 1.0f, xs,
                static_cast<int>(in), A, static_cast<int>(in), 0.0f, tmp, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, static_cast<int>(n_out), r,
                w.scaling, tmp, r, Bt, static_cast<int>(n_out), 1.0f, os, static_cast<int>(n_out));
    if (w.dora_scale) {
#pragma omp parallel for if (static_cast<int64_t>(n) * n_out > (1 << 16))
      for (int i = 0; i < n; ++i) dora_rescale(os + static_cast<int64_t>(i) * n_out, w, n_out);
    }
    if (og)
      for (int i = 0; i < n; ++i) std::memcpy(O + rows[i] * n_out, og + i * n_out, sizeof(float) * n_out);
  }

  std::vector<std::vector<LoraSlotWeights>> tables_;  // [module][slot]
  std::vector<std::atomic<int32_t>> active_;          // per module: entries with rank > 0
  int32_t slots_ = 0;
  Plan plan_;
  std::vector<std::pair<int32_t, int32_t>> small_;  // (row, slot) of small groups
};

}  // namespace

std::unique_ptr<LoraKernels> make_cpu_lora_kernels() { return std::make_unique<CpuLoraKernels>(); }

std::unique_ptr<LoraKernels> make_lora_kernels(Backend& backend) {
  if (backend.device().type == DeviceType::cpu) return make_cpu_lora_kernels();
  throw Error(Code::unsupported, "LoRA adapters on " + backend.name() +
                                     ": no LoRA kernels are built for this device yet");
}

}  // namespace banyan::core
