// The BPE model of tokenizer.json: vocabulary, ranked merges, and the options byte-level
// (GPT-2, Llama 3, Qwen) and SentencePiece-style (Llama 2, Gemma: byte_fallback, unk,
// fuse_unk) vocabularies use. Merging follows Hugging Face tokenizers exactly: the pair of
// lowest rank is merged first, the leftmost among equals. Immutable after load; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/json_util.h"

namespace banyan::core {

struct BpeScratch;

class BpeModel {
 public:
  /// Builds the model from tokenizer.json's "model" object; refuses non-BPE models.
  static std::unique_ptr<BpeModel> load(const json::Node& model);

  /// Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  /// -1 when the token is not in the vocabulary.
  int32_t token_to_id(std::string_view token) const;
  /// nullptr when no token has this id.
  const std::string* id_to_token(int32_t id) const;
  /// Number of entries in the vocabulary.
  size_t size() const { return vocab_.size(); }
  /// One past the largest id.
  int32_t id_bound() const { return static_cast<int32_t>(id_to_token_.size()); }

  ~BpeModel();
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

 private:
  BpeModel();
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct MergeTable;

  void initial_symbols(std::string_view word, BpeScratch& scratch) const;
  void merge_small(BpeScratch& scratch) const;
  void merge_large(BpeScratch& scratch) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unique_ptr<MergeTable> merges_;
  std::vector<int32_t> bmp_ids_;  // id of each single BMP character, -1 if none (no prefix/suffix)
  int32_t byte_ids_[256];         // ids of <0xXX>, -1 if missing
  std::optional<std::string> continuing_subword_prefix_, end_of_word_suffix_;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
};

}  // namespace banyan::core
