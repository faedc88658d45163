// Pieces shared by the OpenAI completion and chat presenters.
#pragma once

#include "core/server/job_result.h"
#include "core/server/json_fields.h"

#include <string>
#include <vector>

namespace banyan::core::server {

class TextCodec;
class ServerContext;

/// How a route shows tokens and usage; read from the request body.
struct OutputOptions {
  bool stream = false;
  bool include_usage = false;       ///< stream_options.include_usage
  bool return_token_ids = false;    ///< each choice carries "token_ids"
  bool tokens_as_ids = false;       ///< logprob tokens written "token_id:N"
  std::optional<int> logprobs;      ///< top logprobs per token when set
  bool echo = false;
};

/// Reads stream, stream_options, return_token_ids and return_tokens_as_token_ids.
OutputOptions read_output_options(const Fields& f);

/// {"prompt_tokens", "completion_tokens", "total_tokens"}.
json usage_json(const JobResult& r);

/// A token as the logprobs APIs show it.
std::string token_string(const TextCodec& codec, int32_t id, bool as_ids);

/// vLLM's `prompt_logprobs` of one prompt: one entry per prompt token, the first null
/// (no logits precede it); each other entry an object keyed by token id (a string)
/// with {"logprob", "rank", "decoded_token"} for the prompt token and the top
/// alternatives the engine returned. Logprobs of -inf are written -9999.0 (as vLLM
/// clamps them); a rank the engine did not compute is null. null when the engine
/// sent none (the request failed or was aborted before its prefill ended).
json prompt_logprobs_json(const TextCodec& codec, const std::vector<int32_t>& prompt_ids,
                          const std::vector<std::optional<TokenLogprob>>& lps);

/// stop_reason: the stop string, the stop token id (as a number), or null.
json stop_reason_json(const ChoiceState& c, const SamplingParams& p);

/// Number of Unicode code points in UTF-8 text (for text_offset).
size_t utf8_length(const std::string& s);

/// JSON text with invalid UTF-8 replaced (tokens may hold partial sequences).
std::string dump(const json& j);

/// The `messages` of a chat request, checked, with list-of-text-parts content joined
/// into strings. 400 naming the message at fault.
json read_chat_messages(const Fields& f);
/// messages + add_generation_prompt + chat_template_kwargs rendered with the model's
/// chat template (400 when the template refuses them).
std::string render_chat_prompt(const ServerContext& ctx, const Fields& f);

/// The prompt text as echoed (the prompt text of prompt i).
const std::string& prompt_text(const JobResult& r, size_t prompt);

}  // namespace banyan::core::server
