// C++ helpers for quantizer plugins (the C interface is BanyanQuantizerV1 in abi.h).
// Header-only; safe for plugins. A quantizer is a class Q with
//
//   Q(const BanyanHostV1* host, const char* options_json);
//   void plan(const std::string& module, int64_t rows, int64_t cols, BanyanQuantizedWeight& out);
//   void quantize(const std::string& module, const banyan::Tensor& weight, BanyanQuantizedWeight& out);
//   void dequantize(const BanyanQuantizedWeight& w, banyan::Tensor& out);
//
// and optionally, to read pre-quantized checkpoints (return false: the module is
// stored dense):
//
//   bool plan_checkpoint(const std::string& module, const banyan::TensorSource& src,
//                        BanyanQuantizedWeight& out);
//   void convert_checkpoint(const std::string& module, const banyan::TensorSource& src,
//                           BanyanQuantizedWeight& out);
//
// BANYAN_QUANTIZER_PLUGIN(Q, "name", "version") generates the entry point; every
// exception becomes a BanyanError at the boundary.
#pragma once

#include <banyan/abi.h>
#include <banyan/error.h>
#include <banyan/tensor.h>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

namespace banyan {

/// An empty BanyanQuantizedWeight of the current struct size.
inline BanyanQuantizedWeight empty_quantized_weight() {
  BanyanQuantizedWeight w{};
  w.struct_size = sizeof(BanyanQuantizedWeight);
  return w;
}

/// Declares a host tensor of a plan (data stays null until the host allocates it).
inline void plan_tensor(BanyanTensor& t, DType dtype, std::initializer_list<int64_t> dims) {
  t = Tensor(nullptr, dtype, dims);
}

/// The element count of each 4-bit index tensor, the number of LUT4 blocks, etc.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline float bf16_bits_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// IEEE half to float, exact (normals, subnormals, infinities, NaN).
inline float f16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float v;
  if (exp == 0x1f) {
    uint32_t u = sign | 0x7f800000u | (mant << 13);
    std::memcpy(&v, &u, sizeof v);
    return v;
  }
  v = exp ? std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25)
          : std::ldexp(static_cast<float>(mant), -24);
  return sign ? -v : v;
}

/// e4m3fn (no infinities; S.1111.111 is NaN) to float, exact.
inline float e4m3fn_bits_to_float(uint8_t b) {
  const int exp = (b >> 3) & 0xf, mant = b & 0x7;
  float v;
  if (exp == 0xf && mant == 0x7) v = std::nanf("");
  else if (exp == 0) v = std::ldexp(static_cast<float>(mant), -9);
  else v = std::ldexp(static_cast<float>(8 + mant), exp - 10);
  return (b & 0x80) ? -v : v;
}

/// Element i of a host tensor of BF16, F16 or F32, as float.
inline float float_element(const Tensor& t, int64_t i) {
  switch (t.type()) {
    case DType::f32: return static_cast<const float*>(t.data)[i];
    case DType::bf16: return bf16_bits_to_float(static_cast<const uint16_t*>(t.data)[i]);
    case DType::f16: return f16_bits_to_float(static_cast<const uint16_t*>(t.data)[i]);
    default:
      throw Error(Code::unsupported, "expected a BF16, F16 or F32 tensor, got " +
                                         std::string(dtype_name(t.type())));
  }
}

/// Throws Error(unsupported) unless t holds BF16, F16 or F32 (check once before a
/// parallel loop over float_elements(), which must not throw inside it).
inline void require_float(const Tensor& t) {
  if (t.type() != DType::f32 && t.type() != DType::bf16 && t.type() != DType::f16)
    throw Error(Code::unsupported, "expected a BF16, F16 or F32 tensor, got " +
                                       std::string(dtype_name(t.type())));
}

/// Elements [begin, begin + count) of a host tensor of BF16, F16 or F32 as float into
/// dst: float_element() over a run, with one dtype dispatch (the fast path of a
/// quantizer's inner loop). The dtype must have passed require_float().
inline void float_elements(const Tensor& t, int64_t begin, int64_t count, float* dst) noexcept {
  switch (t.type()) {
    case DType::f32: {
      const float* p = static_cast<const float*>(t.data) + begin;
      for (int64_t i = 0; i < count; ++i) dst[i] = p[i];
      return;
    }
    case DType::bf16: {
      const uint16_t* p = static_cast<const uint16_t*>(t.data) + begin;
      for (int64_t i = 0; i < count; ++i) dst[i] = bf16_bits_to_float(p[i]);
      return;
    }
    default: {
      const uint16_t* p = static_cast<const uint16_t*>(t.data) + begin;
      for (int64_t i = 0; i < count; ++i) dst[i] = f16_bits_to_float(p[i]);
      return;
    }
  }
}

/// Checkpoint tensors for plugins reading pre-quantized weights.
class TensorSource {
 public:
  explicit TensorSource(const BanyanTensorSource* src) : src_(src) {}
  /// False when the checkpoint has no such tensor.
  bool find(const std::string& name, Tensor* out) const {
    BanyanTensor t{};
    int32_t rc = src_->get(src_->ctx, name.c_str(), &t);
    if (rc == BANYAN_NOT_FOUND) return false;
    if (rc != BANYAN_OK) throw Error(static_cast<Code>(rc), "cannot read tensor " + name);
    if (out) *out = t;
    return true;
  }
  /// Throws Error(not_found) naming the tensor when absent.
  Tensor get(const std::string& name) const {
    Tensor t;
    if (!find(name, &t)) throw Error(Code::not_found, "checkpoint has no tensor " + name);
    return t;
  }

 private:
  const BanyanTensorSource* src_;
};

namespace detail {

template <class Q>
concept ReadsCheckpoints = requires(Q q, const std::string& m, const TensorSource& s,
                                    BanyanQuantizedWeight& w) {
  { q.plan_checkpoint(m, s, w) } -> std::same_as<bool>;
  q.convert_checkpoint(m, s, w);
};

inline void check_weight(const BanyanQuantizedWeight* w) {
  if (!w || w->struct_size < sizeof(BanyanQuantizedWeight))
    throw Error(Code::invalid_argument, "BanyanQuantizedWeight missing or struct_size too small");
}

template <class Q>
struct QuantizerTrampolines {
  static void* create(const BanyanHostV1* host, const char* options, BanyanError* err) {
    Q* out = nullptr;
    guard(err, [&] { out = std::make_unique<Q>(host, options ? options : "{}").release(); });
    return out;
  }
  static void destroy(void* self) { std::unique_ptr<Q>(static_cast<Q*>(self)).reset(); }
  static int32_t plan(void* self, const char* module, int64_t rows, int64_t cols,
                      BanyanQuantizedWeight* out, BanyanError* err) {
    return guard(err, [&] {
      check_weight(out);
      if (rows <= 0 || cols <= 0)
        throw Error(std::string(module ? module : "?") + ": weight shape [" + std::to_string(rows) +
                    ", " + std::to_string(cols) + "] is empty");
      static_cast<Q*>(self)->plan(module ? module : "", rows, cols, *out);
    });
  }
  static int32_t quantize(void* self, const char* module, const BanyanTensor* weight,
                          BanyanQuantizedWeight* out, BanyanError* err) {
    return guard(err, [&] {
      check_weight(out);
      if (!weight) throw Error(Code::invalid_argument, "null weight");
      Tensor w(*weight);
      if (w.ndim != 2 || w.shape[0] != out->rows || w.shape[1] != out->cols)
        throw Error(std::string(module ? module : "?") + ": weight is " + w.shape_string() +
                    ", the plan says [" + std::to_string(out->rows) + ", " +
                    std::to_string(out->cols) + "]");
      static_cast<Q*>(self)->quantize(module ? module : "", w, *out);
    });
  }
  static int32_t dequantize(void* self, const BanyanQuantizedWeight* w, BanyanTensor* out,
                            BanyanError* err) {
    return guard(err, [&] {
      check_weight(w);
      if (!out) throw Error(Code::invalid_argument, "null output");
      Tensor o(*out);
      if (o.type() != DType::f32 || o.ndim != 2 || o.shape[0] != w->rows || o.shape[1] != w->cols)
        throw Error("dequantize: output is " + std::string(dtype_name(o.type())) + o.shape_string() +
                    ", expected F32[" + std::to_string(w->rows) + ", " + std::to_string(w->cols) + "]");
      static_cast<Q*>(self)->dequantize(*w, o);
    });
  }
  static int32_t plan_checkpoint(void* self, const char* module, const BanyanTensorSource* src,
                                 BanyanQuantizedWeight* out, BanyanError* err) {
    return guard(err, [&] {
      check_weight(out);
      if constexpr (ReadsCheckpoints<Q>)
        if (!static_cast<Q*>(self)->plan_checkpoint(module ? module : "", TensorSource(src), *out))
          out->rows = out->cols = 0;  // stored dense
    });
  }
  static int32_t convert_checkpoint(void* self, const char* module, const BanyanTensorSource* src,
                                    BanyanQuantizedWeight* out, BanyanError* err) {
    return guard(err, [&] {
      check_weight(out);
      if constexpr (ReadsCheckpoints<Q>)
        static_cast<Q*>(self)->convert_checkpoint(module ? module : "", TensorSource(src), *out);
    });
  }
  static constexpr BanyanQuantizerV1 iface() {
    if constexpr (ReadsCheckpoints<Q>)
      return {sizeof(BanyanQuantizerV1), &plan, &quantize, &dequantize, &plan_checkpoint,
              &convert_checkpoint};
    else
      return {sizeof(BanyanQuantizerV1), &plan, &quantize, &dequantize, nullptr, nullptr};
  }
};

}  // namespace detail
}  // namespace banyan

/// Declares the plugin entry point for quantizer class CLASS. NAME and VERSION must
/// match plugin.yaml.
#define BANYAN_QUANTIZER_PLUGIN(CLASS, NAME, VERSION)                                      \
  namespace {                                                                              \
  constexpr BanyanQuantizerV1 banyan_quantizer_iface_ =                                    \
      ::banyan::detail::QuantizerTrampolines<CLASS>::iface();                              \
  const BanyanPluginV1 banyan_quantizer_descriptor_ = {                                    \
      BANYAN_ABI_MAJOR, BANYAN_ABI_MINOR, sizeof(BanyanPluginV1), BANYAN_KIND_QUANTIZER,   \
      NAME, VERSION, &::banyan::detail::QuantizerTrampolines<CLASS>::create,               \
      &::banyan::detail::QuantizerTrampolines<CLASS>::destroy, &banyan_quantizer_iface_};  \
  }                                                                                        \
  extern "C" BANYAN_EXPORT const BanyanPluginV1* banyan_plugin_entry(void) {               \
    return &banyan_quantizer_descriptor_;                                                  \
  }
