// Regular expressions of tokenizer.json (written for Oniguruma, which Hugging Face
// tokenizers uses) run on PCRE2 with JIT. The pattern is translated where the two engines
// differ: Oniguruma's \s is the White_Space property (PCRE2 leaves out U+0085), its \w is
// [\p{L}\p{M}\p{N}\p{Pc}] and its \h is a hex digit; ^ and $ match at line boundaries.
// Thread-safe: one compiled pattern can be used from many threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace banyan::core {

class Regex {
 public:
  /// Compiles an Oniguruma-style pattern. `where` names the pattern's origin for errors
  /// (for example "tokenizer.json: pre_tokenizer.pretokenizers[0].pattern").
  Regex(std::string_view pattern, std::string_view where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Appends the non-overlapping matches in text as [start, end) byte ranges, iterating the
  /// way Rust's regex iterators do: an empty match right after the previous match is skipped.
  /// text must be valid UTF-8.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  /// Translation of an Oniguruma pattern into PCRE2 syntax (exposed for tests).
  static std::string translate(std::string_view pattern);

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::core
