// The scratch memory of one step: a bump allocator over device memory, reset as a
// whole at the start of the next step (the last step's logits stay valid until
// then). After a step that overflowed, the chunks are merged into one chunk of the
// high-water size, so the steady state is one allocation and no per-op malloc.
//
// Thread-safety: used by the engine thread only.
#pragma once

#include "core/runtime/device_buffer.h"

#include <span>
#include <vector>

namespace banyan::core {

class StepArena {
 public:
  explicit StepArena(Backend& backend, size_t initial_bytes = size_t{32} << 20);

  /// Device memory valid until reset(), aligned to kAlignment bytes.
  void* allocate(size_t bytes);
  /// A tensor of `shape` (1 to 4 dims) in arena memory. Throws on a bad shape.
  Tensor tensor(DType dtype, std::span<const int64_t> shape);
  Tensor tensor(DType dtype, std::initializer_list<int64_t> shape) {
    return tensor(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  /// Frees everything allocated since the last reset.
  void reset();

  size_t capacity() const;
  size_t high_water() const { return high_water_; }
  /// Bytes allocated since the last reset (alignment included).
  size_t used() const { return step_bytes_; }
  /// The first chunk (null before any): with capacity(), what a captured graph's
  /// addresses depend on (they stay valid while both are unchanged after a reset).
  const void* base() const { return chunks_.empty() ? nullptr : chunks_.front().data(); }

  static constexpr size_t kAlignment = 256;

 private:
  Backend& backend_;
  std::vector<DeviceBuffer> chunks_;
  size_t offset_ = 0;      // in the last chunk
  size_t step_bytes_ = 0;  // allocated since reset
  size_t high_water_ = 0;
};

}  // namespace banyan::core
