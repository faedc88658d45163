// Unicode character data for the tokenizer pipeline and the chat-template interpreter:
// general categories, White_Space, case mappings (full, per character), canonical combining
// classes and the four normalization forms. Tables come from gen_unicode_tables.py.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace banyan::core::unicode {

enum class Category : uint8_t {
  Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi,
  Pf, Po, Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn,
};

/// The Unicode version the tables were generated from.
const char* version();

/// Whether c was assigned in Unicode major.minor or earlier (the character databases of
/// tokenizers' dependencies are older than the current one: normalization uses 9.0, the
/// punctuation test 8.0).
bool assigned_by(char32_t c, int major, int minor);

Category category(char32_t c);

inline bool is_letter(char32_t c) { return category(c) <= Category::Lo; }
inline bool is_mark(char32_t c) {
  const auto k = category(c);
  return k >= Category::Mn && k <= Category::Me;
}
/// Rust's char::is_numeric: Nd, Nl, No.
inline bool is_numeric(char32_t c) {
  const auto k = category(c);
  return k >= Category::Nd && k <= Category::No;
}
/// Unicode punctuation (Pc, Pd, Ps, Pe, Pi, Pf, Po).
inline bool is_punctuation(char32_t c) {
  const auto k = category(c);
  return k >= Category::Pc && k <= Category::Po;
}
/// The White_Space property (Rust's char::is_whitespace).
bool is_white_space(char32_t c);
/// Python's str.isspace (White_Space plus U+001C..U+001F).
bool is_python_space(char32_t c);
bool is_python_digit(char32_t c);
bool is_python_numeric(char32_t c);
bool is_python_printable(char32_t c);
/// Word characters of Unicode-aware regex engines (\w): Alphabetic, marks, Nd, Pc, Join_Control.
bool is_word(char32_t c);

/// Appends the full lower/upper/title-case mapping of one character (no context rules).
void append_lower(std::u32string& out, char32_t c);
void append_upper(std::u32string& out, char32_t c);
void append_title(std::u32string& out, char32_t c);
/// Whether the character changes under the mapping.
bool has_lower(char32_t c);
bool has_upper(char32_t c);

uint8_t combining_class(char32_t c);

enum class Form { NFC, NFD, NFKC, NFKD };

/// Normalizes valid UTF-8 text. Returns the input unchanged (cheaply) when no character
/// in it can change under the form.
std::string normalize(std::string_view text, Form form);

/// Normalizes a code point sequence.
std::u32string normalize(std::u32string_view text, Form form);

}  // namespace banyan::core::unicode
