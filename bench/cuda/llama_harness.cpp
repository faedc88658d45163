#include "llama_harness.h"

#include "core/runtime/linear.h"
#include "kernels/cuda/kernels.h"

#include <banyan/abi.h>
#include <banyan/error.h>

#include <cmath>

namespace banyan::bench {

double LlamaShape::step_weight_bytes() const {
  const double per_layer = static_cast<double>(hidden) * (heads * head_dim) * 2 +
                           static_cast<double>(hidden) * (kv_heads * head_dim) * 2 +
                           static_cast<double>(hidden) * intermediate * 3;
  return 2.0 * (per_layer * layers + static_cast<double>(vocab) * hidden);
}

double LlamaShape::flops_per_token() const {
  return step_weight_bytes();  // 2 FLOPs per bf16 parameter (2 bytes): the same number
}

core::DeviceBuffer LlamaHarness::alloc(DType t, std::initializer_list<int64_t> shape,
                                       Tensor& view) {
  Tensor probe(nullptr, t, shape);
  core::DeviceBuffer buf(b_, probe.nbytes());
  view = buf.view(t, shape);
  return buf;
}

LlamaHarness::LlamaHarness(kernels::cuda::CudaBackend& b, const LlamaShape& s, int64_t kv_blocks,
                           int32_t block_size, int64_t max_tokens, int64_t max_seqs,
                           int64_t max_table)
    : b_(b), s_(s), block_size_(block_size) {
  const int64_t H = s.hidden, I = s.intermediate, Dq = s.heads * s.head_dim,
                Dk = s.kv_heads * s.head_dim;
  uint64_t seed = 1;
  auto random_matrix = [&](int64_t rows, int64_t cols) {
    Tensor t;
    owned_.push_back(alloc(DType::bf16, {rows, cols}, t));
    // Uniform with variance 1/cols: activations keep their scale through the layer.
    kernels::cuda::fill_uniform_bf16(static_cast<uint16_t*>(t.data), rows * cols, seed++,
                                     std::sqrt(3.0f / static_cast<float>(cols)), b_.stream());
    return t;
  };
  embed_ = random_matrix(s.vocab, H);
  lm_head_ = random_matrix(s.vocab, H);
  const int64_t out_dims[kProjections] = {Dq, Dk, Dk, H, I, I, H};
  const int64_t in_dims[kProjections] = {H, H, H, Dq, H, H, I};
  // q/k/v and gate/up side by side, as the runtime loads the llama plugin's linear_n
  // groups (LinearRegistry::forward_n); each projection is a view of its part.
  for (int64_t l = 0; l < s.layers; ++l) {
    qkv_w_.push_back(random_matrix(Dq + 2 * Dk, H));
    gate_up_w_.push_back(random_matrix(2 * I, H));
    for (int p = 0; p < kProjections; ++p) {
      if (p == kQ || p == kK || p == kV) {
        const int64_t first = p == kQ ? 0 : p == kK ? Dq : Dq + Dk;
        w_[p].push_back(qkv_w_.back().rows(first, out_dims[p]));
      } else if (p == kGate || p == kUp) {
        w_[p].push_back(gate_up_w_.back().rows(p == kGate ? 0 : I, I));
      } else {
        w_[p].push_back(random_matrix(out_dims[p], in_dims[p]));
      }
    }
  }
  // Norm weights (1.0) and rotary frequencies, from the host.
  owned_.push_back(alloc(DType::f32, {H}, ones_));
  std::vector<float> one(static_cast<size_t>(H), 1.0f);
  b_.upload(ones_.data, one.data(), one.size() * sizeof(float));
  final_norm_ = ones_;
  const int64_t half = s.head_dim / 2;
  owned_.push_back(alloc(DType::f32, {1, half}, inv_freq_));
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    f[i] = static_cast<float>(std::pow(s.rope_theta, -2.0 * i / static_cast<double>(s.head_dim)));
  b_.upload(inv_freq_.data, f.data(), f.size() * sizeof(float));
  // KV cache with random contents (as if the prompts had been prefilled).
  for (int64_t l = 0; l < s.layers; ++l) {
    for (auto* pool : {&k_cache_, &v_cache_}) {
      Tensor t;
      owned_.push_back(alloc(DType::bf16, {kv_blocks, block_size, s.kv_heads, s.head_dim}, t));
      kernels::cuda::fill_uniform_bf16(static_cast<uint16_t*>(t.data), t.numel(), seed++, 1.0f,
                                       b_.stream());
      pool->push_back(t);
    }
  }
  const int64_t T = max_tokens;
  for (auto [view, width] : {std::pair{&residual_, H}, {&x_, H}, {&q_, Dq}, {&k_, Dk}, {&v_, Dk},
                             {&attn_, Dq}, {&o_, H}, {&gate_, I}, {&up_, I}, {&act_, I},
                             {&down_, H}, {&qkv_, Dq + 2 * Dk}, {&gate_up_, 2 * I}}) {
    owned_.push_back(alloc(DType::bf16, {T, width}, *view));
  }
  owned_.push_back(alloc(DType::bf16, {max_seqs, H}, rows_));
  owned_.push_back(alloc(DType::f32, {max_seqs, s.vocab}, logits_));
  owned_.push_back(alloc(DType::i32, {7 * T + 4 * max_seqs + max_table + 2 * max_seqs}, layout_buf_));
  b_.synchronize();
}

void LlamaHarness::set_step(const std::vector<int32_t>& ids, const std::vector<int32_t>& pos,
                            const std::vector<int32_t>& slots, const std::vector<int32_t>& info,
                            const std::vector<int32_t>& tables, const std::vector<int32_t>& rows,
                            int32_t max_query_len, int32_t max_context_len,
                            const std::vector<int32_t>& adapter_slots) {
  const int32_t T = static_cast<int32_t>(ids.size()), S = static_cast<int32_t>(info.size() / 4);
  const int32_t B = static_cast<int32_t>(tables.size()), R = static_cast<int32_t>(rows.size());
  staging_.clear();
  auto append = [&](const std::vector<int32_t>& v) { staging_.insert(staging_.end(), v.begin(), v.end()); };
  append(ids);
  append(pos);
  append(slots);
  if (adapter_slots.empty())
    staging_.insert(staging_.end(), T, -1);
  else if (static_cast<int32_t>(adapter_slots.size()) == T)
    append(adapter_slots);
  else
    throw Error("bench: adapter slots for " + std::to_string(adapter_slots.size()) + " of " +
                std::to_string(T) + " tokens");
  for (int32_t s = 0; s < S; ++s) staging_.insert(staging_.end(), info[4 * s + 1], s);
  append(info);
  append(tables);
  append(rows);
  staging_.insert(staging_.end(), R, -1);
  if (static_cast<int64_t>(staging_.size()) > layout_buf_.numel())
    throw Error("bench: step layout larger than its buffer");
  b_.upload(layout_buf_.data, staging_.data(), staging_.size() * sizeof(int32_t));
  int32_t* cur = layout_buf_.as<int32_t>();
  const Device dev = b_.device();
  auto take = [&](std::initializer_list<int64_t> shape) {
    Tensor t(cur, DType::i32, shape, dev);
    cur += t.numel();
    return t;
  };
  layout_.token_ids = take({T});
  layout_.positions = take({T});
  layout_.slot_mapping = take({T});
  layout_.adapter_slots = take({T});
  layout_.token_seq = take({T});
  layout_.seq_info = take({S, 4});
  layout_.block_tables = take({B});
  layout_.logits_rows = take({R});
  layout_.logits_adapter_slots = take({R});
  layout_.num_tokens = T;
  layout_.num_seqs = S;
  layout_.max_query_len = max_query_len;
  layout_.max_context_len = max_context_len;
  layout_.has_adapters = !adapter_slots.empty();
  ++layout_.step_id;
}

void LlamaHarness::forward(unsigned mask) {
  const int64_t T = layout_.num_tokens, H = s_.hidden, I = s_.intermediate;
  const int64_t Dq = s_.heads * s_.head_dim, Dk = s_.kv_heads * s_.head_dim;
  const bool gemm = mask & kGemm, attn = mask & kAttention, other = mask & kOther;
  const bool lora = (mask & kLora) && hook_;
  Tensor residual = residual_.view({T, H}), x = x_.view({T, H}), q = q_.view({T, Dq}),
         k = k_.view({T, Dk}), v = v_.view({T, Dk}), at = attn_.view({T, Dq}),
         o = o_.view({T, H}), gate = gate_.view({T, I}), up = up_.view({T, I}),
         act = act_.view({T, I}), down = down_.view({T, H});
  core::RotaryParams rp;
  rp.positions = layout_.positions;
  rp.inv_freq = inv_freq_;
  rp.head_dim = static_cast<int32_t>(s_.head_dim);
  rp.rotary_dim = static_cast<int32_t>(s_.head_dim);
  core::AttentionParams ap;
  ap.layout = &layout_;
  ap.block_size = block_size_;
  ap.num_heads = static_cast<int32_t>(s_.heads);
  ap.num_kv_heads = static_cast<int32_t>(s_.kv_heads);
  ap.head_dim = static_cast<int32_t>(s_.head_dim);
  ap.scale = 1.0f / std::sqrt(static_cast<float>(s_.head_dim));

  // One projection as the runtime's LinearRegistry runs it: hook, product, hook.
  auto project = [&](int64_t l, Proj p, const Tensor& in, Tensor& y) {
    if (lora) hook_(l, p, in, y, true);
    if (gemm) b_.matmul(in, w_[p][l], false, nullptr, y);
    if (lora) hook_(l, p, in, y, false);
  };
  // A linear_n group as LinearRegistry::forward_n runs it: one product over the
  // fused weight when that pays (its outputs are views of the one row, or split),
  // else one product per projection; with adapters, every projection's hook before
  // the one product and after it.
  auto group = [&](int64_t l, std::initializer_list<Proj> ps, const Tensor& fused_w,
                   const Tensor& scratch, const Tensor& in, std::initializer_list<Tensor*> ys) {
    std::vector<int64_t> parts;
    for (Proj p : ps) parts.push_back(w_[p][l].dim(0));
    if (!fuse_ || !core::fused_product_pays(T, parts, in.dim(1), 2)) {
      auto y = ys.begin();
      for (Proj p : ps) project(l, p, in, **y++);
      return;
    }
    Tensor all = scratch.view({T, fused_w.dim(0)});
    if (T == 1) {
      int64_t begin = 0;
      auto n = parts.begin();
      for (Tensor* y : ys) {
        y->data = static_cast<uint16_t*>(all.data) + begin;
        begin += *n++;
      }
    }
    auto hooks = [&](bool before) {
      if (!lora) return;
      auto y = ys.begin();
      for (Proj p : ps) hook_(l, p, in, **y++, before);
    };
    hooks(true);
    if (gemm) b_.matmul(in, fused_w, false, nullptr, all);
    if (T > 1) {
      std::vector<Tensor> outs;
      for (Tensor* y : ys) outs.push_back(*y);
      if (gemm) b_.split_columns(all, outs);
    }
    hooks(false);
  };
  if (other) b_.embedding(embed_, layout_.token_ids, residual);
  if (other) b_.rms_norm(residual, nullptr, ones_, s_.eps, 0.0f, x);
  for (int64_t l = 0; l < s_.layers; ++l) {
    group(l, {kQ, kK, kV}, qkv_w_[l], qkv_, x, {&q, &k, &v});
    ap.k_cache = k_cache_[l];
    ap.v_cache = v_cache_[l];
    // Decode: the rotary embedding inside attention where the backend can (the
    // runtime defers rotary() to the attention op, StepContext).
    const bool one_pass = fuse_ && other && attn && b_.attention_rotary(q, k, v, rp, ap, at);
    if (!one_pass) {
      if (other) b_.rotary(q, k, rp);
      if (attn) b_.attention(q, k, v, ap, at);
    }
    project(l, kO, at, o);
    if (other) b_.rms_norm(o, &residual, ones_, s_.eps, 0.0f, x);
    // linear_gated: one pass with act-and-multiply in its epilogue where the backend
    // has it (decode rows), else (below) the group and act_mul.
    const bool gated = fuse_ && !(lora && layout_.has_adapters) && gemm && other &&
                       b_.matmul_gated(x, gate_up_w_[l], BANYAN_ACT_SILU, act);
    // Wide pairs of more rows, up to core::gated_product_max_rows(): one product and
    // act_mul_halves over its halves (LinearRegistry::forward_gated).
    const bool halves = !gated && fuse_ && !(lora && layout_.has_adapters) && T > 1 &&
                        T <= core::gated_product_max_rows();
    if (halves) {
      Tensor all = gate_up_.view({T, 2 * I});
      if (gemm) b_.matmul(x, gate_up_w_[l], false, nullptr, all);
      if (other) b_.act_mul_halves(all, BANYAN_ACT_SILU, act);
    }
    if (!gated && !halves) group(l, {kGate, kUp}, gate_up_w_[l], gate_up_, x, {&gate, &up});
    if (other && !gated && !halves) b_.act_mul(gate, up, BANYAN_ACT_SILU, act);
    project(l, kDown, act, down);
    if (other) b_.rms_norm(down, &residual, l + 1 < s_.layers ? ones_ : final_norm_, s_.eps, 0.0f, x);
  }
  const int64_t R = layout_.logits_rows.numel();
  Tensor rows = rows_.view({R, H}), logits = logits_.view({R, s_.vocab});
  if (other) b_.gather_rows(x, layout_.logits_rows, rows);
  if (gemm) b_.matmul(rows, lm_head_, false, nullptr, logits);
}

void LlamaHarness::projections(Proj p) {
  const int64_t T = layout_.num_tokens;
  for (int64_t l = 0; l < s_.layers; ++l) {
    const Tensor& w = w_[p][l];
    const int64_t in = w.dim(1), out = w.dim(0);
    Tensor x = (p == kO ? attn_ : p == kDown ? act_ : x_).view({T, in});
    Tensor y = (p == kGate ? gate_ : p == kUp ? up_ : p == kDown ? down_ : p == kO ? o_ : q_).view({T, out});
    b_.matmul(x, w, false, nullptr, y);
  }
}

}  // namespace banyan::bench
