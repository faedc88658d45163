// What the HTTP routes need from a tokenizer: text <-> ids, one token's text for the
// logprobs APIs, and the chat template. The serve command wraps core::Tokenizer
// (tokenizer_codec.h); tests use a byte-level fake.
//
// Thread-safety: every method is const and may be called from any I/O thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace banyan::core::server {

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;
  /// One token's text as the logprobs APIs show it (may be a partial UTF-8 sequence).
  virtual std::string token_text(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int32_t> eos_token_id() const = 0;
  /// Renders a conversation (a JSON array of messages, content already text) with the
  /// model's chat template; `extra_json` is an object of extra template variables
  /// (chat_template_kwargs). Throws banyan::Error when the model has no template or
  /// the messages do not fit it.
  virtual std::string render_chat(const std::string& messages_json, bool add_generation_prompt,
                                  const std::string& extra_json = "{}") const = 0;
};

}  // namespace banyan::core::server
