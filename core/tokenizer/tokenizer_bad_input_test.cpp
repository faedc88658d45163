// Bad input: invalid UTF-8, malformed or unsupported tokenizer.json, and the errors that
// must name the file and the component.
#include <gtest/gtest.h>

#include <banyan/error.h>

#include <fstream>
#include <random>

#include "core/tokenizer/test_fixtures.h"

namespace banyan::core {
namespace {

// A tokenizer.json with a tiny byte-level vocabulary; `patch` edits the JSON before writing.
nlohmann::json small_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  const char* chars[] = {"a", "b", "c", "ab", "abc", "Ġ", "Ġa"};
  for (int i = 0; i < 7; ++i) vocab[chars[i]] = i;
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array({{{"id", 7}, {"content", "<s>"}, {"special", true}, {"normalized", false},
                                                   {"lstrip", false}, {"rstrip", false}, {"single_word", false}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({"a b", "ab c", "Ġ a"})}}}};
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("banyan_tok_test_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string load_error(const std::string& tokenizer_json, const std::string& config = "") {
  TempDir dir;
  dir.write("tokenizer.json", tokenizer_json);
  if (!config.empty()) dir.write("tokenizer_config.json", config);
  try {
    Tokenizer::load(dir.path());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BadInput, TheSmallTokenizerLoads) {
  EXPECT_EQ(load_error(small_tokenizer().dump()), "");
  const Tokenizer tok = Tokenizer::from_strings(small_tokenizer().dump());
  EXPECT_EQ(tok.encode("abc", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(tok.encode("abc a<s>", false), (std::vector<int32_t>{4, 6, 7}));
}

TEST(BadInput, InvalidUtf8IsRefusedWithItsOffset) {
  const Tokenizer tok = Tokenizer::from_strings(small_tokenizer().dump());
  for (const std::string& bad : {std::string("ab\xff"), std::string("a\xc3"), std::string("\xed\xa0\x80"),
                                std::string("a\xe0\x80\xaf"), std::string("abc\x80")}) {
    try {
      tok.encode(bad);
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    }
  }
}

TEST(BadInput, MalformedJsonNamesTheFile) {
  const std::string err = load_error("{\"model\": {\"type\": \"BPE\", ");
  EXPECT_NE(err.find("tokenizer.json"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid JSON"), std::string::npos) << err;
  const std::string cfg = load_error(small_tokenizer().dump(), "{not json");
  EXPECT_NE(cfg.find("tokenizer_config.json"), std::string::npos) << cfg;
}

TEST(BadInput, UnknownComponentTypeNamesFileAndPath) {
  auto t = small_tokenizer();
  t["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Frobnicate"}}}}};
  const std::string err = load_error(t.dump());
  EXPECT_NE(err.find("tokenizer.json: normalizer.normalizers[1]"), std::string::npos) << err;
  EXPECT_NE(err.find("Frobnicate"), std::string::npos) << err;

  t = small_tokenizer();
  t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "UnicodeScripts"}}}}};
  const std::string pre = load_error(t.dump());
  EXPECT_NE(pre.find("pre_tokenizer.pretokenizers[0]"), std::string::npos) << pre;
  EXPECT_NE(pre.find("UnicodeScripts"), std::string::npos) << pre;

  t = small_tokenizer();
  t["decoder"] = {{"type", "CTC"}};
  EXPECT_NE(load_error(t.dump()).find("decoder: unsupported decoder type \"CTC\""), std::string::npos);

  t = small_tokenizer();
  t["post_processor"] = {{"type", "Mystery"}};
  EXPECT_NE(load_error(t.dump()).find("post_processor: unsupported post-processor type \"Mystery\""),
            std::string::npos);
}

TEST(BadInput, WordPieceAndUnigramAreRefused) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    auto t = small_tokenizer();
    t["model"]["type"] = type;
    const std::string err = load_error(t.dump());
    EXPECT_NE(err.find("tokenizer.json: model"), std::string::npos) << err;
    EXPECT_NE(err.find(type), std::string::npos) << err;
    EXPECT_NE(err.find("only BPE"), std::string::npos) << err;
  }
}

TEST(BadInput, InvalidRegexNamesTheComponent) {
  auto t = small_tokenizer();
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  const std::string err = load_error(t.dump());
  EXPECT_NE(err.find("tokenizer.json: pre_tokenizer.pattern"), std::string::npos) << err;
  EXPECT_NE(err.find("(unclosed"), std::string::npos) << err;
}

TEST(BadInput, BrokenVocabularyAndMerges) {
  auto t = small_tokenizer();
  t["model"]["merges"] = {"a zz"};
  const std::string err = load_error(t.dump());
  EXPECT_NE(err.find("model.merges[0]"), std::string::npos) << err;
  EXPECT_NE(err.find("missing from the vocabulary"), std::string::npos) << err;

  t = small_tokenizer();
  t["model"]["vocab"]["x"] = "seven";
  EXPECT_NE(load_error(t.dump()).find("model.vocab: token \"x\" has an invalid id"), std::string::npos);

  t = small_tokenizer();
  t["model"]["unk_token"] = "<unk>";
  EXPECT_NE(load_error(t.dump()).find("unk_token \"<unk>\" is not in the vocabulary"), std::string::npos);

  t = small_tokenizer();
  t.erase("model");
  EXPECT_NE(load_error(t.dump()).find("missing \"model\""), std::string::npos);
}

TEST(BadInput, MissingDirectoryOrFile) {
  try {
    Tokenizer::load("/nonexistent/banyan/tokenizer");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::not_found);
  }
  TempDir empty;
  try {
    Tokenizer::load(empty.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: missing"), std::string::npos) << e.what();
  }
}

TEST(BadInput, BadConfigValuesNameTheKey) {
  const std::string err = load_error(small_tokenizer().dump(), R"({"bos_token": 5})");
  EXPECT_NE(err.find("tokenizer_config.json: bos_token"), std::string::npos) << err;
  const std::string ct = load_error(small_tokenizer().dump(), R"({"chat_template": 7})");
  EXPECT_NE(ct.find("tokenizer_config.json: chat_template"), std::string::npos) << ct;
}

TEST(BadInput, UnknownIdsAreSkippedWhenDecoding) {
  // Hugging Face drops ids it has no token for.
  const Tokenizer tok = Tokenizer::from_strings(small_tokenizer().dump());
  const std::vector<int32_t> ids{4, 999, -3, 6};
  EXPECT_EQ(tok.decode(ids), tok.decode(std::vector<int32_t>{4, 6}));
}

}  // namespace
}  // namespace banyan::core
