// Incremental text of one sequence's output: decodes a sliding window of token ids
// (a few tokens of context before the new ones, so tokenizers that drop a leading
// space at the start of a decode still produce the right text) and emits only
// complete UTF-8; stop strings are cut and, while streaming, text that could be the
// start of a stop string is held back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace banyan::core {

class Tokenizer;

class TextOutput {
 public:
  /// `context` is the prompt (its last tokens seed the decode window).
  TextOutput(std::span<const int32_t> context, bool skip_special_tokens);

  /// Appends the text of the output token at `output.back()`; returns it.
  std::string push(const Tokenizer& tok, std::span<const int32_t> all_tokens);

 private:
  bool skip_special_;
  size_t prefix_offset_ = 0;  // window start in the full token list
  size_t read_offset_ = 0;    // tokens before this are already in the text
};

/// Finds the earliest stop string in `text` that ends at or after `from`; returns
/// its position and index.
std::optional<std::pair<size_t, size_t>> find_stop(const std::string& text, size_t from,
                                                   const std::vector<std::string>& stops);

/// Length of text that is safe to send while streaming: everything except a tail
/// that could still become a stop string.
size_t sendable_length(const std::string& text, const std::vector<std::string>& stops);

}  // namespace banyan::core
