// Prompts as requests give them: text, a list of texts, token ids or lists of token
// ids (the OpenAI completions API), tokenized with the server's codec.
#pragma once

#include "core/server/generation_job.h"
#include "core/server/json_fields.h"

#include <vector>

namespace banyan::core::server {

class TextCodec;

inline constexpr size_t kMaxPrompts = 1024;

PromptInput prompt_from_text(const TextCodec& codec, const std::string& text, bool add_special);
/// Checks every id against the vocabulary (400 naming `param`).
PromptInput prompt_from_ids(const TextCodec& codec, std::vector<int32_t> ids,
                            const std::string& param);

/// Reads `key` as a string, a list of strings, a list of ids or a list of id lists.
std::vector<PromptInput> read_prompts(const Fields& f, const char* key, const TextCodec& codec,
                                      bool add_special);

/// Keeps the last `keep` tokens of the prompt (vLLM's truncate_prompt_tokens, TGI's
/// truncate); the text is re-decoded.
void truncate_prompt(PromptInput& p, size_t keep, const TextCodec& codec);

}  // namespace banyan::core::server
