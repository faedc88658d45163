#include "core/runtime/step_arena.h"

#include <algorithm>
#include <string>

namespace banyan::core {

StepArena::StepArena(Backend& backend, size_t initial_bytes) : backend_(backend) {
  if (initial_bytes) chunks_.emplace_back(backend_, initial_bytes);
}

void* StepArena::allocate(size_t bytes) {
  const size_t need = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  if (chunks_.empty() || offset_ + need > chunks_.back().size()) {
    const size_t last = chunks_.empty() ? 0 : chunks_.back().size();
    chunks_.emplace_back(backend_, std::max(need, 2 * last));
    offset_ = 0;
  }
  void* p = static_cast<char*>(chunks_.back().data()) + offset_;
  offset_ += need;
  step_bytes_ += need;
  high_water_ = std::max(high_water_, step_bytes_);
  return p;
}

Tensor StepArena::tensor(DType dtype, std::span<const int64_t> shape) {
  if (shape.empty() || shape.size() > BANYAN_MAX_DIMS)
    throw Error("tensor of " + std::to_string(shape.size()) + " dims (1 to " +
                std::to_string(BANYAN_MAX_DIMS) + " allowed)");
  if (dtype_size(dtype) == 0)
    throw Error("unknown dtype " + std::to_string(static_cast<int32_t>(dtype)));
  Tensor t;
  t.dtype = static_cast<int32_t>(dtype);
  Device d = backend_.device();
  t.device_type = static_cast<int32_t>(d.type);
  t.device_index = d.index;
  int64_t numel = 1;
  for (int64_t s : shape) {
    if (s < 0 || (s > 0 && numel > (int64_t{1} << 40) / s))
      throw Error("bad tensor dimension " + std::to_string(s));
    numel *= s;
    t.shape[t.ndim++] = s;
  }
  t.data = allocate(t.nbytes());
  return t;
}

void StepArena::reset() {
  if (chunks_.size() > 1) {
    backend_.synchronize();  // nothing in flight may still use the old chunks
    chunks_.clear();
    chunks_.emplace_back(backend_, high_water_);
  }
  offset_ = 0;
  step_bytes_ = 0;
}

size_t StepArena::capacity() const {
  size_t n = 0;
  for (const auto& c : chunks_) n += c.size();
  return n;
}

}  // namespace banyan::core
