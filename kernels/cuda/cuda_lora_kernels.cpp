#include "kernels/cuda/cuda_lora_kernels.h"

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_resources.h"
#include "kernels/cuda/lora.h"

#include <banyan/error.h>

#include <algorithm>
#include <mutex>
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
    flush();
    const Groups& g = groups(ctx, T, slots);
    const size_t t_bytes = static_cast<size_t>(T) * static_cast<size_t>(max_rank) * sizeof(float);
    if (t_bytes > scratch_.size()) {
      not_capturing("growing the LoRA scratch");
      b_.synchronize();
      scratch_ = DeviceMemory(std::max(t_bytes, scratch_.size() * 2));
    }
    const LoraEntry* table = device_table_.as<LoraEntry>() + index(module, 0);
    lora_shrink(static_cast<const uint16_t*>(x.data), T, x.shape[1], table, max_rank, g.groups,
                g.max_tiles, scratch_.as<float>(), b_.stream());
    lora_expand(scratch_.as<float>(), T, max_rank, table, g.groups, g.max_tiles, out.data,
                out.type() == DType::f32, out.shape[1], b_.stream());
  }

  uint64_t flush() {
    std::lock_guard lk(mu_);
    if (!dirty_) return generation_;
    not_capturing("uploading the LoRA tables");
    const size_t bytes = host_.size() * sizeof(LoraEntry);
    if (bytes > device_table_.size()) {
      b_.synchronize();  // kernels in flight may still read the old table
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

  void not_capturing(const char* what) const {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    BANYAN_CUDA_CHECK(cudaStreamIsCapturing(b_.stream(), &status));
    if (status != cudaStreamCaptureStatusNone)
      throw Error(Code::internal, std::string("lora (cuda): ") + what +
                                      " is not allowed while a CUDA graph is being captured (run the "
                                      "same step once before capturing it)");
  }

  // The grouping of this step's rows for ctx's slots array: computed by the first
  // module of the step that reads that array, reused by the others.
  const Groups& groups(const core::LinearContext& ctx, int64_t T, int32_t slots) {
    const void* key = ctx.row_adapter_slots.data;
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
    if (found && found->step == ctx.layout.step_id && found->rows == T && found->capture == capture)
      return *found;
    if (!found) {
      found = &cache_[next_];
      next_ = (next_ + 1) % cache_.size();
    }
    Groups& g = *found;
    const size_t bytes = lora_group_bytes(T, slots);
    if (bytes > g.memory.size()) {
      not_capturing("growing the LoRA grouping buffers");
      b_.synchronize();
      g.memory = DeviceMemory(std::max(bytes, g.memory.size() * 2));
    }
    g.step = ctx.layout.step_id;
    g.capture = capture;
    g.slots = key;
    g.rows = T;
    g.max_tiles = lora_max_tiles(T, slots);
    g.groups = lora_groups_at(g.memory.get(), T, slots);
    lora_group(ctx.row_adapter_slots.as<const int32_t>(), T, slots, g.groups, b_.stream());
    return g;
  }

  CudaBackend& b_;
  mutable std::mutex mu_;  // the host tables (set() may run on another thread)
  std::vector<LoraEntry> host_;   // [module][slot]
  std::vector<int32_t> max_rank_;  // per module, over every entry ever set
  std::vector<int32_t> active_;    // per module: entries with rank > 0
  int32_t modules_ = 0, slots_ = 0;
  bool dirty_ = false;
  uint64_t generation_ = 1;
  DeviceMemory device_table_, scratch_;
  std::vector<Groups> cache_ = std::vector<Groups>(2);  // token rows and logits rows
  size_t next_ = 0;
};

std::unique_ptr<core::LoraKernels> make_cuda_lora_kernels(core::Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda)
    throw Error(Code::invalid_argument, "lora (cuda): backend " + backend.name() + " is not a CUDA backend");
  return std::make_unique<CudaLoraKernels>(*cuda);
}

uint64_t flush_lora_tables(core::LoraKernels& kernels) {
  auto* k = dynamic_cast<CudaLoraKernels*>(&kernels);
  if (!k) throw Error(Code::invalid_argument, "flush_lora_tables: not the CUDA LoRA kernels");
  return k->flush();
}

}  // namespace banyan::kernels::cuda
