// What a client asks of the engine and what the engine streams back. Plain
// aggregates: every field has a documented default, set with designated
// initializers. Validation is SamplingParams::validate(), not the constructor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace banyan::core {

/// Decoding parameters, as vLLM's SamplingParams / OpenAI request fields name them.
struct SamplingParams {
  int n = 1;                          ///< completions returned (beam width with beam search)
  std::optional<int> best_of;         ///< candidates sampled, the n best returned (>= n)
  double temperature = 1.0;           ///< 0: greedy
  double top_p = 1.0;                 ///< (0, 1]
  int top_k = -1;                     ///< -1 or 0: off
  double min_p = 0.0;                 ///< [0, 1]
  double typical_p = 1.0;             ///< (0, 1]; TGI's typical sampling (1: off)
  std::optional<uint64_t> seed;       ///< per-request seed: same seed, same samples
  double presence_penalty = 0.0;      ///< [-2, 2], OpenAI semantics
  double frequency_penalty = 0.0;     ///< [-2, 2], OpenAI semantics
  double repetition_penalty = 1.0;    ///< > 0, HF/vLLM semantics over prompt and output
  std::map<int32_t, double> logit_bias;  ///< token id -> bias added to its logit
  int max_tokens = 16;                ///< new tokens at most
  int min_tokens = 0;                 ///< EOS and stop ids are masked until reached
  std::vector<std::string> stop;      ///< stop strings (not included in the output)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  bool include_stop_str_in_output = false;
  std::optional<int> logprobs;        ///< top logprobs per output token (0..20)
  std::optional<int> prompt_logprobs; ///< top logprobs per prompt token
  bool use_beam_search = false;
  double length_penalty = 1.0;
  bool early_stopping = false;

  /// Throws banyan::Error naming the field when a value is out of range.
  void validate() const;
  bool greedy() const { return temperature == 0.0 && !use_beam_search; }
};

using Clock = std::chrono::steady_clock;

struct GenerationRequest {
  std::string request_id;            ///< unique; the engine refuses a duplicate
  std::vector<int32_t> prompt_ids;   ///< already tokenized
  SamplingParams params;
  std::string adapter;               ///< adapter name, "" for the base model
  int priority = 0;                  ///< lower first, with scheduling_policy: priority
  Clock::time_point arrival = Clock::now();
};

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0;
};

/// Logprob of one chosen token plus the top alternatives.
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<TopLogprob> top;  ///< most likely first (ties: the lower id)
  /// 1-based rank of `id` in its distribution (1 + the tokens strictly more likely),
  /// as vLLM counts it; set for prompt logprobs, 0 where not computed.
  int32_t rank = 0;
};

/// New output of one completion (index) since the last delta.
struct CompletionDelta {
  int index = 0;
  std::vector<int32_t> token_ids;    ///< new tokens
  std::string text;                  ///< new text (complete UTF-8 only)
  std::vector<TokenLogprob> logprobs;///< one per new token when requested
  std::optional<std::string> finish_reason;  ///< "stop" | "length" | "abort" once finished
  std::optional<std::string> stop_reason;    ///< the stop string or token id that matched
  double cumulative_logprob = 0;
};

struct RequestMetrics {
  Clock::time_point arrival, first_scheduled, first_token, finished;
};

/// One message from the engine to a request's sink.
struct RequestOutput {
  std::string request_id;
  std::vector<CompletionDelta> outputs;  ///< deltas of the completions that changed
  bool finished = false;                 ///< the last message of this request
  int prompt_tokens = 0;
  int completion_tokens = 0;             ///< total so far, over all completions
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;  ///< first message only
  std::optional<std::string> error;      ///< set when the request failed in the engine
  RequestMetrics metrics;
};

/// Called on the engine thread for each message; must return quickly (post the
/// work elsewhere). Called exactly once with finished == true.
using RequestSink = std::function<void(RequestOutput&&)>;

}  // namespace banyan::core
