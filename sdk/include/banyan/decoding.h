// Writing a decoding plugin in C++: derive from banyan::DecodingStrategy and declare
// it with BANYAN_DECODING_PLUGIN. The macro emits the C entry point of abi.h and
// trampolines that keep every exception inside the plugin. A class that also
// overrides decode_on() and declares `static constexpr bool kAcceptsDeviceLogits =
// true` fills BanyanDecodingV1.decode_on: the host may then hand it logits left in
// device memory, with the op table (ops.sample) to decode them there.
#pragma once

#include <banyan/abi.h>
#include <banyan/error.h>
#include <banyan/log.h>
#include <banyan/tensor.h>

#include <memory>
#include <span>
#include <string>

namespace banyan {

struct DecodingContext {
  const BanyanHostV1* host;
  std::string options_json;
  Logger log;
};

class DecodingStrategy {
 public:
  virtual ~DecodingStrategy() = default;
  /// See BanyanDecodingV1::decode. `out` has rows.size() * per_row entries.
  virtual void decode(const Tensor& logits, std::span<const BanyanDecodeRow> rows, int per_row,
                      std::span<BanyanDecodeChoice> out) = 0;
  /// See BanyanDecodingV1::decode_on: `logits` may be in device memory; `ops` with
  /// `ctx` reach the op table (ops.sample). Default: decode().
  virtual void decode_on(const BanyanOpsV1& ops, BanyanStepContext* ctx, const Tensor& logits,
                         std::span<const BanyanDecodeRow> rows, int per_row,
                         std::span<BanyanDecodeChoice> out) {
    (void)ops;
    (void)ctx;
    decode(logits, rows, per_row, out);
  }
};

namespace detail {
template <class D>
struct DecodingTrampolines {
  static void* create(const BanyanHostV1* host, const char* options, BanyanError* err,
                      const char* name) {
    D* out = nullptr;
    guard(err, [&] {
      DecodingContext ctx{host, options ? options : "{}", Logger(host, name)};
      out = std::make_unique<D>(ctx).release();
    });
    return out;
  }
  static void destroy(void* self) { std::unique_ptr<D>(static_cast<D*>(self)).reset(); }
  static int32_t decode(void* self, const BanyanTensor* logits, const BanyanDecodeRow* rows,
                        int32_t n, int32_t per_row, BanyanDecodeChoice* out, BanyanError* err) {
    return guard(err, [&] {
      if (n < 0 || per_row < 1) throw Error(Code::invalid_argument, "decode: bad row counts");
      static_cast<D*>(self)->decode(Tensor(*logits), std::span<const BanyanDecodeRow>(rows, n),
                                    per_row, std::span<BanyanDecodeChoice>(out, static_cast<size_t>(n) * per_row));
    });
  }
  static int32_t decode_on(void* self, const BanyanOpsV1* ops, BanyanStepContext* ctx,
                           const BanyanTensor* logits, const BanyanDecodeRow* rows, int32_t n,
                           int32_t per_row, BanyanDecodeChoice* out, BanyanError* err) {
    return guard(err, [&] {
      if (n < 0 || per_row < 1) throw Error(Code::invalid_argument, "decode: bad row counts");
      if (!ops) throw Error(Code::invalid_argument, "decode_on: null op table");
      static_cast<D*>(self)->decode_on(*ops, ctx, Tensor(*logits),
                                       std::span<const BanyanDecodeRow>(rows, n), per_row,
                                       std::span<BanyanDecodeChoice>(out, static_cast<size_t>(n) * per_row));
    });
  }
  /// decode_on for classes that declare kAcceptsDeviceLogits, else null.
  static constexpr auto device_slot() {
    using Fn = decltype(&decode_on);
    if constexpr (requires { requires D::kAcceptsDeviceLogits; }) return Fn{&decode_on};
    else return Fn{nullptr};
  }
};
}  // namespace detail

}  // namespace banyan

/// Declares the plugin entry point for decoding class CLASS (constructible from
/// const banyan::DecodingContext&). NAME must match plugin.yaml.
#define BANYAN_DECODING_PLUGIN(CLASS, NAME, VERSION)                                      \
  namespace {                                                                             \
  void* banyan_decoding_create_(const BanyanHostV1* h, const char* o, BanyanError* e) {   \
    return ::banyan::detail::DecodingTrampolines<CLASS>::create(h, o, e, NAME);           \
  }                                                                                       \
  const BanyanDecodingV1 banyan_decoding_iface_ = {                                       \
      sizeof(BanyanDecodingV1), &::banyan::detail::DecodingTrampolines<CLASS>::decode,    \
      ::banyan::detail::DecodingTrampolines<CLASS>::device_slot()};                       \
  const BanyanPluginV1 banyan_decoding_descriptor_ = {                                    \
      BANYAN_ABI_MAJOR, BANYAN_ABI_MINOR, sizeof(BanyanPluginV1), BANYAN_KIND_DECODING,   \
      NAME, VERSION, &banyan_decoding_create_,                                            \
      &::banyan::detail::DecodingTrampolines<CLASS>::destroy, &banyan_decoding_iface_};   \
  }                                                                                       \
  extern "C" BANYAN_EXPORT const BanyanPluginV1* banyan_plugin_entry(void) {              \
    return &banyan_decoding_descriptor_;                                                  \
  }
