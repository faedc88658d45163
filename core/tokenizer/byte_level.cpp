#include "core/tokenizer/byte_level.h"

#include "core/tokenizer/utf8.h"

namespace banyan::core::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> to_text;
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 512> from_char{};  // characters U+0000..U+01FF
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    int n = 0;
    for (int b = 0; b < 256; ++b) t.to_char[b] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    t.from_char.fill(-1);
    for (int b = 0; b < 256; ++b) {
      t.to_text[b] = utf8::encode(t.to_char[b]);
      t.from_char[t.to_char[b]] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_to_text() { return tables().to_text; }

int char_to_byte(char32_t c) { return c < 512 ? tables().from_char[c] : -1; }

void append_mapped(std::string& out, std::string_view text) {
  const auto& t = tables().to_text;
  for (char c : text) out += t[static_cast<unsigned char>(c)];
}

}  // namespace banyan::core::byte_level
