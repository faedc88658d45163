#include "core/engine/text_output.h"

#include "core/tokenizer/tokenizer.h"

#include <algorithm>

namespace banyan::core {
namespace {
constexpr size_t kContextTokens = 5;

bool ends_incomplete(const std::string& s) {
  // U+FFFD (EF BF BD) at the end: a character still spread over coming tokens.
  if (s.size() >= 3 && static_cast<unsigned char>(s[s.size() - 3]) == 0xEF &&
      static_cast<unsigned char>(s[s.size() - 2]) == 0xBF &&
      static_cast<unsigned char>(s[s.size() - 1]) == 0xBD)
    return true;
  // Raw bytes of an unfinished UTF-8 sequence at the end.
  size_t i = s.size();
  size_t back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i == 0) return back > 0;
  unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need > back;
}
}  // namespace

TextOutput::TextOutput(std::span<const int32_t> context, bool skip_special_tokens)
    : skip_special_(skip_special_tokens) {
  read_offset_ = context.size();
  prefix_offset_ = context.size() > kContextTokens ? context.size() - kContextTokens : 0;
}

std::string TextOutput::push(const Tokenizer& tok, std::span<const int32_t> all) {
  std::string prefix = tok.decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_),
                                  skip_special_);
  std::string full = tok.decode(all.subspan(prefix_offset_), skip_special_);
  if (full.size() <= prefix.size() || ends_incomplete(full)) return {};
  std::string out = full.substr(prefix.size());
  prefix_offset_ = read_offset_;
  read_offset_ = all.size();
  return out;
}

std::optional<std::pair<size_t, size_t>> find_stop(const std::string& text, size_t from,
                                                   const std::vector<std::string>& stops) {
  std::optional<std::pair<size_t, size_t>> best;
  for (size_t i = 0; i < stops.size(); ++i) {
    const auto& s = stops[i];
    size_t start = from >= s.size() ? from - s.size() + 1 : 0;
    size_t pos = text.find(s, start > 0 ? start - 1 : 0);
    if (pos != std::string::npos && (!best || pos < best->first)) best = {{pos, i}};
  }
  return best;
}

size_t sendable_length(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    // Longest suffix of text that is a proper prefix of s.
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  }
  return text.size() - hold;
}

}  // namespace banyan::core
