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
#include <optional>
#include <span>
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

/// Whether weights stack by rows into one weight of their layout whose rows are
/// theirs bit for bit (stack_rows), judged from their plans: same layout, cols and
/// group sizes; INT8_ROW, INT4_GROUP and per-row FP8 stack; LUT4_BLOCK when every part
/// but the last holds whole blocks of an even element count and none has double
/// quantization (its offset and nested scales are statistics of the whole part);
/// per-tensor FP8 does not (one scale per part). Else false with the reason in `why`.
bool stackable_rows(std::span<const BanyanQuantizedWeight> parts, std::string* why);

/// The parts (filled) stacked by rows as weight `name` [ΣN, K]; nullopt, with the
/// reason in `why`, when !stackable_rows() or their code tables differ.
std::optional<QuantizedMatrix> stack_rows(std::span<const QuantizedMatrix> parts,
                                          const std::string& name, std::string* why);

/// "int8 per row", "int4 g128", "lut4 b64 (double)", "fp8 per tensor", ...
std::string describe(const BanyanQuantizedWeight& w);

}  // namespace banyan::core
