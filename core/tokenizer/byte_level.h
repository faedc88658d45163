// The GPT-2 byte-to-character table that byte-level BPE vocabularies are written in: each
// of the 256 byte values is shown as one printable character (bytes that are printable
// Latin-1 characters stand for themselves, the others map to U+0100 and up).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace banyan::core::byte_level {

/// UTF-8 of the character that stands for each byte.
const std::array<std::string, 256>& byte_to_text();

/// The byte a character stands for, or -1 when the character is not in the alphabet.
int char_to_byte(char32_t c);

/// Maps every byte of text to its character.
void append_mapped(std::string& out, std::string_view text);

}  // namespace banyan::core::byte_level
