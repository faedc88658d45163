#include "core/server/tokenizer_codec.h"

#if BANYAN_SERVER_HAVE_TOKENIZER
#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/tokenizer.h"

#include <banyan/error.h>

namespace banyan::core::server {

std::vector<int32_t> TokenizerCodec::encode(const std::string& text, bool add_special) const {
  return tok_.encode(text, add_special);
}

std::string TokenizerCodec::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return tok_.decode(ids, skip_special);
}

std::string TokenizerCodec::token_text(int32_t id) const {
  int32_t one[1] = {id};
  return tok_.decode(one, false);
}

bool TokenizerCodec::is_special(int32_t id) const { return tok_.is_special(id); }
int64_t TokenizerCodec::vocab_size() const { return tok_.vocab_size(); }

std::optional<int32_t> TokenizerCodec::eos_token_id() const {
  const auto& eos = tok_.eos_token_ids();
  if (eos.empty()) return std::nullopt;
  return eos.front();
}

std::string TokenizerCodec::render_chat(const std::string& messages_json,
                                        bool add_generation_prompt,
                                        const std::string& extra_json) const {
  return core::render_chat(tok_, messages_json, add_generation_prompt, extra_json);
}

}  // namespace banyan::core::server
#endif
