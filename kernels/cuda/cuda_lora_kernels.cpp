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
    follows_.resize(static_cast<size_t>(modules), -1);
    out_n_.resize(static_cast<size_t>(modules), 0);
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
    for (int i = 0; i < kAhead; ++i) {
      Pending& p = pending_[i];
      if (!(p.active && p.claimed && p.module == module && p.out == out.data && p.rows == T)) continue;
      p.active = false;
      BANYAN_CUDA_CHECK(cudaStreamWaitEvent(b_.stream(), join_[i].get(), 0));
      if (p.late) {
        // prepare() ran the shrink beside the base product: the expand adds into out
        // (its prologue prefetches B^T into L2 while the product finishes).
        lora_expand(scratch_[0].as<float>(), T, p.max_rank, device_table_.as<LoraEntry>() + index(module, 0), p.groups,
                    p.max_tiles, out.data, out.type() == DType::f32, out.shape[1], b_.stream(),
                    tile_rows(ctx, T, slots));
        last_out_ = static_cast<const char*>(out.data);
        last_out_bytes_ = out.nbytes();
        return;
      }
      // prepare() computed the deltas beside the base product: add them.
      lora_merge(out.data, out.type() == DType::f32, delta_[i].as<float>(), ctx.row_adapter_slots.as<const int32_t>(),
                 T, slots, out.shape[1], device_table_.as<LoraEntry>() + index(module, 0), b_.stream());
      last_out_ = static_cast<const char*>(out.data);  // written by the kernel just before
      last_out_bytes_ = out.nbytes();
      return;
    }
    drop_pending(false);
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
    reserve(scratch_[0], static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float));
    const LoraEntry* table = device_table_.as<LoraEntry>() + index(module, 0);
    const int rows_hint = row_slots.data == ctx.row_adapter_slots.data ? tile_rows(ctx, T, slots) : kLoraTileRows;
    lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups,
                g.max_tiles, scratch_[0].as<float>(), just_made || overlaps_last_out(x), b_.stream(), rows_hint);
    lora_expand(scratch_[0].as<float>(), T, max_rank, table, g.groups, g.max_tiles, out.data,
                out.type() == DType::f32, out.shape[1], b_.stream(), rows_hint);
    last_out_ = static_cast<const char*>(out.data);
    last_out_bytes_ = out.nbytes();
  }

  void prepare(int32_t module, const core::LinearContext& ctx, const Tensor& x, const Tensor& out) override {
    drop_unapplied(module, ctx, x);  // prepare()s whose apply() never came
    int32_t slots = 0;
    {
      std::lock_guard lk(mu_);
      if (module < 0 || module >= modules_ || active_[module] == 0) return;
      slots = slots_;
    }
    const int64_t T = x.shape[0];
    // Anything unusual is left to apply() (which also reports bad inputs).
    if (!overlap_ || T == 0 || x.type() != DType::bf16 || out.ndim != 2 || out.shape[0] != T ||
        ctx.row_adapter_slots.numel() != T || dense_runs(ctx, T, slots)) {
      drop_pending(false);
      return;
    }
    flush();
    const int64_t n = out.shape[1];
    const uint64_t step = ctx.layout.step_id;
    // Learn which module the model projects next from the same input (q -> k -> v,
    // gate -> up): the next prepare() of this step with the same x and rows.
    if (last_.step == step && last_.module >= 0 && last_.module != module)
      follows_[last_.module] = last_.x == x.data && last_.rows == T ? module : -1;
    last_ = Seen{module, x.data, T, step};
    out_n_[module] = n;
    const bool x_written = overlaps(out, x);  // this product changes x for the modules after it
    // Deltas launched ahead for this module (by the prepare() of a module before it
    // with the same x): claim them.
    for (int i = 0; i < kAhead; ++i) {
      Pending& p = pending_[i];
      if (!(p.active && !p.claimed && p.module == module && p.x == x.data && p.rows == T && p.step == step &&
            p.n == n))
        continue;
      p.claimed = true;
      p.out = out.data;
      if (x_written)
        for (int j = 0; j < kAhead; ++j)
          if (j != i && pending_[j].active && !pending_[j].claimed) drop(j);
      ++stats_.ahead_claimed;
      return;
    }
    // Deltas launched ahead for other modules were launched in vain; the claimed ones
    // left are of this module's fused group (their apply()s come after the product).
    for (int i = 0; i < kAhead; ++i)
      if (pending_[i].active && !pending_[i].claimed) drop(i);
    // The side stream starts where the main stream is (x is ready) and runs the
    // grouping, shrink and expand while the main stream runs the base product; then
    // those of the modules learned to follow with the same x (their products come
    // next, so their deltas are ready sooner and hide behind three products).
    const int rows_hint = tile_rows(ctx, T, slots);
    if (late_ == LoraLateExpand::always || (late_ == LoraLateExpand::shared && rows_hint >= 2)) {
      // Tiles of several rows (few adapters): only the shrink beside the product;
      // apply() runs the expand into out (no delta buffer, no merge). One module at a
      // time (the shrinks share the scratch): a fused group's earlier modules are
      // joined here, and their apply() computes them anew.
      drop_pending(false);
      int32_t max_rank = 0;
      {
        std::lock_guard lk(mu_);
        max_rank = max_rank_[module];
      }
      reserve(scratch_[0], static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float));
      const cudaStream_t side = start_side(0);
      bool just_made = false;
      const Groups& g = groups(ctx.row_adapter_slots, step, T, slots, just_made, side);
      const LoraEntry* table = device_table_.as<LoraEntry>() + index(module, 0);
      lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups, g.max_tiles,
                  scratch_[0].as<float>(), just_made, side, rows_hint);
      join_[0].record(side);
      pending_[0] = Pending{true, true, module, x.data, out.data, T, n, step, true, max_rank, g.groups, g.max_tiles};
      return;
    }
    // The buffers not held by deltas still to merge (a fused group's modules prepared
    // before this one), lowest first: this module's, then those launched ahead. The
    // same calls in the same order take the same buffers (a capture after an eager
    // step finds them grown).
    int idle[kAhead];
    int n_idle = 0;
    for (int i = 0; i < kAhead; ++i) {
      if (pending_[i].active && pending_[i].late) drop(i);  // its expand reads the scratch
      if (!pending_[i].active) idle[n_idle++] = i;
    }
    if (n_idle == 0) {  // a group of more than kAhead modules: the earlier ones are joined
      drop_pending(false);
      for (int i = 0; i < kAhead; ++i) idle[n_idle++] = i;
    }
    const bool ahead_rows = lookahead_ != LoraLookahead::off && T <= kAheadRows;
    const bool ahead = ahead_rows && !x_written && (lookahead_ == LoraLookahead::always || rows_hint <= 1);
    const int buffers = ahead ? n_idle : 1;
    // Outside a capture every free buffer grows to this module's size (so that a
    // capture after one step finds them large enough for any module launched ahead).
    const bool grow_all = ahead_rows && !capturing();
    for (int j = 0; j < (grow_all ? n_idle : 1); ++j)
      reserve(delta_[idle[j]], static_cast<size_t>(T) * static_cast<size_t>(n) * sizeof(float));
    // This module's work (and what it launches ahead) goes on the side stream of its
    // buffer, with that stream's scratch: the modules of a fused group run side by
    // side (their kernels are short and latency-bound), each beside the one product.
    const int si = group_streams_ ? idle[0] : 0;
    const cudaStream_t side = start_side(si);
    DeviceMemory& t_buf = scratch_[si];
    int32_t m = module;
    int64_t mn = n;
    for (int j = 0; j < buffers && m >= 0; ++j) {
      const int i = idle[j];
      int32_t max_rank = 0;
      {
        std::lock_guard lk(mu_);
        if (active_[m] > 0) max_rank = max_rank_[m];
      }
      const size_t t_bytes = static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float);
      if (j > 0) {
        // Buffers grow outside a capture only (else no lookahead for this module).
        const size_t d_bytes = static_cast<size_t>(T) * static_cast<size_t>(mn) * sizeof(float);
        if (max_rank == 0 || mn <= 0 ||
            ((d_bytes > delta_[i].size() || t_bytes > t_buf.size()) && capturing()))
          break;
        reserve(delta_[i], d_bytes);
      }
      reserve(t_buf, t_bytes);
      bool just_made = false;
      const Groups& g = groups(ctx.row_adapter_slots, step, T, slots, just_made, side);
      if (!just_made && g.made_on != side)  // grouped on another stream in this step
        BANYAN_CUDA_CHECK(cudaStreamWaitEvent(side, g.ready.get(), 0));
      const LoraEntry* table = device_table_.as<LoraEntry>() + index(m, 0);
      lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups, g.max_tiles,
                  t_buf.as<float>(), just_made, side, rows_hint);
      lora_expand_delta(t_buf.as<float>(), T, max_rank, table, g.groups, g.max_tiles, delta_[i].as<float>(), mn,
                        side, rows_hint);
      join_[i].record(side);
      pending_[i] = Pending{true, j == 0, m, x.data, j == 0 ? out.data : nullptr, T, mn, step, false, 0, {}, 0};
      stats_.ahead_launched += j > 0;
      m = follows_[m];
      if (m == module) break;
      if (m >= 0) mn = out_n_[m];
    }
  }

  void set_overlap(bool on) { overlap_ = on; }
  void set_late_expand(LoraLateExpand mode) { late_ = mode; }
  void set_lookahead(LoraLookahead mode) { lookahead_ = mode; }
  void set_group_streams(bool on) { group_streams_ = on; }
  LoraStats stats() const { return stats_; }

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
    cudaStream_t made_on = nullptr;  // the stream the grouping ran on
    Event ready;                     // recorded there after it
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
    if (!g.ready.get()) g.ready = Event::create();
    g.ready.record(stream);
    g.made_on = stream;
    just_made = true;
    return g;
  }

  // The most token rows of one slot in this step, from the batch's host copy of the
  // slots (kLoraTileRows when there is none, or the rows are not the token rows):
  // 1 (every row its own adapter) picks the kernels' variants for distinct adapters.
  // A hint only: a graph replayed over other slots stays right.
  int tile_rows(const core::LinearContext& ctx, int64_t T, int32_t slots) {
    if (ctx.row_adapter_slots.data != ctx.layout.adapter_slots.data ||
        static_cast<int64_t>(ctx.batch.adapter_slots.size()) != T)
      return kLoraTileRows;
    if (hint_.step != ctx.layout.step_id || hint_.rows != T || hint_.slots != slots) {
      hint_sorted_.assign(ctx.batch.adapter_slots.begin(), ctx.batch.adapter_slots.end());
      std::sort(hint_sorted_.begin(), hint_sorted_.end());
      int64_t most = 0;
      for (size_t i = 0; i < hint_sorted_.size();) {
        size_t j = i + 1;
        while (j < hint_sorted_.size() && hint_sorted_[j] == hint_sorted_[i]) ++j;
        if (hint_sorted_[i] >= 0 && hint_sorted_[i] < slots) most = std::max<int64_t>(most, static_cast<int64_t>(j - i));
        i = j;
      }
      hint_ = Hint{ctx.layout.step_id, T, slots, static_cast<int>(std::min<int64_t>(most, kLoraTileRows))};
    }
    return hint_.value;
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

  // Side work that will not be merged joins the main stream (a capture must not end
  // with work left on the side stream): the claimed entries only (a prepare() whose
  // apply() never came), or all.
  void drop(int i) {
    pending_[i].active = false;
    BANYAN_CUDA_CHECK(cudaStreamWaitEvent(b_.stream(), join_[i].get(), 0));
  }
  void drop_pending(bool claimed_only) {
    for (int i = 0; i < kAhead; ++i)
      if (pending_[i].active && (pending_[i].claimed || !claimed_only)) drop(i);
  }
  // The claimed entries whose apply() has not come, except those of the fused group
  // `module` belongs to (LinearRegistry::forward_n: every module's prepare() with the
  // same x before the group's one product, then every apply()).
  void drop_unapplied(int32_t module, const core::LinearContext& ctx, const Tensor& x) {
    const int64_t rows = x.ndim == 2 ? x.shape[0] : -1;
    for (int i = 0; i < kAhead; ++i) {
      const Pending& p = pending_[i];
      const bool group = p.module != module && p.x == x.data && p.rows == rows && p.step == ctx.layout.step_id;
      if (p.active && p.claimed && !group) drop(i);
    }
  }

  // The side stream starts where the main stream is (x is ready).
  cudaStream_t start_side(int s) {
    if (!side_[s].get()) side_[s] = Stream::create();
    if (!fork_.get()) {
      fork_ = Event::create();
      for (auto& e : join_) e = Event::create();
    }
    fork_.record(b_.stream());
    BANYAN_CUDA_CHECK(cudaStreamWaitEvent(side_[s].get(), fork_.get(), 0));
    return side_[s].get();
  }

  static bool overlaps(const Tensor& a, const Tensor& b) {
    const char* p = static_cast<const char*>(a.data);
    const char* q = static_cast<const char*>(b.data);
    return p < q + b.nbytes() && q < p + a.nbytes();
  }

  void sync_all() {
    b_.synchronize();
    for (const Stream& s : side_)
      if (s.get()) BANYAN_CUDA_CHECK(cudaStreamSynchronize(s.get()));
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
  DeviceMemory device_table_;
  // The overlapped path: deltas computed on the side stream, each in its own buffer
  // with its own join event: the module prepared last and the modules launched
  // ahead of their prepare() (kAhead - 1 at most, for steps of <= kAheadRows rows).
  static constexpr int kAhead = 3;
  static constexpr int64_t kAheadRows = 1024;
  struct Pending {
    bool active = false;
    bool claimed = false;         // its module's prepare() came (else: launched ahead)
    int32_t module = -1;
    const void* x = nullptr;
    const void* out = nullptr;    // once claimed
    int64_t rows = 0, n = 0;
    uint64_t step = 0;
    bool late = false;            // only the shrink ran ahead: apply() runs the expand
    int32_t max_rank = 0;         // (late) the expand's grid
    LoraGroups groups;            // (late) the grouping the shrink used
    int64_t max_tiles = 0;
  };
  struct Seen {
    int32_t module = -1;
    const void* x = nullptr;
    int64_t rows = 0;
    uint64_t step = 0;
  };
  bool overlap_ = true;
  LoraLateExpand late_ = LoraLateExpand::off;
  LoraLookahead lookahead_ = LoraLookahead::distinct;
  Pending pending_[kAhead];
  DeviceMemory delta_[kAhead];
  bool group_streams_ = true;
  DeviceMemory scratch_[kAhead];  // t of the work on side_[i]; [0] also the main stream's
  Stream side_[kAhead];
  Event fork_, join_[kAhead];
  Seen last_;                     // the last prepare() that computed or claimed deltas
  std::vector<int32_t> follows_;  // per module: the module prepared next with the same x, or -1
  std::vector<int64_t> out_n_;    // per module: out features at its last prepare()
  LoraStats stats_;
  const char* last_out_ = nullptr;  // the previous apply's output
  size_t last_out_bytes_ = 0;
  std::vector<Groups> cache_ = std::vector<Groups>(3);  // token rows, logits rows, masked rows
  DenseRuns dense_;
  DeviceMemory dense_scratch_;
  struct Hint {
    uint64_t step = 0;
    int64_t rows = -1;
    int32_t slots = 0;
    int value = kLoraTileRows;
  };
  Hint hint_;
  std::vector<int32_t> hint_sorted_;
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

void set_lora_late_expand(core::LoraKernels& kernels, LoraLateExpand mode) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "set_lora_late_expand: not the CUDA LoRA kernels");
  k->set_late_expand(mode);
}

void set_lora_group_streams(core::LoraKernels& kernels, bool on) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "set_lora_group_streams: not the CUDA LoRA kernels");
  k->set_group_streams(on);
}

void set_lora_lookahead(core::LoraKernels& kernels, LoraLookahead mode) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "set_lora_lookahead: not the CUDA LoRA kernels");
  k->set_lookahead(mode);
}

LoraStats lora_stats(const core::LoraKernels& kernels) {
  auto* k = dynamic_cast<const CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "lora_stats: not the CUDA LoRA kernels");
  return k->stats();
}

uint64_t flush_lora_tables(core::LoraKernels& kernels) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "flush_lora_tables: not the CUDA LoRA kernels");
  return k->flush();
}

}  // namespace banyan::kernels::cuda
