// The engine's side of decoding plugins: it lays a step's logits rows and their
// sequences out in the C form of abi.h (BanyanDecodeRow), calls the plugin in one
// batch, and reads back the chosen tokens.
#pragma once

#include "core/engine/sequence.h"
#include "core/plugin_host/plugin_host.h"

#include <banyan/tensor.h>

#include <string>
#include <vector>

namespace banyan::core {

struct DecodedToken {
  int32_t token = 0;
  float logprob = 0;
  double score = 0;
  std::vector<TopLogprob> top;
  uint64_t rng[4] = {0, 0, 0, 0};  ///< the drawing stream's state after the draw
};

/// The op table and context a plugin's decode_on gets (ModelRunner::decoding_context).
struct DecodeOps {
  const BanyanOpsV1* ops = nullptr;
  BanyanStepContext* ctx = nullptr;
};

class Decoders {
 public:
  /// Creates the sampling and beam plugins by name; `sampling_options` (a JSON object,
  /// YAML decoding.options) goes to the sampling plugin after PluginHost::resolve_options
  /// checked it against its manifest and filled the defaults. Throws banyan::Error when
  /// a plugin is missing or not a decoding plugin, or an option is refused.
  Decoders(const PluginHost& plugins, const std::string& sampling, const std::string& beam,
           const std::string& sampling_options = "{}", const std::string& parallel = "parallel");

  /// One token per (sequence, logits row), from the sampling plugin. With `on`, the
  /// logits may be in device memory: the plugin must accept them (sampling_on_device).
  std::vector<DecodedToken> sample(const Tensor& logits,
                                   const std::vector<std::pair<Sequence*, int32_t>>& rows,
                                   const DecodeOps* on = nullptr);
  /// Whether the sampling plugin declares it accepts device logits (decode_on).
  bool sampling_on_device() const;
  /// `samples` first tokens of one row, each from its own stream (the parallel plugin).
  std::vector<DecodedToken> parallel(const Tensor& logits, Sequence* seq, int32_t row, int samples);
  /// The best `per_row` continuations of each row, from the beam plugin.
  std::vector<std::vector<DecodedToken>> beam(const Tensor& logits,
                                              const std::vector<std::pair<Sequence*, int32_t>>& rows,
                                              int per_row);

 private:
  std::vector<std::vector<DecodedToken>> run(PluginObject& plugin, const Tensor& logits,
                                             const std::vector<std::pair<Sequence*, int32_t>>& rows,
                                             int per_row, const DecodeOps* on = nullptr);
  BanyanHostV1 host_{};
  PluginObject sampling_, beam_, parallel_;
};

}  // namespace banyan::core
