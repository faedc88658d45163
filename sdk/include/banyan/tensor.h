// C++ helpers over the C tensor view of abi.h. Header-only; safe for plugins.
#pragma once

#include <banyan/abi.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace banyan {

enum class DType : int32_t {
  bf16 = BANYAN_BF16,
  f16 = BANYAN_F16,
  f32 = BANYAN_F32,
  i8 = BANYAN_I8,
  u8 = BANYAN_U8,
  i32 = BANYAN_I32,
  i64 = BANYAN_I64,
  fp8_e4m3 = BANYAN_FP8_E4M3,
};

enum class DeviceType : int32_t { cpu = BANYAN_CPU, cuda = BANYAN_CUDA };

struct Device {
  DeviceType type = DeviceType::cpu;
  int32_t index = 0;
  friend bool operator==(const Device&, const Device&) = default;
};

/// Bytes per element.
constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::bf16:
    case DType::f16: return 2;
    case DType::f32:
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::i8:
    case DType::u8:
    case DType::fp8_e4m3: return 1;
  }
  return 0;
}

/// The name used in safetensors headers and in messages ("BF16", "F32", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::f32: return "F32";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::fp8_e4m3: return "F8_E4M3";
  }
  return "?";
}

/// A non-owning view of a contiguous tensor; layout-compatible with BanyanTensor.
struct Tensor : BanyanTensor {
  Tensor() : BanyanTensor{nullptr, BANYAN_F32, BANYAN_CPU, 0, 0, {0, 0, 0, 0}} {}
  Tensor(const BanyanTensor& t) : BanyanTensor(t) {}  // NOLINT: implicit by design
  Tensor(void* ptr, DType t, std::initializer_list<int64_t> dims, Device dev = {})
      : Tensor() {
    data = ptr;
    dtype = static_cast<int32_t>(t);
    device_type = static_cast<int32_t>(dev.type);
    device_index = dev.index;
    for (int64_t d : dims) shape[ndim++] = d;
  }

  DType type() const { return static_cast<DType>(dtype); }
  Device device() const { return {static_cast<DeviceType>(device_type), device_index}; }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(type()); }
  template <class T> T* as() const { return static_cast<T*>(data); }

  /// The same memory seen with another shape; the element count must match.
  Tensor view(std::initializer_list<int64_t> dims) const {
    Tensor t = *this;
    t.ndim = 0;
    for (int64_t d : dims) t.shape[t.ndim++] = d;
    return t;
  }
  /// Rows [begin, begin+count) of the leading dimension.
  Tensor rows(int64_t begin, int64_t count) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + begin * (nbytes() / (shape[0] ? shape[0] : 1));
    t.shape[0] = count;
    return t;
  }
  std::string shape_string() const {
    std::string s = "[";
    for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace banyan
