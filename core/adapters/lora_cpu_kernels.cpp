// LoRA on the CPU. A step's rows are grouped by adapter slot, each group cut into
// tiles of up to kTile rows; the tiles run in parallel (OpenMP). In a tile, the
// shrink computes 4 rows x 4 rows of A per pass and the expand 4 rows x 64 output
// columns per pass, in registers, so every load of x, A or B^T feeds several
// multiply-adds; a prefill group streams its adapter once per tile and a decode row
// reads exactly its own adapter's r·(in + out) weights. Weights are F32 or BF16
// (converted on the fly). The DoRA rescale is fused into the expand's store.
#include "core/adapters/lora_kernels.h"

#include "core/runtime/step_arena.h"
#include "kernels/cpu/convert.h"

#include <banyan/error.h>

#include <omp.h>

#if defined(BANYAN_WITH_CUDA)
#include "kernels/cuda/cuda_lora_kernels.h"
#endif

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

// sums[m][q] = x_m · a_q for MT rows x_m and KT rows a_q of A (length n each):
// each load of x or A feeds several multiply-adds, all in registers.
template <int MT, int KT, class WT>
inline void dots(const float* const* x, const WT* a, int64_t lda, int64_t n, float (*sums)[KT]) {
  float acc[MT][KT][kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    float av[KT][kLanes];
    for (int q = 0; q < KT; ++q)
      for (int j = 0; j < kLanes; ++j) av[q][j] = load(a + q * lda, i + j);
    for (int m = 0; m < MT; ++m) {
      float xv[kLanes];
      for (int j = 0; j < kLanes; ++j) xv[j] = x[m][i + j];
      for (int q = 0; q < KT; ++q)
        for (int j = 0; j < kLanes; ++j) acc[m][q][j] += av[q][j] * xv[j];
    }
  }
  for (int m = 0; m < MT; ++m)
    for (int q = 0; q < KT; ++q) {
      float s = 0;
      for (int j = 0; j < kLanes; ++j) s += acc[m][q][j];
      for (int64_t k = i; k < n; ++k) s += load(a + q * lda, k) * x[m][k];
      sums[m][q] = s;
    }
}

// t[m * r + k] = scaling * x_m · A_k for the tile's MT rows.
template <int MT, class WT>
inline void shrink(const float* const* x, const LoraSlotWeights& w, int64_t in, float* t) {
  const auto* A = static_cast<const WT*>(w.a);
  const int r = w.rank;
  int k = 0;
  for (; MT > 1 && k + 4 <= r; k += 4) {
    float sums[MT][4];
    dots<MT, 4>(x, A + static_cast<int64_t>(k) * in, in, in, sums);
    for (int m = 0; m < MT; ++m)
      for (int q = 0; q < 4; ++q) t[m * r + k + q] = sums[m][q] * w.scaling;
  }
  for (; k < r; ++k) {
    float sums[MT][1];
    dots<MT, 1>(x, A + static_cast<int64_t>(k) * in, in, in, sums);
    for (int m = 0; m < MT; ++m) t[m * r + k] = sums[m][0] * w.scaling;
  }
}

// o_m[j] += sum_k t[m * r + k] * Bt[k][j], then the DoRA rescale, for the MT rows,
// CW columns (CW a multiple of kLanes, or a tail) at a time in registers.
template <int MT, int CW, class WT>
inline void expand_cols(float* const* o, const LoraSlotWeights& w, const float* t, int64_t out,
                        int64_t j0) {
  const auto* Bt = static_cast<const WT*>(w.bt);
  const int r = w.rank;
  float acc[MT][CW];
  for (int m = 0; m < MT; ++m)
    for (int c = 0; c < CW; ++c) acc[m][c] = 0;
  for (int k = 0; k < r; ++k) {
    const WT* b = Bt + static_cast<int64_t>(k) * out + j0;
    float bv[CW];
    for (int c = 0; c < CW; ++c) bv[c] = load(b, c);
    for (int m = 0; m < MT; ++m) {
      const float tv = t[m * r + k];
      for (int c = 0; c < CW; ++c) acc[m][c] += tv * bv[c];
    }
  }
  for (int m = 0; m < MT; ++m) {
    float* om = o[m] + j0;
    if (w.dora_scale) {
      const float* sc = w.dora_scale + j0;
      for (int c = 0; c < CW; ++c)
        om[c] = sc[c] * (om[c] + acc[m][c]) + (w.dora_bias ? w.dora_bias[j0 + c] : 0.0f);
    } else {
      for (int c = 0; c < CW; ++c) om[c] += acc[m][c];
    }
  }
}

// One row (decode): B^T streams once, row by row, into the output row (in L1).
template <class WT>
inline void expand_row(float* o, const LoraSlotWeights& w, const float* t, int64_t out) {
  const auto* Bt = static_cast<const WT*>(w.bt);
  for (int k = 0; k < w.rank; ++k) {
    const WT* b = Bt + static_cast<int64_t>(k) * out;
    const float tv = t[k];
    for (int64_t j = 0; j < out; ++j) o[j] += tv * load(b, j);
  }
  if (w.dora_scale) {
    for (int64_t j = 0; j < out; ++j)
      o[j] = w.dora_scale[j] * o[j] + (w.dora_bias ? w.dora_bias[j] : 0.0f);
  }
}

template <int MT, class WT>
inline void expand(float* const* o, const LoraSlotWeights& w, const float* t, int64_t out) {
  if constexpr (MT == 1) {
    expand_row<WT>(o[0], w, t, out);
    return;
  }
  constexpr int kCols = 4 * kLanes;
  int64_t j = 0;
  for (; j + kCols <= out; j += kCols) expand_cols<MT, kCols, WT>(o, w, t, out, j);
  for (; j + kLanes <= out; j += kLanes) expand_cols<MT, kLanes, WT>(o, w, t, out, j);
  for (; j < out; ++j) expand_cols<MT, 1, WT>(o, w, t, out, j);
}

struct Tile {
  int32_t slot;
  int32_t count;
  int32_t rows[kTile];
};

// The tile's rows: o_m += scaling · (x_m · A^T) · B^T, then the DoRA rescale.
// t: scratch [kTile * rank].
template <class WT>
void tile_kernel(const Tile& tile, const LoraSlotWeights& w, const float* X, float* O, int64_t in,
                 int64_t out, float* t) {
  const float* x[kTile];
  float* o[kTile];
  for (int m = 0; m < tile.count; ++m) {
    x[m] = X + static_cast<int64_t>(tile.rows[m]) * in;
    o[m] = O + static_cast<int64_t>(tile.rows[m]) * out;
  }
  if (tile.count == kTile) {
    shrink<kTile, WT>(x, w, in, t);
    expand<kTile, WT>(o, w, t, out);
  } else {
    for (int m = 0; m < tile.count; ++m) {
      shrink<1, WT>(x + m, w, in, t + m * w.rank);
      expand<1, WT>(o + m, w, t + m * w.rank, out);
    }
  }
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
#if defined(BANYAN_WITH_CUDA)
  if (backend.device().type == DeviceType::cuda) return kernels::cuda::make_cuda_lora_kernels(backend);
#endif
  throw Error(Code::unsupported, "LoRA adapters on " + backend.name() +
                                     ": no LoRA kernels are built for this device yet");
}

}  // namespace banyan::core
