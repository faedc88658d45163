#include "core/runtime/rope.h"

#include <banyan/error.h>

#include <algorithm>
#include <cmath>

namespace banyan::core {
namespace {

// base ** (i / dim) for i = 0, 2, ..., dim - 2, with the exponent formed in f32
// (torch: arange(0, dim, 2).float() / dim).
std::vector<float> pos_freqs(double base, int32_t dim) {
  std::vector<float> out;
  for (int32_t i = 0; i < dim; i += 2) {
    float e = static_cast<float>(i) / static_cast<float>(dim);
    out.push_back(static_cast<float>(std::pow(static_cast<double>(static_cast<float>(base)),
                                              static_cast<double>(e))));
  }
  return out;
}

std::vector<float> default_inv_freq(double base, int32_t dim) {
  std::vector<float> f = pos_freqs(base, dim);
  for (float& x : f) x = 1.0f / x;
  return f;
}

RopeFrequencies llama3(const BanyanRopeSpec& s) {
  RopeFrequencies r{default_inv_freq(s.theta, s.rotary_dim), 1.0f};
  const float factor = static_cast<float>(s.factor);
  const float lo = static_cast<float>(s.low_freq_factor), hi = static_cast<float>(s.high_freq_factor);
  const double old_ctx = static_cast<double>(s.original_max_position);
  const float low_wavelen = static_cast<float>(old_ctx / s.low_freq_factor);
  const float high_wavelen = static_cast<float>(old_ctx / s.high_freq_factor);
  const float two_pi = static_cast<float>(2.0 * M_PI);
  for (float& f : r.inv_freq) {
    const float wavelen = two_pi / f;
    float scaled = wavelen > low_wavelen ? f / factor : f;
    const float smooth = (static_cast<float>(old_ctx) / wavelen - lo) / (hi - lo);
    const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    f = medium ? smoothed : scaled;
  }
  return r;
}

RopeFrequencies yarn(const BanyanRopeSpec& s) {
  const int32_t dim = s.rotary_dim;
  const double base = s.theta, factor = s.factor;
  const double orig = static_cast<double>(s.original_max_position);
  double attention = s.attention_factor;
  if (attention <= 0.0) attention = factor <= 1.0 ? 1.0 : 0.1 * std::log(factor) + 1.0;
  const double beta_fast = s.beta_fast > 0 ? s.beta_fast : 32.0;
  const double beta_slow = s.beta_slow > 0 ? s.beta_slow : 1.0;
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(orig / (rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
  };
  double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(beta_slow)), static_cast<double>(dim - 1));
  if (low == high) high += 0.001;

  std::vector<float> pf = pos_freqs(base, dim);
  RopeFrequencies r;
  r.attention_scaling = static_cast<float>(attention);
  const float ff = static_cast<float>(factor);
  for (size_t i = 0; i < pf.size(); ++i) {
    const float extrapolation = 1.0f / pf[i];
    const float interpolation = 1.0f / (ff * pf[i]);
    float ramp = (static_cast<float>(i) - static_cast<float>(low)) /
                 static_cast<float>(high - low);
    ramp = std::clamp(ramp, 0.0f, 1.0f);
    const float extra_factor = 1.0f - ramp;
    r.inv_freq.push_back(interpolation * (1.0f - extra_factor) + extrapolation * extra_factor);
  }
  return r;
}

}  // namespace

std::string rope_type_name(int32_t type) {
  switch (type) {
    case BANYAN_ROPE_DEFAULT: return "default";
    case BANYAN_ROPE_LINEAR: return "linear";
    case BANYAN_ROPE_DYNAMIC: return "dynamic";
    case BANYAN_ROPE_LLAMA3: return "llama3";
    case BANYAN_ROPE_YARN: return "yarn";
  }
  return "unknown (" + std::to_string(type) + ")";
}

void validate_rope(const BanyanRopeSpec& s) {
  const std::string at = "rotary embedding (" + rope_type_name(s.type) + ")";
  if (s.type < BANYAN_ROPE_DEFAULT || s.type > BANYAN_ROPE_YARN)
    throw Error(Code::unsupported, "unknown rope type " + std::to_string(s.type));
  if (s.head_dim <= 0 || s.rotary_dim <= 0 || s.rotary_dim > s.head_dim || s.rotary_dim % 2)
    throw Error(at + ": rotary_dim " + std::to_string(s.rotary_dim) +
                " must be even, positive and at most head_dim " + std::to_string(s.head_dim));
  if (!(s.theta > 0)) throw Error(at + ": rope_theta must be positive");
  const bool scaled = s.type != BANYAN_ROPE_DEFAULT;
  if (scaled && !(s.factor > 0)) throw Error(at + ": factor must be positive");
  if (s.type == BANYAN_ROPE_LLAMA3) {
    if (s.original_max_position <= 0)
      throw Error(at + ": original_max_position_embeddings must be positive");
    if (!(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor))
      throw Error(at + ": needs 0 < low_freq_factor < high_freq_factor");
  }
  if (s.type == BANYAN_ROPE_YARN && s.original_max_position <= 0)
    throw Error(at + ": original_max_position_embeddings must be positive");
  if (s.type == BANYAN_ROPE_DYNAMIC && s.max_position <= 0)
    throw Error(at + ": max_position_embeddings must be positive");
}

RopeFrequencies rope_frequencies(const BanyanRopeSpec& s, int64_t seq_len) {
  validate_rope(s);
  switch (s.type) {
    case BANYAN_ROPE_LINEAR: {
      RopeFrequencies r{default_inv_freq(s.theta, s.rotary_dim), 1.0f};
      const float f = static_cast<float>(s.factor);
      for (float& x : r.inv_freq) x /= f;
      return r;
    }
    case BANYAN_ROPE_DYNAMIC: {
      const double max_pos = static_cast<double>(s.max_position);
      const double len = std::max(static_cast<double>(seq_len), max_pos);
      const double dim = s.rotary_dim;
      const double base =
          s.theta * std::pow((s.factor * len / max_pos) - (s.factor - 1.0), dim / (dim - 2.0));
      return {default_inv_freq(base, s.rotary_dim), 1.0f};
    }
    case BANYAN_ROPE_LLAMA3: return llama3(s);
    case BANYAN_ROPE_YARN: return yarn(s);
    default: return {default_inv_freq(s.theta, s.rotary_dim), 1.0f};
  }
}

}  // namespace banyan::core
