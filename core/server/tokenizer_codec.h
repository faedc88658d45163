// The TextCodec of a real model: core::Tokenizer plus its chat template.
#pragma once

#include "core/server/text_codec.h"

namespace banyan::core {
class Tokenizer;
}

namespace banyan::core::server {

class TokenizerCodec : public TextCodec {
 public:
  /// `tokenizer` must outlive the codec (the engine owns it).
  explicit TokenizerCodec(const Tokenizer& tokenizer) : tok_(tokenizer) {}
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;
  std::string token_text(int32_t id) const override;
  bool is_special(int32_t id) const override;
  int64_t vocab_size() const override;
  std::optional<int32_t> eos_token_id() const override;
  std::string render_chat(const std::string& messages_json, bool add_generation_prompt,
                          const std::string& extra_json) const override;

 private:
  const Tokenizer& tok_;
};

}  // namespace banyan::core::server
