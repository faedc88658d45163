// One request's state inside the engine: a SequenceGroup holds the request, its
// sink and its sequences (one, or n / best_of samples, or beams, which fork from
// the first after prefill and share its KV blocks copy-on-write).
// Owned and touched only by the engine thread.
#pragma once

#include "core/engine/block_manager.h"
#include "core/engine/request.h"

#include <memory>
#include <optional>
#include <banyan/abi.h>
#include <string>
#include <vector>

namespace banyan::core {

class TextOutput;
struct SequenceGroup;

struct Sequence {
  int64_t id = 0;
  SequenceGroup* group = nullptr;
  std::vector<int32_t> tokens;     ///< prompt + output
  int32_t prompt_len = 0;
  int32_t num_computed = 0;        ///< leading tokens whose K/V are in the cache
  std::vector<int32_t> blocks;     ///< block table
  std::vector<BlockHash> hashes;   ///< hashes of the leading full blocks of `tokens`
  double cumulative_logprob = 0;
  uint64_t rng[4] = {0, 0, 0, 0};  ///< xoshiro256** state (banyan/rng.h)

  bool finished = false;
  std::optional<std::string> finish_reason;
  std::optional<std::string> stop_reason;

  // Output bookkeeping (what the sink has been sent).
  std::shared_ptr<TextOutput> text_out;  ///< incremental decoder (deep-copied on fork)
  bool finish_sent = false;
  std::string text;                 ///< decoded output so far (stop strings cut)
  size_t text_sent = 0;
  size_t tokens_sent = 0;
  std::vector<TokenLogprob> logprobs;
  int index = -1;                   ///< completion index once assigned
  int32_t num_hashed = 0;           ///< leading blocks registered in the prefix cache

  int32_t output_len() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  std::vector<int32_t> output_ids() const {
    return {tokens.begin() + prompt_len, tokens.end()};
  }
  /// Tokens still to run through the model (prefill remainder, or the new token).
  int32_t uncomputed() const { return static_cast<int32_t>(tokens.size()) - num_computed; }
};

enum class GroupKind { single, parallel, beam };

/// A request's parameters in the C form decoding plugins read (stable addresses).
struct DecodeParams {
  BanyanDecodeParams c{};
  std::vector<int32_t> bias_ids, stop_ids, eos_ids;
  std::vector<float> bias_values;
  DecodeParams(const SamplingParams& p, const std::vector<int32_t>& eos);
  DecodeParams(const DecodeParams&) = delete;
  DecodeParams& operator=(const DecodeParams&) = delete;
};

struct SequenceGroup {
  GenerationRequest request;
  RequestSink sink;
  std::unique_ptr<DecodeParams> decode_params;
  GroupKind kind = GroupKind::single;
  int width = 1;                     ///< best_of (parallel) or beam width
  std::vector<std::unique_ptr<Sequence>> seqs;  ///< live and finished
  bool forked = false;               ///< parallel/beam children exist
  uint64_t adapter_id = 0;           ///< identity for prefix hashing (0: base)
  int32_t adapter_slot = -1;
  RequestMetrics metrics;
  bool aborted = false;
  std::optional<std::string> error;  ///< set when the engine must fail the request
  bool prompt_logprobs_sent = false;
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;
  /// Beam search: finished hypotheses.
  struct BeamHypothesis {
    std::vector<int32_t> output;  ///< generated tokens
    double score = 0;             ///< cumulative logprob / length^length_penalty
    double cumulative_logprob = 0;
  };
  std::vector<BeamHypothesis> beam_done;

  std::vector<Sequence*> live() const {
    std::vector<Sequence*> out;
    for (const auto& s : seqs)
      if (!s->finished) out.push_back(s.get());
    return out;
  }
  bool all_finished() const {
    for (const auto& s : seqs)
      if (!s->finished) return false;
    return true;
  }
};

}  // namespace banyan::core
