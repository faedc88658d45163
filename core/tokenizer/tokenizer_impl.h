// The data behind a Tokenizer (internal to core/tokenizer).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/tokenizer/added_vocabulary.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/pipeline.h"
#include "core/tokenizer/tokenizer.h"

namespace banyan::core {

struct Tokenizer::Impl {
  std::string name;  // the directory or label, for error messages
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  bool decoder_position_dependent = false;
  bool decoder_byte_fallback = false;
  AddedVocabulary added;
  std::unordered_set<std::string> special_contents;  // skipped by skip_special_tokens
  std::map<std::string, std::string> special_strings;
  std::optional<int32_t> bos_id, pad_id;
  std::vector<int32_t> eos_ids;
  std::map<std::string, std::string, std::less<>> templates;
  int32_t vocab_bound = 0;

  mutable std::mutex compiled_mu;
  mutable std::map<std::string, std::shared_ptr<const jinja::Template>, std::less<>> compiled;

  int32_t token_to_id(std::string_view token) const {
    if (const AddedToken* t = added.by_content(token)) return t->id;
    return model->token_to_id(token);
  }
};

/// Reads chat_template.json ({"chat_template": str or [{"name", "template"}]}) into impl.
void read_chat_template_json(Tokenizer::Impl& impl, std::string_view text, const std::string& file);

/// Builds the Impl from file contents (tokenizer_loader.cpp).
std::shared_ptr<Tokenizer::Impl> load_tokenizer_impl(std::string_view tokenizer_json, std::string_view config_json,
                                                     std::string_view generation_json,
                                                     std::string_view chat_template_file, const std::string& name);

}  // namespace banyan::core
