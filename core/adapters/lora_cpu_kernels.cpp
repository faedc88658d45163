// LoRA on the CPU. A step's rows are grouped by adapter slot, each group cut into
// tiles of up to kTile rows; the tiles run in parallel (OpenMP). In a tile, each row
// of A and of B^T is read once for all the tile's rows (shrink: kTile dot products
// per A row; expand: kTile axpys per B^T row), so a prefill group streams its adapter
// once per tile and a decode row reads exactly its own adapter's r·(in + out)
// weights. Weights are F32 or BF16 (converted on the fly, vectorized).
#include "core/adapters/lora_kernels.h"

#include "core/runtime/step_arena.h"
#include "kernels/cpu/convert.h"

#include <banyan/error.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

namespace banyan::core {
namespace {

constexpr int kTile = 4;    // rows of one slot that share each read of A and B^T
constexpr int kLanes = 16;  // f32 accumulators per dot product (one 512-bit vector)

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return kernels::cpu::bf16_to_f32(p[i]); }

// sums[m] = x_m · a for the MT rows x_m (length n each).
template <int MT, class WT>
inline void dots(const float* const* x, const WT* a, int64_t n, float* sums) {
  float acc[MT][kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    float av[kLanes];
    for (int j = 0; j < kLanes; ++j) av[j] = load(a, i + j);
    for (int m = 0; m < MT; ++m)
      for (int j = 0; j < kLanes; ++j) acc[m][j] += av[j] * x[m][i + j];
  }
  for (int m = 0; m < MT; ++m) {
    float s = 0;
    for (int j = 0; j < kLanes; ++j) s += acc[m][j];
    for (int64_t k = i; k < n; ++k) s += load(a, k) * x[m][k];
    sums[m] = s;
  }
}

template <class WT>
inline void axpy(float* y, float s, const WT* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += s * load(b, i);
}

inline void dora_rescale(float* o, const LoraSlotWeights& w, int64_t n) {
  if (!w.dora_scale) return;
  if (w.dora_bias) {
    for (int64_t j = 0; j < n; ++j) o[j] = w.dora_scale[j] * o[j] + w.dora_bias[j];
  } else {
    for (int64_t j = 0; j < n; ++j) o[j] = w.dora_scale[j] * o[j];
  }
}

struct Tile {
  int32_t slot;
  int32_t count;
  int32_t rows[kTile];
};

// o_m += scaling · (x_m · A^T) · B^T for the tile's rows, then the DoRA rescale.
// t: scratch [kTile * rank].
template <class WT>
void tile_kernel(const Tile& tile, const LoraSlotWeights& w, const float* X, float* O, int64_t in,
                 int64_t out, float* t) {
  const auto* A = static_cast<const WT*>(w.a);
  const auto* Bt = static_cast<const WT*>(w.bt);
  const int n = tile.count, r = w.rank;
  const float* x[kTile];
  float* o[kTile];
  for (int m = 0; m < n; ++m) {
    x[m] = X + static_cast<int64_t>(tile.rows[m]) * in;
    o[m] = O + static_cast<int64_t>(tile.rows[m]) * out;
  }
  float sums[kTile];
  for (int k = 0; k < r; ++k) {
    const WT* a = A + static_cast<int64_t>(k) * in;
    if (n == kTile) {
      dots<kTile>(x, a, in, sums);
    } else {
      for (int m = 0; m < n; ++m) dots<1>(x + m, a, in, sums + m);
    }
    for (int m = 0; m < n; ++m) t[m * r + k] = sums[m] * w.scaling;
  }
  for (int k = 0; k < r; ++k) {
    const WT* b = Bt + static_cast<int64_t>(k) * out;
    for (int m = 0; m < n; ++m) axpy(o[m], t[m * r + k], b, out);
  }
  for (int m = 0; m < n; ++m) dora_rescale(o[m], w, out);
}

class CpuLoraKernels final : public LoraKernels {
 public:
  void resize(int32_t modules, int32_t slots) override {
    modules = std::max<int32_t>(modules, static_cast<int32_t>(tables_.size()));
    slots = std::max(slots, slots_);
    for (auto& t : tables_) t.resize(static_cast<size_t>(slots));
    while (static_cast<int32_t>(tables_.size()) < modules) tables_.emplace_back(static_cast<size_t>(slots));
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
    if (w.rank > 0 && w.dtype != DType::f32 && w.dtype != DType::bf16)
      throw Error(Code::unsupported, "lora (cpu): adapter weights must be F32 or BF16");
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
    make_tiles(ctx.row_adapter_slots.as<const int32_t>(), T);
    const std::vector<LoraSlotWeights>& table = tables_[module];
    // The tiles whose slot adapts this module.
    work_.clear();
    int32_t max_rank = 0;
    for (size_t i = 0; i < tiles_.size(); ++i) {
      const int32_t s = tiles_[i].slot;
      if (s < slots_ && table[s].rank > 0) {
        work_.push_back(static_cast<int32_t>(i));
        max_rank = std::max(max_rank, table[s].rank);
      }
    }
    if (work_.empty()) return;
    const int64_t in = x.shape[1], n_out = out.shape[1];
    const auto* X = x.as<const float>();
    auto* O = out.as<float>();
    const int threads = omp_get_max_threads();
    auto* scratch = static_cast<float*>(
        ctx.arena.allocate(sizeof(float) * static_cast<size_t>(threads) * kTile * max_rank));
    const int64_t n = static_cast<int64_t>(work_.size());
    const int64_t flops = static_cast<int64_t>(rows_) * max_rank * (in + n_out);
#pragma omp parallel for schedule(dynamic, 1) if (flops > (1 << 18) && n > 1)
    for (int64_t i = 0; i < n; ++i) {
      const Tile& tile = tiles_[static_cast<size_t>(work_[static_cast<size_t>(i)])];
      const LoraSlotWeights& w = table[tile.slot];
      float* t = scratch + static_cast<int64_t>(omp_get_thread_num()) * kTile * max_rank;
      if (w.dtype == DType::bf16)
        tile_kernel<uint16_t>(tile, w, X, O, in, n_out, t);
      else
        tile_kernel<float>(tile, w, X, O, in, n_out, t);
    }
  }

 private:
  // Groups the rows by slot (ascending rows within a slot) and cuts the groups
  // into tiles; reused while the slots are the same (every linear of a step).
  void make_tiles(const int32_t* slots, int32_t T) {
    if (last_.size() == static_cast<size_t>(T) &&
        std::memcmp(last_.data(), slots, sizeof(int32_t) * static_cast<size_t>(T)) == 0)
      return;
    last_.assign(slots, slots + T);
    order_.clear();
    for (int32_t t = 0; t < T; ++t)
      if (slots[t] >= 0) order_.emplace_back(slots[t], t);
    std::sort(order_.begin(), order_.end());
    tiles_.clear();
    rows_ = static_cast<int32_t>(order_.size());
    for (size_t i = 0; i < order_.size(); ++i) {
      if (tiles_.empty() || tiles_.back().slot != order_[i].first || tiles_.back().count == kTile)
        tiles_.push_back({order_[i].first, 0, {}});
      Tile& tile = tiles_.back();
      tile.rows[tile.count++] = order_[i].second;
    }
  }

  std::vector<std::vector<LoraSlotWeights>> tables_;  // [module][slot]
  std::vector<std::atomic<int32_t>> active_;          // per module: entries with rank > 0
  int32_t slots_ = 0;
  std::vector<int32_t> last_;                        // the row slots the tiles are for
  std::vector<std::pair<int32_t, int32_t>> order_;   // (slot, row)
  std::vector<Tile> tiles_;
  std::vector<int32_t> work_;
  int32_t rows_ = 0;
};

}  // namespace

std::unique_ptr<LoraKernels> make_cpu_lora_kernels() { return std::make_unique<CpuLoraKernels>(); }

std::unique_ptr<LoraKernels> make_lora_kernels(Backend& backend) {
  if (backend.device().type == DeviceType::cpu) return make_cpu_lora_kernels();
  throw Error(Code::unsupported, "LoRA adapters on " + backend.name() +
                                     ": no LoRA kernels are built for this device yet");
}

}  // namespace banyan::core
