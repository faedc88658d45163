// The Llama-family decoder, written with SDK ops only:
//   h = embed(ids); per layer: x = rmsnorm(h); h += o(attn(rope(q(x)), rope(k(x)), v(x)));
//   x = rmsnorm(h); h += down(act(gate(x)) * up(x)); logits = lm_head(rmsnorm(h)).
// The residual adds are fused into the next RMSNorm; q/k/v and gate/up each go
// through one op (linear_n, linear_gated; the host may fuse their products). Qwen3 adds an RMSNorm over
// each head of q and k before the rotation.
#include "llama_config.h"

#include <banyan/model.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace banyan::llama {
namespace {

using nlohmann::json;

DType parse_dtype(const std::string& s) {
  if (s == "F32") return DType::f32;
  if (s == "BF16") return DType::bf16;
  if (s == "F16") return DType::f16;
  throw Error(Code::unsupported, "activation_dtype \"" + s + "\" is not supported");
}

class LlamaModel final : public Model {
 public:
  explicit LlamaModel(const ModelContext& ctx) : log_(ctx.log) {
    json opts;
    try {
      opts = json::parse(ctx.options_json);
    } catch (const json::exception& e) {
      throw Error(std::string("options are not valid JSON: ") + e.what());
    }
    if (!opts.contains("config")) throw Error("options carry no \"config\" (config.json)");
    cfg_ = parse_llama_config(opts["config"]);
    act_dtype_ = parse_dtype(opts.value("activation_dtype", std::string("F32")));
    lm_head_ = cfg_.tie_embeddings ? "model.embed_tokens" : "lm_head";
    check_weights(ctx);
    log_.info(cfg_.model_type + ": " + std::to_string(cfg_.layers) + " layers, hidden " +
              std::to_string(cfg_.hidden) + ", heads " + std::to_string(cfg_.heads) + "/" +
              std::to_string(cfg_.kv_heads) + " x " + std::to_string(cfg_.head_dim) +
              ", vocab " + std::to_string(cfg_.vocab));
  }

  BanyanModelSpec spec() const override {
    BanyanModelSpec s{};
    s.struct_size = sizeof(BanyanModelSpec);
    s.num_layers = static_cast<int32_t>(cfg_.layers);
    s.num_kv_heads = static_cast<int32_t>(cfg_.kv_heads);
    s.head_dim = static_cast<int32_t>(cfg_.head_dim);
    s.vocab_size = static_cast<int32_t>(cfg_.vocab);
    s.max_position = cfg_.max_position;
    s.hidden_size = static_cast<int32_t>(cfg_.hidden);
    // One window for the engine only when every layer uses it.
    s.sliding_window = cfg_.window.empty() ? 0 : cfg_.window[0];
    for (int32_t w : cfg_.window)
      if (w != s.sliding_window) s.sliding_window = 0;
    return s;
  }

  Tensor forward(const Ops& ops) override {
    const int64_t H = cfg_.hidden, D = cfg_.head_dim, Hq = cfg_.heads, Hk = cfg_.kv_heads;
    const float eps = cfg_.rms_eps;
    auto [ids, positions] = ops.step_input();
    const int64_t T = ids.shape[0];
    Tensor residual = ops.embedding("model.embed_tokens.weight", ids, act_dtype_, H);
    Tensor x = ops.rms_norm(residual, nullptr, layer(0) + "input_layernorm.weight", eps);
    for (int64_t l = 0; l < cfg_.layers; ++l) {
      const std::string p = layer(l);
      // q, k and v (and below gate and up) read the same x: one linear_n each, which
      // the host may run as one product.
      const std::string qkv_names[] = {p + "self_attn.q_proj", p + "self_attn.k_proj",
                                       p + "self_attn.v_proj"};
      const int64_t qkv_dims[] = {Hq * D, Hk * D, Hk * D};
      std::vector<Tensor> qkv = ops.linear_n(qkv_names, x, qkv_dims);
      Tensor q = qkv[0], k = qkv[1], v = qkv[2];
      if (cfg_.qk_norm) {
        q = ops.rms_norm(q.view({T * Hq, D}), nullptr, p + "self_attn.q_norm.weight", eps)
                .view({T, Hq * D});
        k = ops.rms_norm(k.view({T * Hk, D}), nullptr, p + "self_attn.k_norm.weight", eps)
                .view({T, Hk * D});
      }
      ops.rotary(q, k, cfg_.rope);
      BanyanAttentionSpec a{};
      a.layer = static_cast<int32_t>(l);
      a.num_heads = static_cast<int32_t>(Hq);
      a.num_kv_heads = static_cast<int32_t>(Hk);
      a.head_dim = static_cast<int32_t>(D);
      a.scale = 1.0f / std::sqrt(static_cast<float>(D));
      a.sliding_window = cfg_.window[static_cast<size_t>(l)];
      Tensor attn = ops.attention(q, k, v, a);
      Tensor o = ops.linear(p + "self_attn.o_proj", attn, H);
      x = ops.rms_norm(o, &residual, p + "post_attention_layernorm.weight", eps);
      Tensor gated = ops.linear_gated(p + "mlp.gate_proj", p + "mlp.up_proj", x, cfg_.intermediate, act());
      Tensor mlp = ops.linear(p + "mlp.down_proj", gated, H);
      const std::string next =
          l + 1 < cfg_.layers ? layer(l + 1) + "input_layernorm.weight" : "model.norm.weight";
      x = ops.rms_norm(mlp, &residual, next, eps);
    }
    return ops.logits(x, lm_head_);
  }

 private:
  static std::string layer(int64_t l) { return "model.layers." + std::to_string(l) + "."; }
  Activation act() const { return static_cast<Activation>(cfg_.activation); }

  // Every tensor the forward pass will ask for, with its shape, before any step.
  void check_weights(const ModelContext& ctx) const {
    auto need = [&](const std::string& name, std::vector<int64_t> shape) {
      Tensor t;
      if (!ctx.weight_info(name, &t))
        throw Error(Code::not_found, "checkpoint is missing tensor \"" + name + "\"");
      bool ok = t.ndim == static_cast<int>(shape.size());
      for (size_t i = 0; ok && i < shape.size(); ++i) ok = t.shape[i] == shape[i];
      if (!ok) {
        std::string want = "[";
        for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
        throw Error("tensor \"" + name + "\" is " + t.shape_string() + ", config.json implies " +
                    want + "]");
      }
    };
    const int64_t H = cfg_.hidden, D = cfg_.head_dim, I = cfg_.intermediate;
    const int64_t QD = cfg_.heads * D, KD = cfg_.kv_heads * D;
    need("model.embed_tokens.weight", {cfg_.vocab, H});
    need("model.norm.weight", {H});
    if (!cfg_.tie_embeddings) need("lm_head.weight", {cfg_.vocab, H});
    for (int64_t l = 0; l < cfg_.layers; ++l) {
      const std::string p = layer(l);
      need(p + "input_layernorm.weight", {H});
      need(p + "post_attention_layernorm.weight", {H});
      need(p + "self_attn.q_proj.weight", {QD, H});
      need(p + "self_attn.k_proj.weight", {KD, H});
      need(p + "self_attn.v_proj.weight", {KD, H});
      need(p + "self_attn.o_proj.weight", {H, QD});
      need(p + "mlp.gate_proj.weight", {I, H});
      need(p + "mlp.up_proj.weight", {I, H});
      need(p + "mlp.down_proj.weight", {H, I});
      if (cfg_.qkv_bias) {
        need(p + "self_attn.q_proj.bias", {QD});
        need(p + "self_attn.k_proj.bias", {KD});
        need(p + "self_attn.v_proj.bias", {KD});
      }
      if (cfg_.o_bias) need(p + "self_attn.o_proj.bias", {H});
      if (cfg_.mlp_bias) {
        need(p + "mlp.gate_proj.bias", {I});
        need(p + "mlp.up_proj.bias", {I});
        need(p + "mlp.down_proj.bias", {H});
      }
      if (cfg_.qk_norm) {
        need(p + "self_attn.q_norm.weight", {D});
        need(p + "self_attn.k_norm.weight", {D});
      }
    }
  }

  Logger log_;
  LlamaConfig cfg_;
  DType act_dtype_ = DType::f32;
  std::string lm_head_;
};

}  // namespace
}  // namespace banyan::llama

BANYAN_MODEL_PLUGIN(banyan::llama::LlamaModel, "llama", "0.1.0")
