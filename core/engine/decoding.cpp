#include "core/engine/decoding.h"

#include "core/common/logging.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <cstddef>

namespace banyan::core {

namespace {
// The plugin's options: `user` (JSON text) checked against its manifest, with defaults.
// An unknown plugin is left to PluginHost::create, which names the loaded ones.
std::string resolved_options(const PluginHost& plugins, const std::string& name,
                             const std::string& user) {
  const PluginInfo* info = plugins.find("decoding", name);
  if (!info) return user.empty() ? "{}" : user;
  nlohmann::json opts;
  try {
    opts = nlohmann::json::parse(user.empty() ? "{}" : user);
  } catch (const nlohmann::json::exception& e) {
    throw Error("decoding.options is not valid JSON: " + std::string(e.what()));
  }
  return plugins.resolve_options(*info, opts).dump();
}

// The plugin's decode_on slot (ABI 1.2; null for older plugins and host-only ones).
auto decode_on_slot(const PluginObject& plugin) {
  const auto* iface = plugin.iface<BanyanDecodingV1>();
  return iface->struct_size >= offsetof(BanyanDecodingV1, decode_on) + sizeof(iface->decode_on)
             ? iface->decode_on
             : nullptr;
}
}  // namespace

Decoders::Decoders(const PluginHost& plugins, const std::string& sampling, const std::string& beam,
                   const std::string& sampling_options, const std::string& parallel) {
  host_.struct_size = sizeof(BanyanHostV1);
  host_.abi_major = BANYAN_ABI_MAJOR;
  host_.abi_minor = BANYAN_ABI_MINOR;
  host_.log = &banyan_host_log;
  sampling_ = plugins.create("decoding", sampling, &host_,
                             resolved_options(plugins, sampling, sampling_options));
  beam_ = plugins.create("decoding", beam, &host_, resolved_options(plugins, beam, "{}"));
  parallel_ = plugins.create("decoding", parallel, &host_, resolved_options(plugins, parallel, "{}"));
}

std::vector<std::vector<DecodedToken>> Decoders::run(
    PluginObject& plugin, const Tensor& logits,
    const std::vector<std::pair<Sequence*, int32_t>>& rows, int per_row, const DecodeOps* on) {
  std::vector<BanyanDecodeRow> c_rows(rows.size());
  int max_lp = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    Sequence& s = *rows[i].first;
    const BanyanDecodeParams& p = s.group->decode_params->c;
    c_rows[i] = {rows[i].second, s.tokens.data(), static_cast<int32_t>(s.tokens.size()),
                 s.prompt_len, &p, s.rng, s.cumulative_logprob};
    max_lp = std::max(max_lp, p.num_logprobs);
  }
  const size_t n = rows.size() * static_cast<size_t>(per_row);
  std::vector<BanyanDecodeChoice> out(n);
  std::vector<int32_t> top_ids(n * max_lp);
  std::vector<float> top_lp(n * max_lp);
  for (size_t i = 0; i < n; ++i) {
    out[i].top_ids = max_lp ? top_ids.data() + i * max_lp : nullptr;
    out[i].top_logprobs = max_lp ? top_lp.data() + i * max_lp : nullptr;
  }
  BanyanError err{};
  const auto* iface = plugin.iface<BanyanDecodingV1>();
  const auto decode_on = on ? decode_on_slot(plugin) : nullptr;
  if (!decode_on && logits.device_type != BANYAN_CPU)
    throw Error(Code::internal, std::string("decoding plugin \"") + plugin.descriptor().name +
                                    "\" takes host logits only");
  int32_t rc = decode_on ? decode_on(plugin.get(), on->ops, on->ctx, &logits, c_rows.data(),
                                     static_cast<int32_t>(rows.size()), per_row, out.data(), &err)
                         : iface->decode(plugin.get(), &logits, c_rows.data(),
                                         static_cast<int32_t>(rows.size()), per_row, out.data(), &err);
  if (rc != BANYAN_OK)
    throw Error(static_cast<Code>(rc), std::string("decoding plugin \"") + plugin.descriptor().name +
                                           "\": " + err.message);
  std::vector<std::vector<DecodedToken>> result(rows.size());
  const int32_t V = static_cast<int32_t>(logits.shape[1]);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int lp = rows[i].first->group->decode_params->c.num_logprobs;
    for (int j = 0; j < per_row; ++j) {
      const BanyanDecodeChoice& c = out[i * per_row + j];
      if (c.token < 0 || c.token >= V)
        throw Error(Code::internal, std::string("decoding plugin \"") + plugin.descriptor().name +
                                        "\" chose token " + std::to_string(c.token) +
                                        " outside the vocabulary");
      DecodedToken t{c.token, c.logprob, c.score, {}, {}};
      std::copy(c.rng_state, c.rng_state + 4, t.rng);
      for (int k = 0; k < lp; ++k) t.top.push_back({c.top_ids[k], c.top_logprobs[k]});
      result[i].push_back(std::move(t));
    }
  }
  return result;
}

std::vector<DecodedToken> Decoders::sample(const Tensor& logits,
                                           const std::vector<std::pair<Sequence*, int32_t>>& rows,
                                           const DecodeOps* on) {
  std::vector<DecodedToken> out;
  if (rows.empty()) return out;
  for (auto& r : run(sampling_, logits, rows, 1, on)) out.push_back(std::move(r[0]));
  return out;
}

bool Decoders::sampling_on_device() const { return decode_on_slot(sampling_) != nullptr; }

std::vector<DecodedToken> Decoders::parallel(const Tensor& logits, Sequence* seq, int32_t row,
                                             int samples) {
  return run(parallel_, logits, {{seq, row}}, samples)[0];
}

std::vector<std::vector<DecodedToken>> Decoders::beam(
    const Tensor& logits, const std::vector<std::pair<Sequence*, int32_t>>& rows, int per_row) {
  return run(beam_, logits, rows, per_row);
}

}  // namespace banyan::core
