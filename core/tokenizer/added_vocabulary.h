// Added tokens (tokenizer.json "added_tokens", plus those tokenizer_config.json adds) and how
// Hugging Face finds them in text: tokens with normalized=false are matched in the raw text
// first, the pieces between them are normalized, then tokens with normalized=true are
// matched in the normalized pieces. Matching is leftmost-longest; single_word, lstrip and
// rstrip adjust or reject a match as in tokenizers' AddedVocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/pipeline.h"

namespace banyan::core {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool normalized = true;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary();
  ~AddedVocabulary();
  AddedVocabulary(AddedVocabulary&&) noexcept;
  AddedVocabulary& operator=(AddedVocabulary&&) noexcept;

  /// Adds or updates a token (same content: the flags and id are replaced).
  void add(AddedToken token);
  /// Builds the matchers; call after the last add(), with the normalizer (may be null).
  void finalize(const Normalizer* normalizer);
  /// transformers' split_special_tokens: special tokens in the text are not recognized
  /// (they are tokenized as ordinary text).
  void set_split_special_tokens(bool split) { split_special_ = split; }

  /// Splits text into pieces: added tokens (token >= 0) and normalized text pieces.
  Pieces split(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  class Matcher;
  void split_raw(Piece&& piece, const Matcher& matcher, Pieces& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unique_ptr<Matcher> raw_, normalized_;
  bool split_special_ = false;
};

}  // namespace banyan::core
