// The INT4_GROUP layout (abi.h) as the int4 plugin writes it: nibble access and the
// plan, shared by quantize-at-load and the GPTQ / AWQ readers.
#pragma once

#include <banyan/quantizer.h>

#include <cstdint>
#include <string>

namespace banyan::int4 {

inline void plan_int4(const std::string& module, int64_t rows, int64_t cols, int64_t group,
                      BanyanQuantizedWeight& out) {
  if (group <= 0 || group % 2 != 0)
    throw Error(module + ": int4 group_size " + std::to_string(group) + " must be even and positive");
  if (cols % group != 0) {
    int64_t fit = group;
    while (fit > 2 && cols % fit != 0) fit /= 2;
    throw Error(module + ": int4 group_size " + std::to_string(group) +
                " does not divide its input dimension " + std::to_string(cols) +
                (cols % fit == 0 && fit % 2 == 0
                     ? " (--quantization-group-size " + std::to_string(fit) + " would)"
                     : ""));
  }
  out.layout = BANYAN_QUANT_INT4_GROUP;
  out.rows = rows;
  out.cols = cols;
  out.group_size = static_cast<int32_t>(group);
  plan_tensor(out.qweight, DType::u8, {rows, cols / 2});
  plan_tensor(out.scales, DType::f32, {rows, cols / group});
  plan_tensor(out.zeros, DType::u8, {rows, cols / group});
}

/// Sets the 4-bit value of element k of a row (even k: low nibble).
inline void put_nibble(uint8_t* row, int64_t k, uint32_t v) {
  uint8_t& b = row[k / 2];
  b = (k % 2 == 0) ? static_cast<uint8_t>((b & 0xf0u) | (v & 0xfu))
                   : static_cast<uint8_t>((b & 0x0fu) | ((v & 0xfu) << 4));
}
inline uint32_t get_nibble(const uint8_t* row, int64_t k) {
  return (k % 2 == 0) ? (row[k / 2] & 0xfu) : (row[k / 2] >> 4);
}

/// Reads GPTQ / AWQ tensors of `module` (int4_checkpoint.cpp).
class CheckpointReader {
 public:
  /// `config`: config.json's quantization_config as JSON text. Throws Error(unsupported)
  /// naming what it does not read (bits other than 4, act-order, AWQ GEMV packing, ...).
  explicit CheckpointReader(const std::string& config);
  bool plan(const std::string& module, const TensorSource& src, BanyanQuantizedWeight& out) const;
  void convert(const std::string& module, const TensorSource& src, BanyanQuantizedWeight& out) const;

 private:
  enum class Format { gptq, awq };
  Format format_ = Format::gptq;
  int64_t group_ = 128;
  int zero_offset_ = 1;  // GPTQ v1 stores zero - 1
};

}  // namespace banyan::int4
