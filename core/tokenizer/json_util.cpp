#include "core/tokenizer/json_util.h"

#include "core/tokenizer/utf8.h"

namespace banyan::core::json {

char32_t single_char(const Node& n, std::string_view key) {
  const std::string s = n.str(key);
  if (s.empty() || !utf8::is_valid(s) || utf8::length(s) != 1)
    n.fail("\"" + std::string(key) + "\" must be a single character, found \"" + s + "\"");
  size_t i = 0;
  return utf8::next(s, i);
}

}  // namespace banyan::core::json
