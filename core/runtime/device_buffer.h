// A move-only owner of one device allocation (RAII over Backend::allocate).
#pragma once

#include "core/runtime/backend.h"

#include <banyan/error.h>

#include <initializer_list>
#include <span>
#include <utility>

namespace banyan::core {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes)
      : backend_(&backend), data_(backend.allocate(bytes)), size_(bytes) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : backend_(o.backend_), data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = o.backend_;
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }

  /// A tensor view of the buffer's start; the shape must fit.
  Tensor view(DType dtype, std::span<const int64_t> shape) const {
    Tensor t;
    t.data = data_;
    t.dtype = static_cast<int32_t>(dtype);
    Device d = backend_ ? backend_->device() : Device{};
    t.device_type = static_cast<int32_t>(d.type);
    t.device_index = d.index;
    for (int64_t s : shape) t.shape[t.ndim++] = s;
    if (t.nbytes() > size_) throw Error(Code::internal, "tensor view larger than its buffer");
    return t;
  }
  Tensor view(DType dtype, std::initializer_list<int64_t> shape) const {
    return view(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }

  void reset() noexcept {
    if (data_ && backend_) backend_->deallocate(data_);
    data_ = nullptr;
    size_ = 0;
  }

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace banyan::core
