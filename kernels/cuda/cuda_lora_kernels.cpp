#include "kernels/cuda/cuda_lora_kernels.h"

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_resources.h"
#include "kernels/cuda/lora.h"

#include <banyan/error.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace banyan::kernels::cuda {

class CudaLoraKernels final : public core::LoraKernels {
 public:
  explicit CudaLoraKernels(CudaBackend& backend) : b_(backend) {}

  void resize(int32_t modules, int32_t slots) override {
    std::lock_guard lk(mu_);
    modules = std::max(modules, modules_);
    slots = std::max(slots, slots_);
    if (modules == modules_ && slots == slots_) return;
    std::vector<LoraEntry> table(static_cast<size_t>(modules) * static_cast<size_t>(slots));
    for (int32_t m = 0; m < modules_; ++m)
      std::copy_n(host_.begin() + static_cast<ptrdiff_t>(m) * slots_, slots_,
                  table.begin() + static_cast<ptrdiff_t>(m) * slots);
    host_.swap(table);
    max_rank_.resize(static_cast<size_t>(modules), 0);
    active_.resize(static_cast<size_t>(modules), 0);
    modules_ = modules;
    slots_ = slots;
    dirty_ = true;
    ++generation_;
  }

  int32_t slots() const override {
    std::lock_guard lk(mu_);
    return slots_;
  }

  void set(int32_t module, int32_t slot, const core::LoraSlotWeights& w) override {
    std::lock_guard lk(mu_);
    if (module < 0 || module >= modules_ || slot < 0 || slot >= slots_)
      throw Error(Code::internal, "lora kernels (cuda): entry (" + std::to_string(module) + ", " +
                                      std::to_string(slot) + ") is outside the tables (" +
                                      std::to_string(modules_) + " x " + std::to_string(slots_) + ")");
    if (w.rank > 0 && w.dtype != DType::bf16)
      throw Error(Code::unsupported, "lora (cuda): adapter weights must be BF16, not " +
                                         std::string(dtype_name(w.dtype)));
    if (w.rank > kLoraMaxRank)
      throw Error(Code::unsupported, "lora (cuda): rank " + std::to_string(w.rank) +
                                         " is above the kernels' largest, " + std::to_string(kLoraMaxRank));
    LoraEntry& e = host_[index(module, slot)];
    active_[module] += (w.rank > 0 ? 1 : 0) - (e.rank > 0 ? 1 : 0);
    e = LoraEntry{};
    if (w.rank > 0) {
      e.a = static_cast<const uint16_t*>(w.a);
      e.bt = static_cast<const uint16_t*>(w.bt);
      e.dora_scale = w.dora_scale;
      e.dora_bias = w.dora_bias;
      e.rank = w.rank;
      e.scaling = w.scaling;
    }
    if (w.rank > max_rank_[module]) {  // grids grow; they never shrink (a graph stays valid)
      max_rank_[module] = w.rank;
      ++generation_;
    }
    dirty_ = true;
  }

  void apply(int32_t module, const core::LinearContext& ctx, const Tensor& x, Tensor& out) override {
    int32_t max_rank = 0, slots = 0;
    {
      std::lock_guard lk(mu_);
      if (module < 0 || module >= modules_ || active_[module] == 0) return;
      max_rank = max_rank_[module];
      slots = slots_;
    }
    if (x.type() != DType::bf16 || (out.type() != DType::bf16 && out.type() != DType::f32))
      throw Error(Code::unsupported, "lora (cuda): x must be BF16 and out BF16 or F32, not " +
                                         std::string(dtype_name(x.type())) + " and " +
                                         std::string(dtype_name(out.type())));
    const int64_t T = x.shape[0];
    if (ctx.row_adapter_slots.numel() != T)
      throw Error(Code::internal, "lora (cuda): " + std::to_string(ctx.row_adapter_slots.numel()) +
                                      " row slots for " + std::to_string(T) + " rows");
    if (T == 0) return;
    if (pending_.active && pending_.module == module && pending_.out == out.data && pending_.rows == T) {
      // prepare() computed the deltas beside the base product: add them.
      pending_.active = false;
      BANYAN_CUDA_CHECK(cudaStreamWaitEvent(b_.stream(), join_.get(), 0));
      lora_merge(out.data, out.type() == DType::f32, delta_.as<float>(), ctx.row_adapter_slots.as<const int32_t>(),
                 T, slots, out.shape[1], device_table_.as<LoraEntry>() + index(module, 0), b_.stream());
      last_out_ = static_cast<const char*>(out.data);  // written by the kernel just before
      last_out_bytes_ = out.nbytes();
      return;
    }
    join_pending();
    flush();
    // Long runs of one adapter (prefill chunks) go through cuBLASLt; the kernels get
    // the other rows (a copy of the slots with the runs' rows at -1).
    Tensor row_slots = ctx.row_adapter_slots;
    if (const DenseRuns* d = dense_runs(ctx, T, slots)) {
      for (const auto& run : d->runs) run_dense(module, run, x, out);
      last_out_ = static_cast<const char*>(out.data);  // the products wrote out
      last_out_bytes_ = out.nbytes();
      if (d->rest == 0) return;
      row_slots = d->masked;
    }
    bool just_made = false;
    const Groups& g = groups(row_slots, ctx.layout.step_id, T, slots, just_made, b_.stream());
    reserve(scratch_, static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float));
    const LoraEntry* table = device_table_.as<LoraEntry>() + index(module, 0);
    lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups,
                g.max_tiles, scratch_.as<float>(), just_made || overlaps_last_out(x), b_.stream());
    lora_expand(scratch_.as<float>(), T, max_rank, table, g.groups, g.max_tiles, out.data,
                out.type() == DType::f32, out.shape[1], b_.stream());
    last_out_ = static_cast<const char*>(out.data);
    last_out_bytes_ = out.nbytes();
  }

  void prepare(int32_t module, const core::LinearContext& ctx, const Tensor& x, const Tensor& out) override {
    join_pending();
    if (!overlap_) return;
    int32_t max_rank = 0, slots = 0;
    {
      std::lock_guard lk(mu_);
      if (module < 0 || module >= modules_ || active_[module] == 0) return;
      max_rank = max_rank_[module];
      slots = slots_;
    }
    const int64_t T = x.shape[0];
    // Anything unusual is left to apply() (which also reports bad inputs).
    if (T == 0 || x.type() != DType::bf16 || out.ndim != 2 || out.shape[0] != T ||
        ctx.row_adapter_slots.numel() != T || dense_runs(ctx, T, slots))
      return;
    flush();
    const int64_t n = out.shape[1];
    reserve(scratch_, static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float));
    reserve(delta_, static_cast<size_t>(T) * static_cast<size_t>(n) * sizeof(float));
    if (!side_.get()) {
      side_ = Stream::create();
      fork_ = Event::create();
      join_ = Event::create();
    }
    // The side stream starts where the main stream is (x is ready) and runs the
    // grouping, shrink and expand while the main stream runs the base product.
    fork_.record(b_.stream());
    BANYAN_CUDA_CHECK(cudaStreamWaitEvent(side_.get(), fork_.get(), 0));
    bool just_made = false;
    const Groups& g = groups(ctx.row_adapter_slots, ctx.layout.step_id, T, slots, just_made, side_.get());
    const LoraEntry* table = device_table_.as<LoraEntry>() + index(module, 0);
    lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups,
                g.max_tiles, scratch_.as<float>(), just_made, side_.get());
    lora_expand_delta(scratch_.as<float>(), T, max_rank, table, g.groups, g.max_tiles, delta_.as<float>(), n,
                      side_.get());
    join_.record(side_.get());
    pending_ = Pending{true, module, out.data, T};
  }

  void set_overlap(bool on) { overlap_ = on; }

  // Graphs: staged table changes go up now (outside the capture); the generation
  // says whether graphs captured before are still valid.
  std::optional<uint64_t> graph_generation() override { return flush(); }

  uint64_t flush() {
    std::lock_guard lk(mu_);
    if (!dirty_) return generation_;
    not_capturing("uploading the LoRA tables");
    const size_t bytes = host_.size() * sizeof(LoraEntry);
    if (bytes > device_table_.size()) {
      sync_all();  // kernels in flight may still read the old table
      device_table_ = DeviceMemory(bytes);
      ++generation_;
    }
    b_.upload(device_table_.get(), host_.data(), bytes);
    dirty_ = false;
    return generation_;
  }

 private:
  struct Groups {
    uint64_t step = 0;
    unsigned long long capture = 0;  // the capture sequence it was recorded in (0: none)
    const void* slots = nullptr;
    int64_t rows = -1;
    int64_t max_tiles = 0;
    DeviceMemory memory;
    LoraGroups groups;
  };

  size_t index(int32_t module, int32_t slot) const {
    return static_cast<size_t>(module) * static_cast<size_t>(slots_) + static_cast<size_t>(slot);
  }

  // Whether x may be the output of the previous apply (then possibly written by
  // the kernel just before this shrink).
  bool overlaps_last_out(const Tensor& x) const {
    const char* p = static_cast<const char*>(x.data);
    return last_out_ && p < last_out_ + last_out_bytes_ && last_out_ < p + x.nbytes();
  }

  void not_capturing(const char* what) const {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    BANYAN_CUDA_CHECK(cudaStreamIsCapturing(b_.stream(), &status));
    if (status != cudaStreamCaptureStatusNone)
      throw Error(Code::internal, std::string("lora (cuda): ") + what +
                                      " is not allowed while a CUDA graph is being captured (run the "
                                      "same step once before capturing it)");
  }

  // The grouping of this step's rows for a slots array: computed by the first
  // module of the step that reads that array, reused by the others.
  const Groups& groups(const Tensor& row_slots, uint64_t step, int64_t T, int32_t slots,
                       bool& just_made, cudaStream_t stream) {
    const void* key = row_slots.data;
    // The entry of this slots array (the same buffers step after step, which a
    // graph captured after a first run relies on), else the older entry.
    Groups* found = nullptr;
    for (Groups& c : cache_)
      if (c.slots == key) found = &c;
    // A capture records its own grouping launch (the graph regroups on replay).
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    unsigned long long capture = 0;
    BANYAN_CUDA_CHECK(cudaStreamGetCaptureInfo(b_.stream(), &status, &capture));
    if (status != cudaStreamCaptureStatusActive) capture = 0;
    if (found && found->step == step && found->rows == T && found->capture == capture)
      return *found;
    if (!found) {
      found = &cache_[next_];
      next_ = (next_ + 1) % cache_.size();
    }
    Groups& g = *found;
    const size_t bytes = lora_group_bytes(T, slots);
    if (bytes > g.memory.size()) {
      not_capturing("growing the LoRA grouping buffers");
      sync_all();
      g.memory = DeviceMemory(std::max(bytes, g.memory.size() * 2));
      moved();
    }
    g.step = step;
    g.capture = capture;
    g.slots = key;
    g.rows = T;
    g.max_tiles = lora_max_tiles(T, slots);
    g.groups = lora_groups_at(g.memory.get(), T, slots);
    lora_group(row_slots.as<const int32_t>(), T, slots, g.groups, stream);
    just_made = true;
    return g;
  }

  // ------------------------------------------------------------ dense path ---
  struct Run {
    int32_t begin, end, slot;
  };
  struct DenseRuns {
    uint64_t step = 0;
    int64_t rows = -1;
    std::vector<Run> runs;
    int64_t rest = 0;  // rows with an adapter left to the kernels
    DeviceMemory memory;
    Tensor masked;     // i32 [rows]: the slots, -1 on the runs' rows
  };
  static constexpr int32_t kDenseRows = 128;   // a run at least this long takes cuBLASLt
  static constexpr int32_t kDenseChunk = 2048; // rows per product (bounds the DoRA scratch)

  // The runs of this step's token rows (the host copy of the slots is the batch's),
  // outside graph capture; null when there are none.
  const DenseRuns* dense_runs(const core::LinearContext& ctx, int64_t T, int32_t slots) {
    if (T < kDenseRows || ctx.row_adapter_slots.data != ctx.layout.adapter_slots.data ||
        static_cast<int64_t>(ctx.batch.adapter_slots.size()) != T || capturing())
      return nullptr;
    DenseRuns& d = dense_;
    if (d.step != ctx.layout.step_id || d.rows != T) {
      d.step = ctx.layout.step_id;
      d.rows = T;
      d.runs.clear();
      d.rest = 0;
      std::vector<int32_t> masked(ctx.batch.adapter_slots);
      for (int32_t i = 0; i < T;) {
        int32_t j = i + 1;
        while (j < T && masked[j] == masked[i]) ++j;
        if (masked[i] >= 0 && masked[i] < slots && j - i >= kDenseRows) {
          d.runs.push_back({i, j, masked[i]});
          std::fill(masked.begin() + i, masked.begin() + j, -1);
        }
        i = j;
      }
      for (int32_t v : masked) d.rest += v >= 0 && v < slots;
      if (!d.runs.empty()) {
        const size_t bytes = masked.size() * sizeof(int32_t);
        if (bytes > d.memory.size()) {
          sync_all();
          d.memory = DeviceMemory(std::max(bytes, d.memory.size() * 2));
        }
        b_.upload(d.memory.get(), masked.data(), bytes);
        d.masked = Tensor(d.memory.get(), DType::i32, {T}, b_.device());
      }
    }
    return d.runs.empty() ? nullptr : &d;
  }

  // out[run] += scaling · (x[run] · A^T) · B^T (or the DoRA form) with cuBLASLt.
  void run_dense(int32_t module, const Run& run, const Tensor& x, Tensor& out) {
    LoraEntry e;
    {
      std::lock_guard lk(mu_);
      e = host_[index(module, run.slot)];
    }
    if (e.rank == 0) return;
    const int64_t in = x.shape[1], n = out.shape[1], r = e.rank;
    const size_t es = dtype_size(out.type());
    const Device dev = b_.device();
    const size_t t_bytes = static_cast<size_t>(kDenseChunk) * static_cast<size_t>(r) * 2;
    const size_t d_bytes = e.dora_scale ? static_cast<size_t>(kDenseChunk) * static_cast<size_t>(n) * 2 : 0;
    reserve(dense_scratch_, t_bytes + d_bytes);
    Tensor a(const_cast<uint16_t*>(e.a), DType::bf16, {r, in}, dev);
    Tensor bt(const_cast<uint16_t*>(e.bt), DType::bf16, {r, n}, dev);
    for (int64_t c = run.begin; c < run.end; c += kDenseChunk) {
      const int64_t len = std::min<int64_t>(kDenseChunk, run.end - c);
      Tensor xr(static_cast<char*>(x.data) + c * in * 2, DType::bf16, {len, in}, dev);
      Tensor orow(static_cast<char*>(out.data) + static_cast<size_t>(c * n) * es, out.type(), {len, n}, dev);
      Tensor t(dense_scratch_.get(), DType::bf16, {len, r}, dev);
      b_.matmul(xr, a, false, nullptr, t);
      if (e.scaling != 1.0f) lora_scale_bf16(static_cast<uint16_t*>(t.data), len * r, e.scaling, b_.stream());
      if (!e.dora_scale) {
        b_.matmul(t, bt, true, nullptr, orow, true);
      } else {
        Tensor delta(dense_scratch_.as<char>() + t_bytes, DType::bf16, {len, n}, dev);
        b_.matmul(t, bt, true, nullptr, delta);
        lora_dora_combine(orow.data, out.type() == DType::f32, static_cast<uint16_t*>(delta.data), len, n,
                          e.dora_scale, e.dora_bias, b_.stream());
      }
    }
  }

  // A prepare() whose apply() never came: its side work joins the main stream (a
  // capture must not end with work left on the side stream).
  void join_pending() {
    if (!pending_.active) return;
    pending_.active = false;
    BANYAN_CUDA_CHECK(cudaStreamWaitEvent(b_.stream(), join_.get(), 0));
  }

  void sync_all() {
    b_.synchronize();
    if (side_.get()) BANYAN_CUDA_CHECK(cudaStreamSynchronize(side_.get()));
  }

  // Grows a scratch buffer (outside graph capture only).
  void reserve(DeviceMemory& m, size_t bytes) {
    if (bytes <= m.size()) return;
    not_capturing("growing the LoRA scratch");
    sync_all();
    m = DeviceMemory(std::max(bytes, m.size() * 2));
    moved();
  }

  // Memory a captured graph may use moved: its captures are stale.
  void moved() {
    std::lock_guard lk(mu_);
    ++generation_;
  }

  bool capturing() const {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    BANYAN_CUDA_CHECK(cudaStreamIsCapturing(b_.stream(), &status));
    return status != cudaStreamCaptureStatusNone;
  }

  CudaBackend& b_;
  mutable std::mutex mu_;  // the host tables (set() may run on another thread)
  std::vector<LoraEntry> host_;   // [module][slot]
  std::vector<int32_t> max_rank_;  // per module, over every entry ever set
  std::vector<int32_t> active_;    // per module: entries with rank > 0
  int32_t modules_ = 0, slots_ = 0;
  bool dirty_ = false;
  uint64_t generation_ = 1;
  DeviceMemory device_table_, scratch_, delta_;
  // The overlapped path: deltas of the module prepared last, on the side stream.
  struct Pending {
    bool active = false;
    int32_t module = -1;
    const void* out = nullptr;
    int64_t rows = 0;
  };
  bool overlap_ = true;
  Pending pending_;
  Stream side_;
  Event fork_, join_;
  const char* last_out_ = nullptr;  // the previous apply's output
  size_t last_out_bytes_ = 0;
  std::vector<Groups> cache_ = std::vector<Groups>(3);  // token rows, logits rows, masked rows
  DenseRuns dense_;
  DeviceMemory dense_scratch_;
  size_t next_ = 0;
};

std::unique_ptr<core::LoraKernels> make_cuda_lora_kernels(core::Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda)
    throw Error(Code::invalid_argument, "lora (cuda): backend " + backend.name() + " is not a CUDA backend");
  return std::make_unique<CudaLoraKernels>(*cuda);
}

void set_lora_overlap(core::LoraKernels& kernels, bool on) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "set_lora_overlap: not the CUDA LoRA kernels");
  k->set_overlap(on);
}

uint64_t flush_lora_tables(core::LoraKernels& kernels) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "flush_lora_tables: not the CUDA LoRA kernels");
  return k->flush();
}

}  // namespace banyan::kernels::cuda
