// One quantized weight in host memory: the BanyanQuantizedWeight descriptor of abi.h
// plus the buffers its tensors point into. Made from a plugin's plan (which says the
// layout and each tensor's dtype and shape), filled by the plugin, then uploaded by
// QuantizedLinear. validate() is the host's check that a descriptor is what its
// layout promises, so that no kernel reads outside a buffer.
//
// Thread-safety: a plain value; move-only (the descriptor points into the buffers).
#pragma once

#include <banyan/abi.h>
#include <banyan/tensor.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace banyan::core {

class QuantizedMatrix {
 public:
  QuantizedMatrix() = default;
  /// Checks the plan (validate() without data) and allocates zeroed host memory for
  /// every tensor it declares. Throws Error naming `module`.
  QuantizedMatrix(const BanyanQuantizedWeight& plan, const std::string& module);
  QuantizedMatrix(QuantizedMatrix&&) noexcept = default;
  QuantizedMatrix& operator=(QuantizedMatrix&&) noexcept = default;
  QuantizedMatrix(const QuantizedMatrix&) = delete;
  QuantizedMatrix& operator=(const QuantizedMatrix&) = delete;

  BanyanQuantizedWeight& get() { return w_; }
  const BanyanQuantizedWeight& get() const { return w_; }
  int64_t rows() const { return w_.rows; }
  int64_t cols() const { return w_.cols; }
  /// Bytes of all its tensors.
  size_t bytes() const;

 private:
  BanyanQuantizedWeight w_{};
  std::vector<std::vector<std::byte>> buffers_;
};

/// The six tensor slots of a descriptor, in declaration order.
std::array<BanyanTensor*, 6> tensor_slots(BanyanQuantizedWeight& w);
std::array<const BanyanTensor*, 6> tensor_slots(const BanyanQuantizedWeight& w);
extern const std::array<const char*, 6> kTensorSlotNames;

/// Checks that each tensor a layout uses has the dtype and element count the layout
/// defines (abi.h), and that the others are empty. Throws Error(internal) naming the
/// module and the slot: a plugin broke its contract.
void validate(const BanyanQuantizedWeight& w, const std::string& module);

/// "int8 per row", "int4 g128", "lut4 b64 (double)", "fp8 per tensor", ...
std::string describe(const BanyanQuantizedWeight& w);

}  // namespace banyan::core
