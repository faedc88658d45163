// UTF-8 helpers: decoding one code point, encoding, validation, and the lossy conversion
// that Rust's String::from_utf8_lossy does (each maximal invalid subsequence becomes one
// U+FFFD), which is what Hugging Face decoders produce for invalid byte runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace banyan::core::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;

/// Decodes the code point starting at s[i] and advances i. The input must be valid UTF-8.
inline char32_t next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t c = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    const char32_t c = ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                       (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    i += 3;
    return c;
  }
  const char32_t c = ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
                     ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
                     (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  i += 4;
  return c;
}

/// Byte length of the sequence a lead byte starts (1 for ASCII and for invalid lead bytes).
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

/// Appends the UTF-8 encoding of c.
void append(std::string& out, char32_t c);

/// Returns the encoding of one code point.
inline std::string encode(char32_t c) {
  std::string s;
  append(s, c);
  return s;
}

/// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid(std::string_view s);

inline bool is_valid(std::string_view s) { return find_invalid(s) == std::string_view::npos; }

/// Number of bytes at the end of s that form an incomplete (but so far valid) sequence:
/// 0 when s ends on a character boundary.
size_t incomplete_tail(std::string_view s);

/// Replaces each maximal invalid subsequence by U+FFFD (Unicode's recommended practice,
/// as Rust's from_utf8_lossy and Python's errors="replace" do).
std::string lossy(std::string_view bytes);

/// Number of code points (s must be valid).
size_t length(std::string_view s);

/// Decodes a whole valid UTF-8 string into code points.
std::u32string decode(std::string_view s);

/// Encodes code points.
std::string encode(std::u32string_view s);

}  // namespace banyan::core::utf8
