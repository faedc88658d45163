// The C function table of BanyanOpsV1: each slot casts the opaque context back to
// the StepContext and runs the op inside banyan::guard, so that no exception
// crosses the plugin boundary.
#include "core/runtime/step_context.h"

#include <banyan/error.h>

namespace banyan::core {
namespace {

StepContext& self(BanyanStepContext* ctx) {
  if (!ctx) throw Error(Code::invalid_argument, "null step context");
  return *static_cast<StepContext*>(ctx);
}

template <class T>
T& deref(T* p, const char* what) {
  if (!p) throw Error(Code::invalid_argument, std::string("null ") + what);
  return *p;
}

Tensor in(const BanyanTensor* t, const char* what) { return Tensor(deref(t, what)); }

int32_t op_step_input(BanyanStepContext* c, BanyanTensor* ids, BanyanTensor* pos, BanyanError* e) {
  return guard(e, [&] {
    Tensor i, p;
    self(c).step_input(&i, &p);
    deref(ids, "token_ids") = i;
    deref(pos, "positions") = p;
  });
}
int32_t op_alloc(BanyanStepContext* c, int32_t dtype, int32_t ndim, const int64_t* shape,
              BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] { deref(out, "out") = self(c).alloc(dtype, ndim, shape); });
}
int32_t op_weight(BanyanStepContext* c, const char* name, BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] { deref(out, "out") = self(c).weight(name); });
}
int32_t op_embedding(BanyanStepContext* c, const char* name, const BanyanTensor* ids,
                  BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).embedding(name, in(ids, "ids"), o);
  });
}
int32_t op_rms_norm(BanyanStepContext* c, const BanyanTensor* x, BanyanTensor* residual,
                 const char* w, float eps, float offset, BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    Tensor r = residual ? Tensor(*residual) : Tensor();
    self(c).rms_norm(in(x, "x"), residual ? &r : nullptr, w, eps, offset, o);
  });
}
int32_t op_layer_norm(BanyanStepContext* c, const BanyanTensor* x, BanyanTensor* residual,
                   const char* w, const char* b, float eps, BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    Tensor r = residual ? Tensor(*residual) : Tensor();
    self(c).layer_norm(in(x, "x"), residual ? &r : nullptr, w, b, eps, o);
  });
}
int32_t op_linear(BanyanStepContext* c, const char* name, const BanyanTensor* x, uint32_t flags,
               BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).linear(name, in(x, "x"), flags, o);
  });
}
int32_t op_rotary(BanyanStepContext* c, BanyanTensor* q, BanyanTensor* k, const BanyanRopeSpec* spec,
               BanyanError* e) {
  return guard(e, [&] {
    Tensor tq = in(q, "q"), tk = in(k, "k");
    self(c).rotary(tq, tk, deref(spec, "rope spec"));
  });
}
int32_t op_attention(BanyanStepContext* c, const BanyanTensor* q, const BanyanTensor* k,
                  const BanyanTensor* v, const BanyanAttentionSpec* spec, BanyanTensor* out,
                  BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).attention(in(q, "q"), in(k, "k"), in(v, "v"), deref(spec, "attention spec"), o);
  });
}
int32_t op_act_mul(BanyanStepContext* c, const BanyanTensor* g, const BanyanTensor* u, int32_t act,
                BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).act_mul(in(g, "gate"), in(u, "up"), act, o);
  });
}
int32_t op_activation(BanyanStepContext* c, const BanyanTensor* x, int32_t act, BanyanTensor* out,
                   BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).activation(in(x, "x"), act, o);
  });
}
int32_t op_add(BanyanStepContext* c, const BanyanTensor* a, const BanyanTensor* b, BanyanTensor* out,
            BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).add(in(a, "a"), in(b, "b"), o);
  });
}
int32_t op_logits(BanyanStepContext* c, const BanyanTensor* hidden, const char* name, uint32_t flags,
               BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] { deref(out, "out") = self(c).logits(in(hidden, "hidden"), name, flags); });
}

int32_t op_slice_columns(BanyanStepContext* c, const BanyanTensor* x, int64_t begin, int64_t count,
                         BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).slice_columns(in(x, "x"), begin, count, o);
  });
}

int32_t op_sample(BanyanStepContext* c, const BanyanTensor* logits, const BanyanSampleRow* rows,
                  int32_t num_rows, const BanyanLogitEdit* edits, int32_t num_edits,
                  BanyanSampleResult* out, BanyanError* e) {
  return guard(e, [&] {
    if (num_rows < 0 || num_edits < 0) throw Error(Code::invalid_argument, "sample: negative count");
    if ((num_rows > 0 && (!rows || !out)) || (num_edits > 0 && !edits))
      throw Error(Code::invalid_argument, "sample: null rows, edits or out");
    self(c).sample(in(logits, "logits"), {rows, static_cast<size_t>(num_rows)},
                   {edits, static_cast<size_t>(num_edits)}, {out, static_cast<size_t>(num_rows)});
  });
}

int32_t op_linear_n(BanyanStepContext* c, int32_t n, const char* const* names, const BanyanTensor* x,
                    uint32_t flags, BanyanTensor* outs, BanyanError* e) {
  return guard(e, [&] {
    if (n <= 0 || !names || !outs) throw Error(Code::invalid_argument, "linear_n: no modules");
    std::vector<Tensor> o(outs, outs + n);
    self(c).linear_n({names, static_cast<size_t>(n)}, in(x, "x"), flags, o);
    for (int32_t i = 0; i < n; ++i) outs[i] = o[static_cast<size_t>(i)];
  });
}

int32_t op_linear_gated(BanyanStepContext* c, const char* gate, const char* up, const BanyanTensor* x,
                        int32_t act, uint32_t flags, BanyanTensor* out, BanyanError* e) {
  return guard(e, [&] {
    Tensor o = in(out, "out");
    self(c).linear_gated(gate, up, in(x, "x"), act, flags, o);
  });
}

}  // namespace

const BanyanOpsV1& StepContext::ops() {
  static const BanyanOpsV1 table = {
      sizeof(BanyanOpsV1), &op_step_input, &op_alloc,     &op_weight,  &op_embedding,
      &op_rms_norm,        &op_layer_norm, &op_linear,    &op_rotary,  &op_attention,
      &op_act_mul,         &op_activation, &op_add,       &op_logits,  &op_slice_columns,
      &op_sample,          &op_linear_n,   &op_linear_gated,
  };
  return table;
}

}  // namespace banyan::core
