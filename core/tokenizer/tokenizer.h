// Tokenizer: a Hugging Face model directory's tokenizer.json (BPE models, byte-level or with
// byte fallback), tokenizer_config.json (special tokens, add_bos_token/add_eos_token, chat
// templates) and generation_config.json (EOS ids), producing the same ids and text as
// transformers' AutoTokenizer.
//
// Thread-safety: a Tokenizer is immutable after load; every const method may be called from
// many threads at once. Copies are cheap and share the loaded data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace banyan::core {

namespace jinja {
class Template;
}

class Tokenizer {
 public:
  /// Loads dir/tokenizer.json (required), dir/tokenizer_config.json, dir/chat_template.jinja
  /// and dir/generation_config.json (optional). Throws banyan::Error naming the file and the
  /// component on malformed or unsupported input.
  static Tokenizer load(const std::filesystem::path& dir);

  /// Builds from file contents (empty strings for the optional files). `name` prefixes errors.
  static Tokenizer from_strings(std::string_view tokenizer_json, std::string_view config_json = {},
                                std::string_view generation_config_json = {}, std::string_view name = {});

  /// Token ids of text (valid UTF-8, else banyan::Error). add_special_tokens applies the
  /// post-processor (BOS/EOS as transformers would add them).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  /// Text of ids; ids unknown to the vocabulary are skipped, as Hugging Face does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  /// The token string of an id (added tokens included); nullopt for an unknown id.
  std::optional<std::string_view> id_to_token(int32_t id) const;
  /// -1 when the token is not in the vocabulary.
  int32_t token_to_id(std::string_view token) const;
  /// Whether the id is a special added token (skipped by skip_special_tokens).
  bool is_special(int32_t id) const;
  /// One past the largest token id (added tokens included).
  int32_t vocab_size() const;

  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> pad_token_id() const;
  /// Ids that end generation: generation_config.json's eos_token_id (int or list), then the
  /// tokenizer's eos_token when not already listed.
  const std::vector<int32_t>& eos_token_ids() const;

  /// Named special tokens of tokenizer_config.json (bos_token, eos_token, unk_token,
  /// pad_token, ...) as strings: the variables a chat template sees.
  const std::map<std::string, std::string>& special_token_strings() const;

  /// The chat template of that name ("default" for the plain one); nullptr if absent.
  const std::string* chat_template(std::string_view name = "default") const;
  std::vector<std::string> chat_template_names() const;
  /// The parsed template (parsed on first use, then cached). Throws on a syntax error.
  std::shared_ptr<const jinja::Template> compiled_chat_template(std::string_view name = "default") const;

  /// Runs the decoder over token strings (the last step of decode), for streaming.
  std::string decode_tokens(std::vector<std::string> tokens) const;
  /// Whether the decoder strips or rewrites the start of the text (Metaspace, Strip), so that
  /// text decoded from the middle of a sequence differs from the full decode.
  bool decoder_is_position_dependent() const;
  /// Whether the id is a <0xXX> token that the decoder's ByteFallback turns into a byte.
  bool is_byte_fallback_token(int32_t id) const;

  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace banyan::core
