// A byte-level TextCodec for tests: ids 0 <pad>, 1 <s> (BOS), 2 </s> (EOS), and
// 3 + b for each byte b. Its chat template writes "<|role|>content\n" per message.
#pragma once

#include "core/server/text_codec.h"

namespace banyan::core::server::testing {

class ByteCodec : public TextCodec {
 public:
  static constexpr int32_t kBos = 1, kEos = 2, kOffset = 3;
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;
  std::string token_text(int32_t id) const override;
  bool is_special(int32_t id) const override { return id < kOffset; }
  int64_t vocab_size() const override { return 256 + kOffset; }
  std::optional<int32_t> eos_token_id() const override { return kEos; }
  std::string render_chat(const std::string& messages_json, bool add_generation_prompt,
                          const std::string& extra_json) const override;
};

}  // namespace banyan::core::server::testing
