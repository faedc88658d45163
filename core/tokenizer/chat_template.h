// Rendering a conversation with a tokenizer's chat template, exactly as transformers'
// apply_chat_template(messages, tokenize=False, add_generation_prompt=...) does: the template
// sees messages, tools (None when absent), documents (None), add_generation_prompt, the named
// special tokens (bos_token, eos_token, ...) and any extra variables (enable_thinking, ...).
#pragma once

#include <map>
#include <string>

#include "core/tokenizer/tokenizer.h"

namespace banyan::core {

/// messages_json: a JSON array of messages ({"role": ..., "content": string or list of parts,
/// plus any other fields the template reads). extra_context_json: a JSON object of extra
/// template variables; a "tools" key there is the tool list. template_name: "" picks the
/// template as transformers does ("tool_use" when tools are given and it exists, else
/// "default"). Throws banyan::Error for malformed JSON, an empty conversation, a template
/// error (raise_exception included) or an unsupported construct (named, with its position).
std::string render_chat(const Tokenizer& tokenizer, const std::string& messages_json, bool add_generation_prompt,
                        const std::string& extra_context_json = "{}", const std::string& template_name = "");

/// The same with a template given as source text and the special-token variables given
/// explicitly (for templates that do not come from tokenizer_config.json).
std::string render_chat_source(const std::string& template_source,
                               const std::map<std::string, std::string>& special_tokens,
                               const std::string& messages_json, bool add_generation_prompt,
                               const std::string& extra_context_json = "{}");

}  // namespace banyan::core
