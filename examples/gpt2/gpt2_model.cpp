// GPT-2 with SDK ops only — an architecture unlike Llama:
//   h = wte[ids] + wpe[positions]; per layer:
//     a = c_proj(attn(split(c_attn(ln_1(h))))); h += a
//     m = c_proj(gelu_tanh(c_fc(ln_2(h))));      h += m
//   logits = ln_f(h) · wte^T   (tied embeddings)
// Conv1D weights are stored [in, out]: linear() is told so with
// BANYAN_LINEAR_TRANSPOSED, which is also what PEFT's fan_in_fan_out adapters expect.
#include <banyan/model.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

namespace {

using banyan::Code;
using banyan::DType;
using banyan::Error;
using banyan::Ops;
using banyan::Tensor;
using nlohmann::json;

struct Gpt2Config {
  int64_t hidden = 0, layers = 0, heads = 0, vocab = 0, positions = 0, inner = 0;
  float eps = 1e-5f;
};

Gpt2Config parse(const json& c) {
  auto get = [&](const char* key) -> int64_t {
    if (!c.contains(key) || !c[key].is_number_integer())
      throw Error("config.json: \"" + std::string(key) + "\" must be an integer");
    return c[key].get<int64_t>();
  };
  Gpt2Config g;
  g.hidden = get("n_embd");
  g.layers = get("n_layer");
  g.heads = get("n_head");
  g.vocab = get("vocab_size");
  g.positions = get("n_positions");
  g.inner = c.contains("n_inner") && c["n_inner"].is_number_integer() ? c["n_inner"].get<int64_t>()
                                                                       : 4 * g.hidden;
  g.eps = c.value("layer_norm_epsilon", 1e-5f);
  const std::string act = c.value("activation_function", std::string("gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    throw Error(Code::unsupported, "config.json: activation_function \"" + act +
                                       "\" is not supported (gelu_new, gelu_pytorch_tanh)");
  if (c.value("scale_attn_by_inverse_layer_idx", false) || c.value("reorder_and_upcast_attn", false))
    throw Error(Code::unsupported, "config.json: scale_attn_by_inverse_layer_idx and "
                                   "reorder_and_upcast_attn are not supported");
  if (g.hidden % g.heads != 0) throw Error("config.json: n_embd is not a multiple of n_head");
  return g;
}

class Gpt2Model final : public banyan::Model {
 public:
  explicit Gpt2Model(const banyan::ModelContext& ctx) {
    json opts = json::parse(ctx.options_json);
    if (!opts.contains("config")) throw Error("options carry no \"config\" (config.json)");
    cfg_ = parse(opts["config"]);
    const std::string dt = opts.value("activation_dtype", std::string("F32"));
    act_dtype_ = dt == "BF16" ? DType::bf16 : dt == "F16" ? DType::f16 : DType::f32;
    check(ctx);
  }

  BanyanModelSpec spec() const override {
    BanyanModelSpec s{};
    s.struct_size = sizeof(BanyanModelSpec);
    s.num_layers = static_cast<int32_t>(cfg_.layers);
    s.num_kv_heads = static_cast<int32_t>(cfg_.heads);
    s.head_dim = static_cast<int32_t>(cfg_.hidden / cfg_.heads);
    s.vocab_size = static_cast<int32_t>(cfg_.vocab);
    s.max_position = cfg_.positions;
    s.hidden_size = static_cast<int32_t>(cfg_.hidden);
    return s;
  }

  Tensor forward(const Ops& ops) override {
    const int64_t H = cfg_.hidden, D = cfg_.hidden / cfg_.heads;
    constexpr uint32_t conv1d = BANYAN_LINEAR_TRANSPOSED;
    auto [ids, positions] = ops.step_input();
    Tensor residual = ops.add(ops.embedding("transformer.wte.weight", ids, act_dtype_, H),
                              ops.embedding("transformer.wpe.weight", positions, act_dtype_, H));
    Tensor x = ops.layer_norm(residual, nullptr, layer(0) + "ln_1.weight", layer(0) + "ln_1.bias",
                              cfg_.eps);
    for (int64_t l = 0; l < cfg_.layers; ++l) {
      const std::string p = layer(l);
      Tensor qkv = ops.linear(p + "attn.c_attn", x, 3 * H, conv1d);
      BanyanAttentionSpec a{};
      a.layer = static_cast<int32_t>(l);
      a.num_heads = a.num_kv_heads = static_cast<int32_t>(cfg_.heads);
      a.head_dim = static_cast<int32_t>(D);
      a.scale = 1.0f / std::sqrt(static_cast<float>(D));
      Tensor attn = ops.attention(ops.slice_columns(qkv, 0, H), ops.slice_columns(qkv, H, H),
                                  ops.slice_columns(qkv, 2 * H, H), a);
      Tensor o = ops.linear(p + "attn.c_proj", attn, H, conv1d);
      x = ops.layer_norm(o, &residual, p + "ln_2.weight", p + "ln_2.bias", cfg_.eps);
      Tensor f = ops.activation(ops.linear(p + "mlp.c_fc", x, cfg_.inner, conv1d),
                                BANYAN_ACT_GELU_TANH);
      Tensor m = ops.linear(p + "mlp.c_proj", f, H, conv1d);
      const std::string next = l + 1 < cfg_.layers ? layer(l + 1) + "ln_1" : "transformer.ln_f";
      x = ops.layer_norm(m, &residual, next + ".weight", next + ".bias", cfg_.eps);
    }
    return ops.logits(x, "transformer.wte");  // tied: lm_head is the embedding
  }

 private:
  static std::string layer(int64_t l) { return "transformer.h." + std::to_string(l) + "."; }

  void check(const banyan::ModelContext& ctx) const {
    auto need = [&](const std::string& name, std::initializer_list<int64_t> shape) {
      Tensor t;
      if (!ctx.weight_info(name, &t))
        throw Error(Code::not_found, "checkpoint is missing tensor \"" + name + "\"");
      Tensor want(nullptr, DType::f32, shape);
      bool ok = t.ndim == want.ndim;
      for (int i = 0; ok && i < t.ndim; ++i) ok = t.shape[i] == want.shape[i];
      if (!ok)
        throw Error("tensor \"" + name + "\" is " + t.shape_string() + ", config.json implies " +
                    want.shape_string());
    };
    const int64_t H = cfg_.hidden, I = cfg_.inner;
    need("transformer.wte.weight", {cfg_.vocab, H});
    need("transformer.wpe.weight", {cfg_.positions, H});
    need("transformer.ln_f.weight", {H});
    need("transformer.ln_f.bias", {H});
    for (int64_t l = 0; l < cfg_.layers; ++l) {
      const std::string p = layer(l);
      for (const char* ln : {"ln_1", "ln_2"}) {
        need(p + ln + ".weight", {H});
        need(p + ln + ".bias", {H});
      }
      need(p + "attn.c_attn.weight", {H, 3 * H});
      need(p + "attn.c_attn.bias", {3 * H});
      need(p + "attn.c_proj.weight", {H, H});
      need(p + "attn.c_proj.bias", {H});
      need(p + "mlp.c_fc.weight", {H, I});
      need(p + "mlp.c_fc.bias", {I});
      need(p + "mlp.c_proj.weight", {I, H});
      need(p + "mlp.c_proj.bias", {H});
    }
  }

  Gpt2Config cfg_;
  DType act_dtype_ = DType::f32;
};

}  // namespace

BANYAN_MODEL_PLUGIN(Gpt2Model, "gpt2", "0.1.0")
