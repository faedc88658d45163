#include "core/runtime/linear.h"

#include "core/runtime/weight_store.h"

#include <banyan/error.h>

namespace banyan::core {

DenseLinear::DenseLinear(const LinearSource& s)
    : transposed_((s.flags & BANYAN_LINEAR_TRANSPOSED) != 0) {
  weight_ = s.weights.get(s.module + ".weight");
  if (weight_.ndim != 2)
    throw Error("linear " + s.module + ": weight " + s.module + ".weight is " +
                weight_.shape_string() + ", expected 2 dimensions");
  in_ = transposed_ ? weight_.shape[0] : weight_.shape[1];
  out_ = transposed_ ? weight_.shape[1] : weight_.shape[0];
  if (const Tensor* b = s.weights.find(s.module + ".bias")) {
    if (b->ndim != 1 || b->shape[0] != out_)
      throw Error("linear " + s.module + ": bias is " + b->shape_string() + ", expected [" +
                  std::to_string(out_) + "]");
    bias_ = *b;
  }
}

void DenseLinear::forward(const LinearContext& ctx, const Tensor& x, Tensor& out) {
  ctx.backend.matmul(x, weight_, transposed_, bias_.data ? &bias_ : nullptr, out);
}

LinearRegistry::LinearRegistry(WeightStore& weights, Backend& backend)
    : weights_(weights), backend_(backend) {}

LinearProvider& LinearRegistry::resolve(const std::string& module, uint32_t flags) {
  if (auto it = slots_.find(module); it != slots_.end()) {
    if (!it->second.explicit_provider && it->second.flags != flags)
      throw Error("linear " + module + " was first used with flags " +
                  std::to_string(it->second.flags) + ", now with " + std::to_string(flags));
    return *it->second.provider;
  }
  LinearSource src{module, flags, weights_, backend_};
  std::unique_ptr<LinearProvider> p;
  for (auto f = factories_.rbegin(); f != factories_.rend() && !p; ++f) p = (*f)(src);
  if (!p) p = std::make_unique<DenseLinear>(src);
  return *slots_.emplace(module, Slot{std::move(p), flags, false}).first->second.provider;
}

void LinearRegistry::set(const std::string& module, std::unique_ptr<LinearProvider> provider) {
  if (!provider) throw Error("linear " + module + ": null provider");
  slots_.insert_or_assign(module, Slot{std::move(provider), 0, true});
}

void LinearRegistry::add_factory(LinearFactory factory) {
  factories_.push_back(std::move(factory));
}

void LinearRegistry::forward(const std::string& module, uint32_t flags, const LinearContext& ctx,
                             const Tensor& x, Tensor& out) {
  LinearProvider& p = resolve(module, flags);
  if (x.ndim != 2 || x.shape[1] != p.in_features())
    throw Error("linear " + module + ": input is " + x.shape_string() + ", expected [T, " +
                std::to_string(p.in_features()) + "]");
  if (out.ndim != 2 || out.shape[0] != x.shape[0] || out.shape[1] != p.out_features())
    throw Error("linear " + module + ": output is " + out.shape_string() + ", expected [" +
                std::to_string(x.shape[0]) + ", " + std::to_string(p.out_features()) + "]");
  if (x.dtype != out.dtype && out.type() != DType::f32)  // f32 out: the logits
    throw Error("linear " + module + ": input and output dtypes differ");
  if (hook_ && ctx.has_adapters) hook_->before(module, ctx, x, out);
  p.forward(ctx, x, out);
  if (hook_ && ctx.has_adapters) hook_->apply(module, ctx, x, out);
}

}  // namespace banyan::core
