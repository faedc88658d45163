// Patterns of Split pre-tokenizers and Replace normalizers/decoders: a literal string or an
// (Oniguruma-style) regex.
#include <optional>

#include "core/tokenizer/components.h"
#include "core/tokenizer/regex.h"

namespace banyan::core {

struct Pattern {
  std::string literal;
  std::optional<Regex> regex;
};

std::shared_ptr<const Pattern> make_pattern(const json::Node& node) {
  auto p = std::make_shared<Pattern>();
  if (!node.j.is_object()) node.fail("a pattern must be {\"String\": ...} or {\"Regex\": ...}");
  if (node.has("String")) {
    p->literal = node.str("String");
    if (p->literal.empty()) p->regex.emplace("", node.where);
  } else if (node.has("Regex")) {
    p->regex.emplace(node.str("Regex"), node.where);
  } else {
    node.fail("a pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

void find_matches(const Pattern& pattern, std::string_view text, std::vector<std::pair<size_t, size_t>>& out) {
  if (pattern.regex) {
    pattern.regex->find_all(text, out);
    return;
  }
  const std::string& lit = pattern.literal;
  size_t pos = 0;
  while ((pos = text.find(lit, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + lit.size());
    pos += lit.size();
  }
}

}  // namespace banyan::core
