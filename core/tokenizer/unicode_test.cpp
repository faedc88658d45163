// UTF-8 handling, Unicode data and the Oniguruma-compatible regex layer. Expected values
// come from the Unicode Standard (Table 3-8 for maximal subparts, UAX #15 examples) and from
// the documented behaviour of Oniguruma and Rust's regex iteration.
#include <gtest/gtest.h>

#include "core/tokenizer/regex.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, LossyReplacesEachMaximalSubpart) {
  EXPECT_EQ(utf8::lossy("ab"), "ab");
  EXPECT_EQ(utf8::lossy("\xC3\x28"), kFFFD + "(");                      // lead byte without continuation
  EXPECT_EQ(utf8::lossy("\xE2\x82"), kFFFD);                            // a truncated 3-byte sequence
  EXPECT_EQ(utf8::lossy("\xF0\x9F\x98" "A"), kFFFD + "A");              // a truncated 4-byte sequence
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);        // a surrogate: three subparts
  EXPECT_EQ(utf8::lossy("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // above U+10FFFF
  EXPECT_EQ(utf8::lossy("\xC0\xAF"), kFFFD + kFFFD);                    // overlong
  EXPECT_EQ(utf8::lossy("\xE4\xB8\xAD\x80"), "\xE4\xB8\xAD" + kFFFD);   // 中 then a stray continuation
}

TEST(Utf8, IncompleteTail) {
  EXPECT_EQ(utf8::incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4"), 1u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4\xB8"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4\xB8\xAD"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("a\xFF"), 0u);  // invalid, not incomplete
}

TEST(Unicode, NormalizationForms) {
  using unicode::Form;
  EXPECT_EQ(unicode::normalize("e\xCC\x81", Form::NFC), "\xC3\xA9");     // e + U+0301 -> é
  EXPECT_EQ(unicode::normalize("\xC3\xA9", Form::NFD), "e\xCC\x81");
  EXPECT_EQ(unicode::normalize("\xEF\xAC\x81", Form::NFKC), "fi");       // U+FB01 ligature
  EXPECT_EQ(unicode::normalize("\xE2\x91\xA0", Form::NFKD), "1");        // U+2460 circled one
  EXPECT_EQ(unicode::normalize("\xE2\x84\xAB", Form::NFC), "\xC3\x85");  // U+212B angstrom -> U+00C5
  // Hangul syllables decompose algorithmically and compose back.
  EXPECT_EQ(unicode::normalize("\xED\x95\x9C", Form::NFD), "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
  EXPECT_EQ(unicode::normalize("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", Form::NFC), "\xED\x95\x9C");
  // Canonical ordering: U+0323 (class 220) sorts before U+0307 (class 230).
  EXPECT_EQ(unicode::normalize("q\xCC\x87\xCC\xA3", Form::NFD), "q\xCC\xA3\xCC\x87");
  // tokenizers normalizes with Unicode 9.0 tables: U+A7F2 (Unicode 14) is left alone.
  EXPECT_EQ(unicode::normalize("\xEA\x9F\xB2", Form::NFKC), "\xEA\x9F\xB2");
  EXPECT_EQ(unicode::normalize("plain ascii", Form::NFKD), "plain ascii");
}

TEST(Unicode, CaseAndCategories) {
  std::u32string out;
  unicode::append_lower(out, U'\u0130');
  EXPECT_EQ(out, U"i\u0307");  // İ lowercases to i + combining dot (SpecialCasing)
  out.clear();
  unicode::append_upper(out, U'\u00DF');
  EXPECT_EQ(out, U"SS");
  EXPECT_TRUE(unicode::is_punctuation(U'!'));
  EXPECT_TRUE(unicode::is_punctuation(U'\u3001'));
  EXPECT_TRUE(unicode::is_numeric(U'\u00BD'));
  EXPECT_TRUE(unicode::is_white_space(U'\u0085'));
  EXPECT_FALSE(unicode::is_white_space(U'\u200B'));
  EXPECT_TRUE(unicode::is_python_space(U'\u001C'));
  EXPECT_TRUE(unicode::is_word(U'\u0301'));
  EXPECT_TRUE(unicode::assigned_by(U'A', 1, 1));
  EXPECT_FALSE(unicode::assigned_by(U'\U0001F97A', 9, 0));  // 🥺 arrived in Unicode 11
  EXPECT_TRUE(unicode::assigned_by(U'\U0001F97A', 11, 0));
}

std::vector<std::string> pieces(const Regex& re, const std::string& text) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(text, m);
  std::vector<std::string> out;
  for (const auto& [a, b] : m) out.push_back(text.substr(a, b - a));
  return out;
}

TEST(Regex, TranslatesOnigurumaShorthands) {
  EXPECT_EQ(Regex::translate("\\s+(?!\\S)"), "[\\s\\x{85}]+(?![^\\s\\x{85}])");
  EXPECT_EQ(Regex::translate("[^\\s\\p{L}]"), "[^\\s\\x{85}\\p{L}]");
  EXPECT_EQ(Regex::translate("\\w+"), "[\\p{L}\\p{M}\\p{N}\\p{Pc}]+");
  EXPECT_EQ(Regex::translate("\\h"), "[0-9a-fA-F]");
}

TEST(Regex, WhitespaceIncludesNextLine) {
  const Regex re("\\s+", "test");
  EXPECT_EQ(pieces(re, "a\xC2\x85" "b c"), (std::vector<std::string>{"\xC2\x85", " "}));
}

TEST(Regex, EmptyMatchesFollowRustIteration) {
  const Regex re("a*", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("baaa", m);
  EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 4}}));
}

TEST(Regex, Llama3PatternSplitsAsDocumented) {
  const Regex re(
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "test");
  EXPECT_EQ(pieces(re, "I'm here  now"), (std::vector<std::string>{"I", "'m", " here", " ", " now"}));
  EXPECT_EQ(pieces(re, "12345"), (std::vector<std::string>{"123", "45"}));
  EXPECT_EQ(pieces(re, "DON'T"), (std::vector<std::string>{"DON", "'T"}));
}

}  // namespace
}  // namespace banyan::core
