// The op interface model plugins compute with: a thin C++ layer over the
// BanyanOpsV1 function table of abi.h. Each call allocates its output from the
// step's scratch arena and throws banyan::Error on failure (caught by the plugin's
// entry point, see model.h). A model never learns which backend runs the ops.
#pragma once

#include <banyan/abi.h>
#include <banyan/error.h>
#include <banyan/tensor.h>

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace banyan {

using Activation = BanyanActivation;
using RopeSpec = BanyanRopeSpec;
using AttentionSpec = BanyanAttentionSpec;

class Ops {
 public:
  Ops(const BanyanOpsV1* table, BanyanStepContext* ctx) : t_(table), ctx_(ctx) {}

  /// Token ids [T] and positions [T] of this step (i32).
  std::pair<Tensor, Tensor> step_input() const {
    Tensor ids, pos;
    call(t_->step_input(ctx_, &ids, &pos, &err_));
    return {ids, pos};
  }
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) const {
    int64_t dims[BANYAN_MAX_DIMS] = {};
    int n = 0;
    for (int64_t d : shape) dims[n++] = d;
    Tensor out;
    call(t_->alloc(ctx_, static_cast<int32_t>(dtype), n, dims, &out, &err_));
    return out;
  }
  Tensor weight(const std::string& name) const {
    Tensor out;
    call(t_->weight(ctx_, name.c_str(), &out, &err_));
    return out;
  }
  /// Embedding rows of `name` ([V, H]) for ids [T] → [T, H] in the model dtype.
  Tensor embedding(const std::string& name, const Tensor& ids, DType dtype, int64_t hidden) const {
    Tensor out = alloc(dtype, {ids.shape[0], hidden});
    call(t_->embedding(ctx_, name.c_str(), &ids, &out, &err_));
    return out;
  }
  /// rmsnorm(x (+ residual, updating residual)) * (w + weight_offset).
  Tensor rms_norm(const Tensor& x, Tensor* residual, const std::string& weight, float eps,
                  float weight_offset = 0.0f) const {
    Tensor out = like(x);
    call(t_->rms_norm(ctx_, &x, residual, weight.c_str(), eps, weight_offset, &out, &err_));
    return out;
  }
  Tensor layer_norm(const Tensor& x, Tensor* residual, const std::string& weight,
                    const std::string& bias, float eps) const {
    Tensor out = like(x);
    call(t_->layer_norm(ctx_, &x, residual, weight.c_str(), bias.empty() ? nullptr : bias.c_str(),
                        eps, &out, &err_));
    return out;
  }
  /// x [T, in] · W^T → [T, out_features].
  Tensor linear(const std::string& name, const Tensor& x, int64_t out_features,
                uint32_t flags = BANYAN_LINEAR_DEFAULT) const {
    Tensor out = alloc(x.type(), {x.shape[0], out_features});
    call(t_->linear(ctx_, name.c_str(), &x, flags, &out, &err_));
    return out;
  }
  /// Several linear layers over the same x (ABI 1.3, BanyanOpsV1.linear_n): out i is
  /// x · W_i^T → [T, out_features[i]], as linear() would give, but the host may run
  /// them as one product over weights it stores side by side. An older host: n calls.
  std::vector<Tensor> linear_n(std::span<const std::string> names, const Tensor& x,
                               std::span<const int64_t> out_features,
                               uint32_t flags = BANYAN_LINEAR_DEFAULT) const {
    if (names.size() != out_features.size() || names.empty())
      throw Error(Code::invalid_argument, "linear_n: one out_features per name, at least one");
    std::vector<Tensor> outs;
    if (t_->struct_size < offsetof(BanyanOpsV1, linear_n) + sizeof(t_->linear_n) || !t_->linear_n) {
      for (size_t i = 0; i < names.size(); ++i)
        outs.push_back(linear(names[i], x, out_features[i], flags));
      return outs;
    }
    std::vector<const char*> c_names;
    for (size_t i = 0; i < names.size(); ++i) {
      c_names.push_back(names[i].c_str());
      Tensor o;
      o.dtype = x.dtype;
      o.device_type = x.device_type;
      o.device_index = x.device_index;
      o.ndim = 2;
      o.shape[0] = x.shape[0];
      o.shape[1] = out_features[i];
      outs.push_back(o);
    }
    static_assert(sizeof(Tensor) == sizeof(BanyanTensor), "outs is passed as a BanyanTensor array");
    call(t_->linear_n(ctx_, static_cast<int32_t>(names.size()), c_names.data(), &x, flags,
                      outs.data(), &err_));
    return outs;
  }
  /// act(x · Wg^T) * (x · Wu^T) → [T, out_features] (ABI 1.3, BanyanOpsV1.linear_gated):
  /// the gated MLP's first half, which the host may run as one pass. An older host:
  /// linear_n and act_mul.
  Tensor linear_gated(const std::string& gate, const std::string& up, const Tensor& x,
                      int64_t out_features, Activation act,
                      uint32_t flags = BANYAN_LINEAR_DEFAULT) const {
    if (t_->struct_size < offsetof(BanyanOpsV1, linear_gated) + sizeof(t_->linear_gated) ||
        !t_->linear_gated) {
      const std::string names[] = {gate, up};
      const int64_t dims[] = {out_features, out_features};
      std::vector<Tensor> gu = linear_n(names, x, dims, flags);
      return act_mul(gu[0], gu[1], act);
    }
    Tensor out = alloc(x.type(), {x.shape[0], out_features});
    call(t_->linear_gated(ctx_, gate.c_str(), up.c_str(), &x, act, flags, &out, &err_));
    return out;
  }
  void rotary(Tensor& q, Tensor& k, const RopeSpec& spec) const {
    call(t_->rotary(ctx_, &q, &k, &spec, &err_));
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v,
                   const AttentionSpec& spec) const {
    Tensor out = like(q);
    call(t_->attention(ctx_, &q, &k, &v, &spec, &out, &err_));
    return out;
  }
  Tensor act_mul(const Tensor& gate, const Tensor& up, Activation act) const {
    Tensor out = like(gate);
    call(t_->act_mul(ctx_, &gate, &up, act, &out, &err_));
    return out;
  }
  Tensor activation(const Tensor& x, Activation act) const {
    Tensor out = like(x);
    call(t_->activation(ctx_, &x, act, &out, &err_));
    return out;
  }
  Tensor add(const Tensor& a, const Tensor& b) const {
    Tensor out = like(a);
    call(t_->add(ctx_, &a, &b, &out, &err_));
    return out;
  }
  /// Columns [begin, begin + count) of x [T, N], as a new [T, count] tensor.
  Tensor slice_columns(const Tensor& x, int64_t begin, int64_t count) const {
    if (t_->struct_size < offsetof(BanyanOpsV1, slice_columns) + sizeof(t_->slice_columns) ||
        !t_->slice_columns)
      throw Error(Code::unsupported, "the host's op table has no slice_columns");
    Tensor out = alloc(x.type(), {x.shape[0], count});
    call(t_->slice_columns(ctx_, &x, begin, count, &out, &err_));
    return out;
  }
  /// The sampling op (ABI 1.2, BanyanOpsV1.sample): one draw per entry of `rows` from
  /// logits [R, V] f32 where the step left them; results (their top arrays included)
  /// in host memory. Decoding plugins reach it through DecodingStrategy::decode_on.
  void sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
              std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out) const {
    if (t_->struct_size < offsetof(BanyanOpsV1, sample) + sizeof(t_->sample) || !t_->sample)
      throw Error(Code::unsupported, "the host's op table has no sample op (ABI 1.2)");
    if (out.size() < rows.size())
      throw Error(Code::invalid_argument, "sample: fewer results than rows");
    call(t_->sample(ctx_, &logits, rows.data(), static_cast<int32_t>(rows.size()), edits.data(),
                    static_cast<int32_t>(edits.size()), out.data(), &err_));
  }
  /// Logits [R, V] (f32) for the rows the step asks for.
  Tensor logits(const Tensor& hidden, const std::string& name,
                uint32_t flags = BANYAN_LINEAR_DEFAULT) const {
    Tensor out;
    call(t_->logits(ctx_, &hidden, name.c_str(), flags, &out, &err_));
    return out;
  }

 private:
  Tensor like(const Tensor& x) const {
    Tensor out = x;
    int64_t dims[BANYAN_MAX_DIMS];
    for (int i = 0; i < x.ndim; ++i) dims[i] = x.shape[i];
    call(t_->alloc(ctx_, x.dtype, x.ndim, dims, &out, &err_));
    return out;
  }
  void call(int32_t rc) const { check(rc, err_); }

  const BanyanOpsV1* t_;
  BanyanStepContext* ctx_;
  mutable BanyanError err_{};
};

}  // namespace banyan
