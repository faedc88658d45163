#include "core/runtime/linear.h"

#include "core/runtime/step_arena.h"
#include "core/runtime/weight_store.h"

#include <banyan/error.h>

#include <algorithm>
#include <cstdlib>

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

bool fused_product_pays(int64_t rows, std::span<const int64_t> out_features, int64_t in_features,
                        size_t elem_bytes) {
  if (rows == 1) return true;
  constexpr size_t kNarrowBytes = size_t{16} << 20;
  for (int64_t n : out_features)
    if (static_cast<size_t>(n) * static_cast<size_t>(in_features) * elem_bytes < kNarrowBytes)
      return true;
  return false;
}

namespace {
int64_t initial_gated_rows() {
  const char* e = std::getenv("BANYAN_FUSE_GATED_ROWS");
  return e && *e ? std::max<int64_t>(0, std::atoll(e)) : 0;
}
int64_t g_gated_rows = initial_gated_rows();
}  // namespace

int64_t gated_product_max_rows() { return g_gated_rows; }
void set_gated_product_max_rows(int64_t rows) { g_gated_rows = std::max<int64_t>(0, rows); }

namespace {
// BANYAN_FUSE_LINEARS=0/1 overrides the backend's preference (A/B runs, debugging).
bool default_fusion(const Backend& backend) {
  const char* e = std::getenv("BANYAN_FUSE_LINEARS");
  if (e && (std::string(e) == "0" || std::string(e) == "1")) return e[0] == '1';
  return backend.prefers_fused_linears();
}
}  // namespace

LinearRegistry::LinearRegistry(WeightStore& weights, Backend& backend)
    : weights_(weights), backend_(backend), fusion_(default_fusion(backend)) {}

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
  for (auto& [key, g] : groups_)  // the group's product no longer stands for this module
    if (std::find(g.modules.begin(), g.modules.end(), module) != g.modules.end()) g.fused = false;
  slots_.insert_or_assign(module, Slot{std::move(provider), 0, true});
}

void LinearRegistry::add_factory(LinearFactory factory) {
  factories_.push_back(std::move(factory));
}

void LinearRegistry::add_group_factory(LinearGroupFactory factory) {
  group_factories_.push_back(std::move(factory));
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

LinearRegistry::Group LinearRegistry::make_group(std::span<const std::string> modules,
                                                 uint32_t flags) {
  Group g;
  g.modules.assign(modules.begin(), modules.end());
  if (!fusion_ || flags != BANYAN_LINEAR_DEFAULT || modules.size() < 2) return g;
  for (size_t i = 0; i < modules.size(); ++i)
    if (slots_.count(modules[i]) || std::count(modules.begin(), modules.end(), modules[i]) > 1)
      return g;
  // A group factory (a quantizer) may stand for the whole group with one provider.
  const LinearGroupSource gsrc{modules, flags, weights_, backend_};
  for (auto f = group_factories_.rbegin(); f != group_factories_.rend(); ++f) {
    FusedLinear fl = (*f)(gsrc);
    if (!fl.provider) continue;
    int64_t sum = 0;
    for (int64_t n : fl.parts) sum += n;
    if (fl.parts.size() != modules.size() || sum != fl.provider->out_features())
      throw Error(Code::internal, "linear group of " + modules[0] + ": the group factory's provider has " +
                                      std::to_string(fl.provider->out_features()) + " outputs, its " +
                                      std::to_string(fl.parts.size()) + " parts sum to " + std::to_string(sum));
    g.provider = std::move(fl.provider);
    g.parts = std::move(fl.parts);
    g.fused = true;
    return g;
  }
  // Quantizers and other factories claim their modules first, as resolve() would;
  // then the modules are resolved here (each factory is asked once per module).
  std::vector<std::unique_ptr<LinearProvider>> claimed(modules.size());
  bool any = false;
  for (size_t i = 0; i < modules.size(); ++i) {
    LinearSource src{modules[i], flags, weights_, backend_};
    for (auto f = factories_.rbegin(); f != factories_.rend() && !claimed[i]; ++f)
      claimed[i] = (*f)(src);
    any = any || claimed[i];
  }
  auto install = [&] {
    for (size_t i = 0; i < modules.size(); ++i) {
      if (!claimed[i]) claimed[i] = std::make_unique<DenseLinear>(LinearSource{modules[i], flags, weights_, backend_});
      slots_.emplace(modules[i], Slot{std::move(claimed[i]), flags, false});
    }
  };
  if (any) {
    install();
    return g;
  }
  std::vector<std::string> w_names, b_names;
  for (const std::string& m : modules) {
    w_names.push_back(m + ".weight");
    if (weights_.info(m + ".bias", nullptr)) b_names.push_back(m + ".bias");
  }
  std::optional<Tensor> w;
  bool dense = b_names.empty() || b_names.size() == modules.size();
  for (const std::string& n : w_names) {
    Tensor t;
    dense = dense && weights_.info(n, &t) && t.ndim == 2;
  }
  if (dense) w = weights_.load_fused(w_names);
  std::optional<Tensor> b;
  if (w && !b_names.empty()) b = weights_.load_fused(b_names);
  install();  // dense providers (views into the fused tensors when loaded fused); they report bad shapes
  if (!w || (!b_names.empty() && !b)) return g;  // else the modules run one by one
  for (const std::string& m : modules) g.parts.push_back(weights_.get(m + ".weight").shape[0]);
  if (b) g.bias = *b;
  g.weight = *w;
  g.fused = true;
  return g;
}

bool LinearRegistry::fused(const std::string& module) const {
  for (const auto& [key, g] : groups_)
    if (g.fused && std::find(g.modules.begin(), g.modules.end(), module) != g.modules.end())
      return true;
  return false;
}

const LinearRegistry::Group& LinearRegistry::group(std::span<const std::string> modules,
                                                   uint32_t flags) {
  std::string key = std::to_string(flags);
  for (const std::string& m : modules) key += "|" + m;
  auto it = groups_.find(key);
  if (it == groups_.end()) it = groups_.emplace(key, make_group(modules, flags)).first;
  return it->second;
}

void LinearRegistry::forward_gated(const std::string& gate, const std::string& up, uint32_t flags,
                                   const LinearContext& ctx, const Tensor& x, int32_t act,
                                   Tensor& out) {
  const std::string modules[] = {gate, up};
  const Group& g = group(modules, flags);
  const int64_t T = x.ndim == 2 ? x.shape[0] : 0;
  if (g.fused && !g.provider && T > 0 && !(hook_ && ctx.has_adapters) && !g.bias.data && g.parts[0] == g.parts[1] &&
      x.shape[1] == g.weight.shape[1] && out.ndim == 2 && out.shape[0] == T && out.shape[1] == g.parts[0]) {
    if (ctx.backend.matmul_gated(x, g.weight, act, out)) return;
    if (T <= gated_product_max_rows()) {
      Tensor all = ctx.arena.tensor(x.type(), {T, 2 * g.parts[0]});
      ctx.backend.matmul(x, g.weight, false, nullptr, all);
      ctx.backend.act_mul_halves(all, act, out);
      return;
    }
  }
  Tensor outs[2] = {out, out};  // shapes [T, N]; forward_n checks them against the modules
  forward_n(modules, flags, ctx, x, outs);
  ctx.backend.act_mul(outs[0], outs[1], act, out);
}

void LinearRegistry::forward_n(std::span<const std::string> modules, uint32_t flags,
                               const LinearContext& ctx, const Tensor& x, std::span<Tensor> outs) {
  if (modules.empty() || modules.size() != outs.size())
    throw Error(Code::invalid_argument, "linear_n: " + std::to_string(modules.size()) +
                                            " modules, " + std::to_string(outs.size()) + " outputs");
  const Group& g = group(modules, flags);
  const int64_t T = x.ndim == 2 ? x.shape[0] : 0;
  const bool adapters = hook_ && ctx.has_adapters;
  // A group factory's provider is the only one its modules have: it runs on every call.
  const bool own = g.fused && g.provider;
  const bool one = own || (g.fused && T > 0 &&
                           fused_product_pays(T, g.parts, g.weight.shape[1], dtype_size(x.type())));
  if (!one) {
    for (size_t i = 0; i < modules.size(); ++i) {
      Tensor& o = outs[i];
      if (o.ndim != 2)
        throw Error("linear " + modules[i] + ": output is " + o.shape_string() + ", expected [T, N]");
      o = ctx.arena.tensor(o.type(), {o.shape[0], o.shape[1]});
      forward(modules[i], flags, ctx, x, o);
    }
    return;
  }
  const int64_t K = g.provider ? g.provider->in_features() : g.weight.shape[1];
  if (x.ndim != 2 || x.shape[1] != K)
    throw Error("linear " + modules[0] + ": input is " + x.shape_string() + ", expected [T, " +
                std::to_string(K) + "]");
  for (size_t i = 0; i < modules.size(); ++i) {
    const Tensor& o = outs[i];
    if (o.ndim != 2 || o.shape[0] != T || o.shape[1] != g.parts[i] || o.dtype != x.dtype)
      throw Error("linear " + modules[i] + ": output is " + o.shape_string() + " " +
                  std::string(dtype_name(o.type())) + ", expected [" + std::to_string(T) + ", " +
                  std::to_string(g.parts[i]) + "] " + std::string(dtype_name(x.type())));
  }
  if (T == 0) {
    for (Tensor& o : outs) o = ctx.arena.tensor(o.type(), {0, o.shape[1]});
    return;
  }
  const size_t es = dtype_size(x.type());
  bool views = T == 1;  // one row: each part is a contiguous slice of it
  int64_t begin = 0;
  for (int64_t n : g.parts) {
    views = views && (static_cast<size_t>(begin) * es) % 16 == 0;
    begin += n;
  }
  // The outputs get their memory before the hook sees them: views of the one row, or
  // [T, N_i] tensors of their own that the product's columns are split into (the
  // hook adds into contiguous outputs).
  Tensor all = ctx.arena.tensor(x.type(), {T, begin});
  if (views) {
    int64_t off = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      outs[i].data = static_cast<char*>(all.data) + static_cast<size_t>(off) * es;
      off += g.parts[i];
    }
  } else {
    for (Tensor& o : outs) o = ctx.arena.tensor(o.type(), {T, o.shape[1]});
  }
  // Steps with adapters: every module's before() ahead of the one product (a device
  // hook starts all the modules' deltas beside it), then apply() per module on its
  // part of the output.
  if (adapters)
    for (size_t i = 0; i < modules.size(); ++i) hook_->before(modules[i], ctx, x, outs[i]);
  if (g.provider)
    g.provider->forward(ctx, x, all);
  else
    ctx.backend.matmul(x, g.weight, false, g.bias.data ? &g.bias : nullptr, all);
  if (!views) ctx.backend.split_columns(all, outs);
  if (adapters)
    for (size_t i = 0; i < modules.size(); ++i) hook_->apply(modules[i], ctx, x, outs[i]);
}

}  // namespace banyan::core
