#include "llama_config.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

namespace banyan::llama {
namespace {

using nlohmann::json;

const json* get(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t int_key(const json& j, const char* key, std::optional<int64_t> fallback = {}) {
  const json* v = get(j, key);
  if (!v) {
    if (fallback) return *fallback;
    throw Error(Code::invalid_argument, std::string("config.json: missing \"") + key + "\"");
  }
  if (!v->is_number_integer() || v->get<int64_t>() <= 0)
    throw Error(std::string("config.json: \"") + key + "\" must be a positive integer, got " +
                v->dump());
  return v->get<int64_t>();
}

double num_key(const json& j, const char* key, double fallback, const char* where = "config.json") {
  const json* v = get(j, key);
  if (!v) return fallback;
  if (!v->is_number())
    throw Error(std::string(where) + ": \"" + key + "\" must be a number, got " + v->dump());
  return v->get<double>();
}

bool bool_key(const json& j, const char* key, bool fallback) {
  const json* v = get(j, key);
  if (!v) return fallback;
  if (!v->is_boolean())
    throw Error(std::string("config.json: \"") + key + "\" must be true or false");
  return v->get<bool>();
}

int32_t parse_activation(const std::string& act) {
  if (act == "silu" || act == "swish") return BANYAN_ACT_SILU;
  if (act == "gelu") return BANYAN_ACT_GELU;
  if (act == "gelu_pytorch_tanh" || act == "gelu_new") return BANYAN_ACT_GELU_TANH;
  if (act == "relu") return BANYAN_ACT_RELU;
  throw Error(Code::unsupported, "config.json: hidden_act \"" + act +
                                     "\" is not supported (silu, gelu, gelu_pytorch_tanh, relu)");
}

// rope_parameters (transformers 5) or rope_scaling + rope_theta (earlier).
BanyanRopeSpec parse_rope(const json& c, const LlamaConfig& m) {
  json params = json::object();
  if (const json* rp = get(c, "rope_parameters"); rp && rp->is_object()) {
    params = *rp;
    if (params.contains("full_attention") && params["full_attention"].is_object())
      params = params["full_attention"];  // per layer-type parameters
  } else if (const json* rs = get(c, "rope_scaling"); rs && rs->is_object()) {
    params = *rs;
  }
  const char* where = "config.json rope parameters";
  std::string type = "default";
  if (const json* t = get(params, "rope_type")) type = t->get<std::string>();
  else if (const json* t2 = get(params, "type")) type = t2->get<std::string>();

  BanyanRopeSpec r{};
  r.head_dim = static_cast<int32_t>(m.head_dim);
  r.neox = 1;
  r.theta = num_key(params, "rope_theta", num_key(c, "rope_theta", 10000.0), where);
  const double partial =
      num_key(params, "partial_rotary_factor", num_key(c, "partial_rotary_factor", 1.0), where);
  r.rotary_dim = static_cast<int32_t>(static_cast<double>(m.head_dim) * partial);
  r.max_position = m.max_position;
  r.factor = num_key(params, "factor", 0.0, where);
  const double orig_top = num_key(c, "original_max_position_embeddings", 0.0);
  r.original_max_position = static_cast<int64_t>(
      num_key(params, "original_max_position_embeddings",
              orig_top > 0 ? orig_top : static_cast<double>(m.max_position), where));
  auto need_factor = [&] {
    if (!(r.factor > 0))
      throw Error(std::string(where) + ": rope type \"" + type + "\" needs a positive \"factor\"");
  };
  if (type == "default") {
    r.type = BANYAN_ROPE_DEFAULT;
  } else if (type == "linear") {
    r.type = BANYAN_ROPE_LINEAR;
    need_factor();
  } else if (type == "dynamic") {
    r.type = BANYAN_ROPE_DYNAMIC;
    need_factor();
  } else if (type == "llama3") {
    r.type = BANYAN_ROPE_LLAMA3;
    need_factor();
    r.low_freq_factor = num_key(params, "low_freq_factor", 0.0, where);
    r.high_freq_factor = num_key(params, "high_freq_factor", 0.0, where);
    if (!(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor))
      throw Error(std::string(where) + ": llama3 needs 0 < low_freq_factor < high_freq_factor");
  } else if (type == "yarn") {
    r.type = BANYAN_ROPE_YARN;
    if (!(r.factor > 0))
      r.factor = static_cast<double>(m.max_position) / static_cast<double>(r.original_max_position);
    r.beta_fast = num_key(params, "beta_fast", 32.0, where);
    r.beta_slow = num_key(params, "beta_slow", 1.0, where);
    r.attention_factor = num_key(params, "attention_factor", 0.0, where);
    const double mscale = num_key(params, "mscale", 0.0, where);
    const double mscale_all = num_key(params, "mscale_all_dim", 0.0, where);
    if (r.attention_factor <= 0 && mscale != 0 && mscale_all != 0) {
      auto get_mscale = [](double scale, double ms) {
        return scale <= 1 ? 1.0 : 0.1 * ms * std::log(scale) + 1.0;
      };
      r.attention_factor = get_mscale(r.factor, mscale) / get_mscale(r.factor, mscale_all);
    }
    if (const json* t = get(params, "truncate"); t && t->is_boolean() && !t->get<bool>())
      throw Error(Code::unsupported, std::string(where) + ": yarn with truncate=false is not supported");
  } else {
    throw Error(Code::unsupported, std::string(where) + ": rope type \"" + type +
                                       "\" is not supported (default, linear, dynamic, llama3, yarn)");
  }
  return r;
}

std::vector<int32_t> parse_windows(const json& c, const LlamaConfig& m) {
  std::vector<int32_t> w(static_cast<size_t>(m.layers), 0);
  const json* sw = get(c, "sliding_window");
  const int32_t window = sw && sw->is_number_integer() ? sw->get<int32_t>() : 0;
  if (const json* lt = get(c, "layer_types"); lt && lt->is_array()) {
    if (lt->size() != w.size())
      throw Error("config.json: layer_types has " + std::to_string(lt->size()) +
                  " entries for " + std::to_string(w.size()) + " layers");
    for (size_t i = 0; i < w.size(); ++i) {
      const std::string t = (*lt)[i].is_string() ? (*lt)[i].get<std::string>() : "";
      if (t == "sliding_attention") {
        if (window <= 0)
          throw Error("config.json: layer " + std::to_string(i) +
                      " is sliding_attention but sliding_window is not set");
        w[i] = window;
      } else if (t != "full_attention") {
        throw Error(Code::unsupported,
                    "config.json: layer_types[" + std::to_string(i) + "] \"" + t +
                        "\" is not supported (full_attention, sliding_attention)");
      }
    }
    return w;
  }
  if (window <= 0) return w;
  if (m.model_type == "mistral") {
    std::fill(w.begin(), w.end(), window);
  } else if (m.model_type == "qwen2" || m.model_type == "qwen3") {
    if (bool_key(c, "use_sliding_window", false)) {
      const int64_t from = int_key(c, "max_window_layers", m.layers);
      for (int64_t i = from; i < m.layers; ++i) w[static_cast<size_t>(i)] = window;
    }
  }
  return w;
}

}  // namespace

LlamaConfig parse_llama_config(const json& c) {
  LlamaConfig m;
  if (!c.is_object()) throw Error("config.json: expected a JSON object");
  const json* mt = get(c, "model_type");
  m.model_type = mt && mt->is_string() ? mt->get<std::string>() : "";
  if (m.model_type != "llama" && m.model_type != "mistral" && m.model_type != "qwen2" &&
      m.model_type != "qwen3")
    throw Error(Code::unsupported, "config.json: model_type \"" + m.model_type +
                                       "\" is not one of llama, mistral, qwen2, qwen3");
  m.hidden = int_key(c, "hidden_size");
  m.intermediate = int_key(c, "intermediate_size");
  m.layers = int_key(c, "num_hidden_layers");
  m.heads = int_key(c, "num_attention_heads");
  m.kv_heads = int_key(c, "num_key_value_heads", m.heads);
  m.head_dim = int_key(c, "head_dim", m.hidden / m.heads);
  m.vocab = int_key(c, "vocab_size");
  m.max_position = int_key(c, "max_position_embeddings", 4096);
  if (m.heads % m.kv_heads)
    throw Error("config.json: num_attention_heads " + std::to_string(m.heads) +
                " is not a multiple of num_key_value_heads " + std::to_string(m.kv_heads));
  m.rms_eps = static_cast<float>(num_key(c, "rms_norm_eps", 1e-6));
  const json* act = get(c, "hidden_act");
  m.activation = parse_activation(act && act->is_string() ? act->get<std::string>() : "silu");
  m.tie_embeddings = bool_key(c, "tie_word_embeddings", false);
  m.qk_norm = m.model_type == "qwen3";
  const bool attention_bias = bool_key(c, "attention_bias", false);
  m.qkv_bias = m.model_type == "qwen2" || attention_bias;
  m.o_bias = m.model_type != "qwen2" && attention_bias;
  m.mlp_bias = m.model_type == "llama" && bool_key(c, "mlp_bias", false);
  m.rope = parse_rope(c, m);
  m.window = parse_windows(c, m);
  return m;
}

}  // namespace banyan::llama
