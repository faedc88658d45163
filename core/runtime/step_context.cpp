#include "core/runtime/step_context.h"

#include "core/runtime/kv_cache.h"
#include "core/runtime/linear.h"
#include "core/runtime/rope.h"
#include "core/runtime/step_arena.h"
#include "core/runtime/weight_store.h"

#include <banyan/error.h>

#include <cstring>
#include <string>

namespace banyan::core {
namespace {

std::string str(const char* s) { return s ? s : "(null)"; }

[[noreturn]] void fail(const std::string& op, const std::string& msg) {
  throw Error(Code::invalid_argument, op + ": " + msg);
}

void same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                const Tensor& b) {
  bool same = a.ndim == b.ndim && a.dtype == b.dtype;
  for (int i = 0; same && i < a.ndim; ++i) same = a.shape[i] == b.shape[i];
  if (!same)
    fail(op, std::string(a_name) + " is " + std::string(dtype_name(a.type())) + a.shape_string() +
                 " but " + b_name + " is " + std::string(dtype_name(b.type())) + b.shape_string());
}

bool valid_activation(int32_t a) { return a >= BANYAN_ACT_SILU && a <= BANYAN_ACT_RELU; }

}  // namespace

const RopeCache::Entry& RopeCache::get(const BanyanRopeSpec& spec) {
  for (const auto& e : entries_)
    if (std::memcmp(&e.spec, &spec, sizeof spec) == 0) return e;
  RopeFrequencies f = rope_frequencies(spec);
  Entry e;
  e.spec = spec;
  e.buffer = DeviceBuffer(backend_, f.inv_freq.size() * sizeof(float));
  e.inv_freq = e.buffer.view(DType::f32, {1, static_cast<int64_t>(f.inv_freq.size())});
  backend_.upload(e.buffer.data(), f.inv_freq.data(), f.inv_freq.size() * sizeof(float));
  e.scaling = f.attention_scaling;
  entries_.push_back(std::move(e));
  return entries_.back();
}

StepContext::StepContext(const StepResources& res, const ForwardBatch& batch,
                         const StepLayout& layout)
    : res_(res), batch_(batch), layout_(layout) {}

void StepContext::check_activation(const char* op, const char* what, const Tensor& t) const {
  if (!t.data) fail(op, std::string(what) + " has no data");
  if (t.device() != res_.backend.device())
    fail(op, std::string(what) + " is not on the step's device");
  if (t.type() != res_.backend.activation_dtype())
    fail(op, std::string(what) + " is " + std::string(dtype_name(t.type())) + ", the backend (" +
                 res_.backend.name() + ") computes in " +
                 std::string(dtype_name(res_.backend.activation_dtype())));
}

void StepContext::step_input(Tensor* ids, Tensor* positions) const {
  *ids = layout_.token_ids;
  *positions = layout_.positions;
}

Tensor StepContext::alloc(int32_t dtype, int32_t ndim, const int64_t* shape) {
  if (ndim < 1 || ndim > BANYAN_MAX_DIMS || !shape)
    fail("alloc", "ndim " + std::to_string(ndim) + " (1 to 4 allowed)");
  if (dtype < BANYAN_BF16 || dtype > BANYAN_FP8_E4M3)
    fail("alloc", "unknown dtype " + std::to_string(dtype));
  return res_.arena.tensor(static_cast<DType>(dtype), std::span<const int64_t>(shape, ndim));
}

Tensor StepContext::weight(const char* name) {
  if (!name) fail("weight", "null name");
  return res_.weights.get(name);
}

void StepContext::embedding(const char* name, const Tensor& ids, Tensor& out) {
  flush_rotary();
  const std::string op = "embedding " + str(name);
  const Tensor& table = weight(name);
  if (table.ndim != 2) fail(op, "table is " + table.shape_string() + ", expected [V, H]");
  if (ids.type() != DType::i32 || ids.ndim != 1) fail(op, "ids must be i32 [T]");
  check_activation(op.c_str(), "out", out);
  if (out.ndim != 2 || out.shape[0] != ids.shape[0] || out.shape[1] != table.shape[1])
    fail(op, "out is " + out.shape_string() + ", expected [" + std::to_string(ids.shape[0]) +
                 ", " + std::to_string(table.shape[1]) + "]");
  res_.backend.embedding(table, ids, out);
}

void StepContext::rms_norm(const Tensor& x, Tensor* residual, const char* weight_name, float eps,
                           float offset, Tensor& out) {
  flush_rotary();
  const std::string op = "rms_norm " + str(weight_name);
  check_activation(op.c_str(), "x", x);
  same_shape(op.c_str(), "out", out, "x", x);
  if (residual) same_shape(op.c_str(), "residual", *residual, "x", x);
  const Tensor& w = weight(weight_name);
  if (w.ndim != 1 || w.shape[0] != x.dim(-1))
    fail(op, "weight is " + w.shape_string() + " but x rows have " + std::to_string(x.dim(-1)));
  res_.backend.rms_norm(x, residual, w, eps, offset, out);
}

void StepContext::layer_norm(const Tensor& x, Tensor* residual, const char* weight_name,
                             const char* bias_name, float eps, Tensor& out) {
  flush_rotary();
  const std::string op = "layer_norm " + str(weight_name);
  check_activation(op.c_str(), "x", x);
  same_shape(op.c_str(), "out", out, "x", x);
  if (residual) same_shape(op.c_str(), "residual", *residual, "x", x);
  const Tensor& w = weight(weight_name);
  if (w.ndim != 1 || w.shape[0] != x.dim(-1))
    fail(op, "weight is " + w.shape_string() + " but x rows have " + std::to_string(x.dim(-1)));
  const Tensor* b = nullptr;
  if (bias_name) {
    b = &res_.weights.get(bias_name);
    if (b->ndim != 1 || b->shape[0] != x.dim(-1)) fail(op, "bias is " + b->shape_string());
  }
  res_.backend.layer_norm(x, residual, w, b, eps, out);
}

void StepContext::linear(const char* name, const Tensor& x, uint32_t flags, Tensor& out) {
  flush_rotary();
  if (!name) fail("linear", "null module name");
  const std::string op = "linear " + std::string(name);
  check_activation(op.c_str(), "x", x);
  check_activation(op.c_str(), "out", out);
  LinearContext ctx{res_.backend, res_.arena, layout_, batch_, layout_.adapter_slots,
                    layout_.has_adapters};
  if (x.ndim != 2 || x.shape[0] != layout_.num_tokens)
    fail(op, "x is " + x.shape_string() + ", expected [" + std::to_string(layout_.num_tokens) +
                 ", in_features] (one row per token of the step)");
  res_.linears.forward(name, flags, ctx, x, out);
}

void StepContext::linear_n(std::span<const char* const> names, const Tensor& x, uint32_t flags,
                           std::span<Tensor> outs) {
  flush_rotary();
  if (names.empty() || names.size() > 16)
    fail("linear_n", std::to_string(names.size()) + " modules (1 to 16 expected)");
  std::vector<std::string> modules;
  for (const char* n : names) {
    if (!n) fail("linear_n", "null module name");
    modules.emplace_back(n);
  }
  const std::string op = "linear_n " + modules.front();
  check_activation(op.c_str(), "x", x);
  if (x.ndim != 2 || x.shape[0] != layout_.num_tokens)
    fail(op, "x is " + x.shape_string() + ", expected [" + std::to_string(layout_.num_tokens) +
                 ", in_features] (one row per token of the step)");
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].ndim != 2 || outs[i].shape[0] != x.shape[0] || outs[i].dtype != x.dtype)
      fail(op, "out " + std::to_string(i) + " (" + modules[i] + ") is " + outs[i].shape_string() +
                   " " + std::string(dtype_name(outs[i].type())) + ", expected [" +
                   std::to_string(x.shape[0]) + ", N] " + std::string(dtype_name(x.type())));
  LinearContext ctx{res_.backend, res_.arena, layout_, batch_, layout_.adapter_slots,
                    layout_.has_adapters};
  res_.linears.forward_n(modules, flags, ctx, x, outs);
}

void StepContext::linear_gated(const char* gate, const char* up, const Tensor& x, int32_t act,
                               uint32_t flags, Tensor& out) {
  flush_rotary();
  if (!gate || !up) fail("linear_gated", "null module name");
  const std::string op = "linear_gated " + std::string(gate);
  check_activation(op.c_str(), "x", x);
  check_activation(op.c_str(), "out", out);
  if (x.ndim != 2 || x.shape[0] != layout_.num_tokens)
    fail(op, "x is " + x.shape_string() + ", expected [" + std::to_string(layout_.num_tokens) +
                 ", in_features] (one row per token of the step)");
  if (out.ndim != 2 || out.shape[0] != x.shape[0] || out.dtype != x.dtype)
    fail(op, "out is " + out.shape_string() + ", expected [" + std::to_string(x.shape[0]) + ", N]");
  if (act < BANYAN_ACT_SILU || act > BANYAN_ACT_RELU) fail(op, "unknown activation " + std::to_string(act));
  LinearContext ctx{res_.backend, res_.arena, layout_, batch_, layout_.adapter_slots,
                    layout_.has_adapters};
  res_.linears.forward_gated(gate, up, flags, ctx, x, act, out);
}

void StepContext::rotary(Tensor& q, Tensor& k, const BanyanRopeSpec& spec) {
  const std::string op = "rotary";
  const RopeCache::Entry& table = res_.rope.get(spec);  // validates the spec
  check_activation(op.c_str(), "q", q);
  check_activation(op.c_str(), "k", k);
  const int64_t T = layout_.num_tokens, D = spec.head_dim;
  if (q.ndim != 2 || q.shape[0] != T || q.shape[1] % D || k.ndim != 2 || k.shape[0] != T ||
      k.shape[1] % D)
    fail(op, "q is " + q.shape_string() + " and k " + k.shape_string() + ", expected [" +
                 std::to_string(T) + ", heads * " + std::to_string(D) + "]");
  RotaryParams p;
  p.positions = layout_.positions;
  p.inv_freq = table.inv_freq;
  p.attention_scaling = table.scaling;
  p.head_dim = spec.head_dim;
  p.rotary_dim = spec.rotary_dim;
  p.neox = spec.neox != 0;
  bool beyond = false;
  if (spec.type == BANYAN_ROPE_DYNAMIC)
    for (const auto& s : batch_.seqs) beyond |= s.context_len > spec.max_position;
  if (beyond) {  // dynamic NTK: one frequency row per sequence, from its length
    const int64_t half = spec.rotary_dim / 2, S = layout_.num_seqs;
    std::vector<float>& rows = dynamic_rows_;
    rows.clear();
    for (const auto& s : batch_.seqs) {
      RopeFrequencies f = rope_frequencies(spec, s.context_len);
      rows.insert(rows.end(), f.inv_freq.begin(), f.inv_freq.end());
    }
    p.inv_freq = res_.arena.tensor(DType::f32, {S, half});
    res_.backend.upload(p.inv_freq.data, rows.data(), rows.size() * sizeof(float));
    p.freq_row = layout_.token_seq;
  }
  flush_rotary();
  if (layout_.max_query_len == 1) {  // decode: the attention op may apply it
    pending_rotary_ = PendingRotary{q, k, p};
    return;
  }
  res_.backend.rotary(q, k, p);
}

void StepContext::flush_rotary() {
  if (!pending_rotary_) return;
  PendingRotary r = *pending_rotary_;
  pending_rotary_.reset();
  res_.backend.rotary(r.q, r.k, r.params);
}

void StepContext::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                            const BanyanAttentionSpec& spec, Tensor& out) {
  const std::string op = "attention (layer " + std::to_string(spec.layer) + ")";
  const KvCacheConfig& kc = res_.kv.config();
  if (spec.layer < 0 || spec.layer >= kc.num_layers)
    fail(op, "layer is outside the KV cache's " + std::to_string(kc.num_layers) + " layers");
  if (spec.num_kv_heads != kc.num_kv_heads || spec.head_dim != kc.head_dim)
    fail(op, "kv heads " + std::to_string(spec.num_kv_heads) + " x head_dim " +
                 std::to_string(spec.head_dim) + " do not match the KV cache (" +
                 std::to_string(kc.num_kv_heads) + " x " + std::to_string(kc.head_dim) + ")");
  if (spec.num_heads <= 0 || spec.num_heads % spec.num_kv_heads)
    fail(op, "num_heads " + std::to_string(spec.num_heads) + " is not a multiple of kv heads");
  if (spec.sliding_window < 0) fail(op, "negative sliding_window");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}})
    check_activation(op.c_str(), name, *t);
  const int64_t T = layout_.num_tokens;
  const int64_t qw = int64_t{spec.num_heads} * spec.head_dim;
  const int64_t kw = int64_t{spec.num_kv_heads} * spec.head_dim;
  auto is = [&](const Tensor& t, int64_t w) { return t.ndim == 2 && t.shape[0] == T && t.shape[1] == w; };
  if (!is(q, qw) || !is(out, qw) || !is(k, kw) || !is(v, kw))
    fail(op, "q " + q.shape_string() + ", k " + k.shape_string() + ", v " + v.shape_string() +
                 ", out " + out.shape_string() + "; expected q/out [" + std::to_string(T) + ", " +
                 std::to_string(qw) + "] and k/v [" + std::to_string(T) + ", " +
                 std::to_string(kw) + "]");
  if (kc.dtype != q.type()) fail(op, "the KV cache dtype differs from q's");
  AttentionParams p;
  p.layout = &layout_;
  p.k_cache = res_.kv.key(spec.layer);
  p.v_cache = res_.kv.value(spec.layer);
  p.block_size = kc.block_size;
  p.num_heads = spec.num_heads;
  p.num_kv_heads = spec.num_kv_heads;
  p.head_dim = spec.head_dim;
  p.scale = spec.scale;
  p.sliding_window = spec.sliding_window;
  if (pending_rotary_ && pending_rotary_->q.data == q.data && pending_rotary_->k.data == k.data &&
      pending_rotary_->q.nbytes() == q.nbytes() && pending_rotary_->k.nbytes() == k.nbytes()) {
    PendingRotary r = *pending_rotary_;
    pending_rotary_.reset();
    if (res_.backend.attention_rotary(q, k, v, r.params, p, out)) return;
    res_.backend.rotary(r.q, r.k, r.params);
  }
  flush_rotary();
  res_.backend.attention(q, k, v, p, out);
}

void StepContext::act_mul(const Tensor& gate, const Tensor& up, int32_t act, Tensor& out) {
  flush_rotary();
  if (!valid_activation(act)) fail("act_mul", "unknown activation " + std::to_string(act));
  check_activation("act_mul", "gate", gate);
  same_shape("act_mul", "up", up, "gate", gate);
  same_shape("act_mul", "out", out, "gate", gate);
  res_.backend.act_mul(gate, up, act, out);
}

void StepContext::activation(const Tensor& x, int32_t act, Tensor& out) {
  flush_rotary();
  if (!valid_activation(act)) fail("activation", "unknown activation " + std::to_string(act));
  check_activation("activation", "x", x);
  same_shape("activation", "out", out, "x", x);
  res_.backend.activation(x, act, out);
}

void StepContext::add(const Tensor& a, const Tensor& b, Tensor& out) {
  flush_rotary();
  check_activation("add", "a", a);
  same_shape("add", "b", b, "a", a);
  same_shape("add", "out", out, "a", a);
  res_.backend.add(a, b, out);
}

void StepContext::slice_columns(const Tensor& x, int64_t begin, int64_t count, Tensor& out) {
  flush_rotary();
  check_activation("slice_columns", "x", x);
  if (x.ndim != 2) fail("slice_columns", "x is " + x.shape_string() + ", expected [T, N]");
  if (begin < 0 || count <= 0 || begin + count > x.shape[1])
    fail("slice_columns", "columns [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                              ") are outside x " + x.shape_string());
  if (out.ndim != 2 || out.shape[0] != x.shape[0] || out.shape[1] != count || out.dtype != x.dtype)
    fail("slice_columns", "out is " + out.shape_string() + ", expected [" +
                              std::to_string(x.shape[0]) + ", " + std::to_string(count) + "]");
  const size_t es = dtype_size(x.type());
  res_.backend.copy_2d(out.data, static_cast<size_t>(count) * es,
                       static_cast<const char*>(x.data) + static_cast<size_t>(begin) * es,
                       static_cast<size_t>(x.shape[1]) * es, static_cast<size_t>(count) * es,
                       static_cast<size_t>(x.shape[0]));
}

Tensor StepContext::logits(const Tensor& hidden, const char* name, uint32_t flags) {
  flush_rotary();
  if (!name) fail("logits", "null module name");
  const std::string op = "logits " + std::string(name);
  check_activation(op.c_str(), "hidden", hidden);
  if (hidden.ndim != 2 || hidden.shape[0] != layout_.num_tokens)
    fail(op, "hidden is " + hidden.shape_string() + ", expected [" +
                 std::to_string(layout_.num_tokens) + ", H]");
  const int64_t R = layout_.logits_rows.numel();
  Tensor rows = res_.arena.tensor(hidden.type(), {R, hidden.shape[1]});
  res_.backend.gather_rows(hidden, layout_.logits_rows, rows);
  LinearProvider& p = res_.linears.resolve(name, flags);
  Tensor out = res_.arena.tensor(DType::f32, {R, p.out_features()});
  LinearContext ctx{res_.backend, res_.arena, layout_, batch_, layout_.logits_adapter_slots,
                    layout_.has_adapters};
  if (R > 0) res_.linears.forward(name, flags, ctx, rows, out);
  return out;
}

void StepContext::sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
                         std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out) {
  flush_rotary();
  const char* op = "sample";
  if (!logits.data || logits.type() != DType::f32 || logits.ndim != 2)
    fail(op, "logits must be f32 [R, V], got " + std::string(dtype_name(logits.type())) +
                 logits.shape_string());
  if (logits.device() != res_.backend.device()) fail(op, "logits are not on the step's device");
  const int64_t R = logits.shape[0], V = logits.shape[1];
  for (size_t i = 0; i < rows.size(); ++i) {
    const BanyanSampleRow& r = rows[i];
    const std::string row = "row " + std::to_string(i) + ": ";
    if (r.logits_row < 0 || r.logits_row >= R)
      fail(op, row + "logits_row " + std::to_string(r.logits_row) + " is outside [0, " +
                   std::to_string(R) + ")");
    if (!(r.temperature >= 0) || !(r.top_p > 0 && r.top_p <= 1) || !(r.min_p >= 0 && r.min_p <= 1) ||
        !(r.u >= 0 && r.u < 1))
      fail(op, row + "temperature >= 0, top_p in (0, 1], min_p in [0, 1] and u in [0, 1) expected");
    if (r.num_logprobs < 0 || r.num_logprobs > V ||
        (r.num_logprobs > 0 && (!out[i].top_ids || !out[i].top_logprobs)))
      fail(op, row + "num_logprobs " + std::to_string(r.num_logprobs) +
                   " needs that many top_ids / top_logprobs (at most V)");
    if (r.first_edit < 0 || r.num_edits < 0 ||
        static_cast<int64_t>(r.first_edit) + r.num_edits > static_cast<int64_t>(edits.size()))
      fail(op, row + "edits out of range");
    for (int32_t e = r.first_edit; e < r.first_edit + r.num_edits; ++e) {
      const int32_t t = edits[e].token;
      if (t < 0 || t >= V || (e > r.first_edit && t <= edits[e - 1].token))
        fail(op, row + "edit tokens must lie in [0, V) and increase (token " + std::to_string(t) + ")");
    }
  }
  if (!rows.empty()) res_.backend.sample(logits, rows, edits, out);
}

}  // namespace banyan::core
