// Added-token matching (special, normalized, lstrip, rstrip, single_word) on a character-level
// vocabulary, so the expected ids follow directly from how Hugging Face documents the
// splits: leftmost-longest matches; lstrip/rstrip absorb the surrounding whitespace;
// single_word rejects a match touching a word character; normalized tokens match the
// normalized (here lowercased) text.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/tokenizer/test_fixtures.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

using Json = nlohmann::json;

// One vocabulary entry per character: printable ASCII, tab and U+2000, ids 0..N-1.
std::vector<std::string> alphabet() {
  std::vector<std::string> chars;
  for (char c = ' '; c <= '~'; ++c) chars.emplace_back(1, c);
  chars.emplace_back("\t");
  chars.push_back(utf8::encode(U'\u2000'));
  return chars;
}

struct Added {
  std::string content;
  bool special, normalized, lstrip, rstrip, single_word;
};

Tokenizer char_tokenizer(const std::vector<Added>& added) {
  Json vocab = Json::object();
  const auto chars = alphabet();
  for (size_t i = 0; i < chars.size(); ++i) vocab[chars[i]] = i;
  Json tokens = Json::array();
  int id = 1000;
  for (const Added& a : added)
    tokens.push_back({{"id", id++}, {"content", a.content}, {"special", a.special}, {"normalized", a.normalized},
                      {"lstrip", a.lstrip}, {"rstrip", a.rstrip}, {"single_word", a.single_word}});
  const Json t = {{"added_tokens", tokens},
                  {"normalizer", {{"type", "Lowercase"}}},
                  {"pre_tokenizer", nullptr},
                  {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}};
  return Tokenizer::from_strings(t.dump());
}

// Ids of text spelled character by character.
std::vector<int32_t> spelled(const std::string& text) {
  const auto chars = alphabet();
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    utf8::next(text, i);
    const auto it = std::find(chars.begin(), chars.end(), text.substr(start, i - start));
    ids.push_back(static_cast<int32_t>(it - chars.begin()));
  }
  return ids;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(AddedTokens, StripsAndSingleWordAndNormalizedMatching) {
  // ids: my=1000, name=1001, ony=1002, [CLS]=1003, [SEP]=1004
  const Tokenizer tok = char_tokenizer({{"my", false, true, true, true, false},
                                        {"name", false, true, false, false, false},
                                        {"ony", false, true, false, false, true},
                                        {"[CLS]", true, false, false, false, false},
                                        {"[SEP]", true, false, false, false, false}});
  // "My" only matches after lowercasing (normalized=true) and takes its spaces with it;
  // "ony" inside "Anthony" is not a single word.
  EXPECT_EQ(tok.encode("[CLS] My name is Anthony [SEP]", false),
            concat({{1003, 1000, 1001}, spelled(" is anthony "), {1004}}));
  // Decoding gives the tokens back (the absorbed spaces are gone, as in Hugging Face).
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1003, 1000, 1001}), "[CLS] my name");
}

TEST(AddedTokens, SingleWordNeedsNonWordNeighbours) {
  const Tokenizer tok = char_tokenizer({{"<mask>", false, true, false, false, true}});
  EXPECT_EQ(tok.encode("<mask> My name <mask> A<mask> <mask>ony <mask>", false),
            concat({{1000}, spelled(" my name "), {1000}, spelled(" a<mask> <mask>ony "), {1000}}));
  // Punctuation and dashes are not word characters; a combining mark is.
  EXPECT_EQ(tok.encode("<mask>, <mask>-", false), concat({{1000}, spelled(", "), {1000}, spelled("-")}));
}

TEST(AddedTokens, StripsTakeUnicodeWhitespaceWithoutOverlapping) {
  const Tokenizer tok = char_tokenizer({{"<mask>", false, true, true, true, true}});
  const std::string en_quad = utf8::encode(U'\u2000');
  EXPECT_EQ(tok.encode("Hi <mask> there\t<mask>\t<mask>" + en_quad, false),
            concat({spelled("hi"), {1000}, spelled("there"), {1000, 1000}}));
}

TEST(AddedTokens, LongestMatchWinsAndSpecialTokensAreNotNormalized) {
  const Tokenizer tok = char_tokenizer({{"<a>", true, false, false, false, false},
                                        {"<a><b>", true, false, false, false, false},
                                        {"<X>", true, false, false, false, false}});
  EXPECT_EQ(tok.encode("<a><b><a>", false), (std::vector<int32_t>{1001, 1000}));
  // Not normalized: "<x>" does not match "<X>" and the text around it is lowercased.
  EXPECT_EQ(tok.encode("<x><X>Q", false), concat({spelled("<x>"), {1002}, spelled("q")}));
  EXPECT_TRUE(tok.is_special(1000));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1002, 81}, true), "q");
}

TEST(TokenizerConfig, SplitSpecialTokensTokenizesThemAsText) {
  Json vocab = Json::object();
  const auto chars = alphabet();
  for (size_t i = 0; i < chars.size(); ++i) vocab[chars[i]] = i;
  const std::string tok_json =
      Json{{"added_tokens", Json::array({{{"id", 1000}, {"content", "<s>"}, {"special", true}},
                                         {{"id", 1001}, {"content", "<t>"}, {"special", false}}})},
           {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}}
          .dump();
  const Tokenizer plain = Tokenizer::from_strings(tok_json, R"({"split_special_tokens": false})");
  const Tokenizer split = Tokenizer::from_strings(tok_json, R"({"split_special_tokens": true})");
  EXPECT_EQ(plain.encode("<s><t>", false), (std::vector<int32_t>{1000, 1001}));
  EXPECT_EQ(split.encode("<s><t>", false), concat({spelled("<s>"), {1001}}));  // non-special still match
}

TEST(TokenizerConfig, SpecialTokensEosAndTemplates) {
  const Tokenizer base = char_tokenizer({{"<s>", true, false, false, false, false},
                                         {"</s>", true, false, false, false, false}});
  const std::string tok_json = [] {
    Json vocab = Json::object();
    const auto chars = alphabet();
    for (size_t i = 0; i < chars.size(); ++i) vocab[chars[i]] = i;
    return Json{{"added_tokens", Json::array({{{"id", 1000}, {"content", "<s>"}, {"special", true}},
                                              {{"id", 1001}, {"content", "</s>"}, {"special", true}}})},
                {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}}
        .dump();
  }();
  const std::string config = R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "special": true},
    "eos_token": "</s>",
    "add_bos_token": true, "add_eos_token": true,
    "chat_template": [{"name": "default", "template": "D{{ messages|length }}"},
                      {"name": "tool_use", "template": "T{{ tools|length }}"}]})";
  const Tokenizer tok = Tokenizer::from_strings(tok_json, config, R"({"eos_token_id": [7, 1001]})");
  EXPECT_EQ(tok.encode("a", true), (std::vector<int32_t>{1000, 65, 1001}));
  EXPECT_EQ(tok.encode("a", false), (std::vector<int32_t>{65}));
  EXPECT_EQ(tok.bos_token_id(), 1000);
  EXPECT_EQ(tok.eos_token_ids(), (std::vector<int32_t>{7, 1001}));
  EXPECT_EQ(tok.special_token_strings().at("eos_token"), "</s>");
  ASSERT_NE(tok.chat_template("tool_use"), nullptr);
  EXPECT_EQ(tok.chat_template_names(), (std::vector<std::string>{"default", "tool_use"}));
  const Tokenizer single_eos = Tokenizer::from_strings(tok_json, config, R"({"eos_token_id": 1001})");
  EXPECT_EQ(single_eos.eos_token_ids(), (std::vector<int32_t>{1001}));
  EXPECT_EQ(base.vocab_size(), 1002);
}

TEST(TokenizerConfig, TemplateFilesBesideTheConfigWin) {
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() / ("banyan_tpl_test_" + std::to_string(rd()));
  std::filesystem::create_directories(dir / "additional_chat_templates");
  Json vocab = Json::object();
  vocab["a"] = 0;
  std::ofstream(dir / "tokenizer.json") << Json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}}.dump();
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "from config"})";
  std::ofstream(dir / "chat_template.json") << R"({"chat_template": [{"name": "default", "template": "from json"}, {"name": "rag", "template": "R"}]})";
  std::ofstream(dir / "chat_template.jinja") << "from jinja";
  std::ofstream(dir / "additional_chat_templates" / "tool_use.jinja") << "T";
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(*tok.chat_template(), "from jinja");
  EXPECT_EQ(*tok.chat_template("rag"), "R");
  EXPECT_EQ(*tok.chat_template("tool_use"), "T");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace banyan::core
