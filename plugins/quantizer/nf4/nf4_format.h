// The LUT4_BLOCK layout (abi.h) as the nf4 plugin writes it, shared by
// quantize-at-load and the bitsandbytes reader.
#pragma once

#include <banyan/quantizer.h>

#include <cstdint>
#include <string>

namespace banyan::nf4 {

/// bitsandbytes' NF4 code values (float32).
inline constexpr float kNf4Code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/// Block size of the second quantization (bitsandbytes: 256).
inline constexpr int64_t kNestedBlock = 256;

inline void plan_lut4(int64_t rows, int64_t cols, int64_t block, bool nested,
                      BanyanQuantizedWeight& out) {
  const int64_t n = rows * cols, nblocks = ceil_div(n, block);
  out.layout = BANYAN_QUANT_LUT4_BLOCK;
  out.rows = rows;
  out.cols = cols;
  out.group_size = static_cast<int32_t>(block);
  plan_tensor(out.qweight, DType::u8, {ceil_div(n, 2)});
  plan_tensor(out.code, DType::f32, {16});
  if (nested) {
    out.group_size2 = static_cast<int32_t>(kNestedBlock);
    plan_tensor(out.scales, DType::u8, {nblocks});
    plan_tensor(out.scales2, DType::f32, {ceil_div(nblocks, kNestedBlock)});
    plan_tensor(out.code2, DType::f32, {256});
  } else {
    plan_tensor(out.scales, DType::f32, {nblocks});
  }
}

/// Element i's 4-bit index (even i: high nibble).
inline uint32_t get_index(const uint8_t* q, int64_t i) {
  return (i % 2 == 0) ? (q[i / 2] >> 4) : (q[i / 2] & 0xfu);
}
inline void put_index(uint8_t* q, int64_t i, uint32_t v) {
  uint8_t& b = q[i / 2];
  b = (i % 2 == 0) ? static_cast<uint8_t>((b & 0x0fu) | ((v & 0xfu) << 4))
                   : static_cast<uint8_t>((b & 0xf0u) | (v & 0xfu));
}

/// Reads bitsandbytes 4-bit tensors (bnb_checkpoint.cpp).
class BnbReader {
 public:
  /// `config`: quantization_config as JSON text. Refuses 8-bit and other methods.
  explicit BnbReader(const std::string& config);
  bool plan(const std::string& module, const TensorSource& src, BanyanQuantizedWeight& out) const;
  void convert(const std::string& module, const TensorSource& src, BanyanQuantizedWeight& out) const;
};

}  // namespace banyan::nf4
