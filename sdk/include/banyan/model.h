// Writing a model plugin in C++: derive from banyan::Model and declare it with
// BANYAN_MODEL_PLUGIN. The macro emits the C entry point of abi.h and trampolines
// that keep every exception inside the plugin.
#pragma once

#include <banyan/abi.h>
#include <banyan/error.h>
#include <banyan/log.h>
#include <banyan/ops.h>

#include <memory>
#include <string>

namespace banyan {

/// What a model plugin receives at creation.
struct ModelContext {
  const BanyanHostV1* host;
  std::string options_json;  ///< {"model_dir": ..., "config": {config.json}, plugin options}
  Logger log;

  /// Shape/dtype of a checkpoint tensor, or false when absent.
  bool weight_info(const std::string& name, Tensor* out) const {
    BanyanTensor t{};
    if (host->weight_info(host->weights_ctx, name.c_str(), &t) != BANYAN_OK) return false;
    if (out) *out = t;
    return true;
  }
};

class Model {
 public:
  virtual ~Model() = default;
  virtual BanyanModelSpec spec() const = 0;
  /// Computes one step and returns the logits tensor from Ops::logits.
  virtual Tensor forward(const Ops& ops) = 0;
};

namespace detail {
template <class M>
struct ModelTrampolines {
  static void* create(const BanyanHostV1* host, const char* options, BanyanError* err,
                      const char* name) {
    M* out = nullptr;
    guard(err, [&] {
      if (!host) throw Error(Code::invalid_argument, "null host");
      ModelContext ctx{host, options ? options : "{}", Logger(host, name)};
      out = std::make_unique<M>(ctx).release();
    });
    return out;
  }
  static void destroy(void* self) { std::unique_ptr<M>(static_cast<M*>(self)).reset(); }
  static int32_t describe(void* self, BanyanModelSpec* spec, BanyanError* err) {
    return guard(err, [&] { *spec = static_cast<M*>(self)->spec(); });
  }
  static int32_t forward(void* self, const BanyanOpsV1* table, BanyanStepContext* ctx,
                         BanyanTensor* logits, BanyanError* err) {
    return guard(err, [&] {
      *logits = static_cast<M*>(self)->forward(Ops(table, ctx));
    });
  }
};
}  // namespace detail

}  // namespace banyan

/// Declares the plugin entry point for model class CLASS (constructible from
/// const banyan::ModelContext&). NAME must match plugin.yaml.
#define BANYAN_MODEL_PLUGIN(CLASS, NAME, VERSION)                                         \
  namespace {                                                                             \
  void* banyan_model_create_(const BanyanHostV1* h, const char* o, BanyanError* e) {      \
    return ::banyan::detail::ModelTrampolines<CLASS>::create(h, o, e, NAME);              \
  }                                                                                       \
  const BanyanModelV1 banyan_model_iface_ = {                                             \
      sizeof(BanyanModelV1), &::banyan::detail::ModelTrampolines<CLASS>::describe,        \
      &::banyan::detail::ModelTrampolines<CLASS>::forward};                               \
  const BanyanPluginV1 banyan_model_descriptor_ = {                                       \
      BANYAN_ABI_MAJOR, BANYAN_ABI_MINOR, sizeof(BanyanPluginV1), BANYAN_KIND_MODEL,      \
      NAME, VERSION, &banyan_model_create_,                                               \
      &::banyan::detail::ModelTrampolines<CLASS>::destroy, &banyan_model_iface_};         \
  }                                                                                       \
  extern "C" BANYAN_EXPORT const BanyanPluginV1* banyan_plugin_entry(void) {              \
    return &banyan_model_descriptor_;                                                     \
  }
