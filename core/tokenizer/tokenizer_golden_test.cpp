// Token ids and decoded text against Hugging Face goldens (tools/make_tokenizer_goldens.py,
// run with tokenizers 0.23 / transformers 5.17): the three real tokenizers over the whole
// multilingual corpus (fixtures fetched by scripts/fetch-tokenizers.sh), and the synthetic
// tokenizers that exercise the remaining pipeline components.
#include <gtest/gtest.h>

#include "core/tokenizer/test_fixtures.h"

namespace banyan::core {
namespace {

using testing::fixtures_dir;
using testing::read_json;
using testing::show_ids;
using Json = nlohmann::ordered_json;

// Collects mismatches so one test reports how many of the cases fail and shows the first few.
class Mismatches {
 public:
  void add(const std::string& what) {
    if (++count_ <= 6) shown_ += "\n  " + what;
  }
  int count() const { return count_; }
  std::string report() const { return std::to_string(count_) + " mismatches:" + shown_; }

 private:
  int count_ = 0;
  std::string shown_;
};

std::string label(const Json& c) { return c["tag"].get<std::string>() + " " + Json(c["text"]).dump(); }

void check_encode(const Tokenizer& tok, const Json& golden, bool add_special) {
  Mismatches m;
  const char* key = add_special ? "ids" : "ids_plain";
  for (const Json& c : golden["cases"]) {
    const auto want = c[key].get<std::vector<int32_t>>();
    const auto got = tok.encode(c["text"].get<std::string>(), add_special);
    if (got != want) m.add(label(c) + "\n    want " + show_ids(want) + "\n    got  " + show_ids(got));
  }
  EXPECT_EQ(m.count(), 0) << m.report();
}

void check_decode(const Tokenizer& tok, const Json& golden) {
  Mismatches m;
  for (const Json& c : golden["cases"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    const std::string plain = tok.decode(ids, false), skip = tok.decode(ids, true);
    if (plain != c["decode"].get<std::string>())
      m.add(label(c) + "\n    want " + Json(c["decode"]).dump() + "\n    got  " + Json(plain).dump());
    if (skip != c["decode_skip"].get<std::string>())
      m.add(label(c) + " (skip special)\n    want " + Json(c["decode_skip"]).dump() + "\n    got  " + Json(skip).dump());
  }
  for (const Json& r : golden["random_decode"]) {
    const auto ids = r["ids"].get<std::vector<int32_t>>();
    const std::string plain = tok.decode(ids, false), skip = tok.decode(ids, true);
    if (plain != r["text"].get<std::string>())
      m.add("random ids " + show_ids(ids) + "\n    want " + Json(r["text"]).dump() + "\n    got  " + Json(plain).dump());
    if (skip != r["text_skip"].get<std::string>())
      m.add("random ids (skip) " + show_ids(ids) + "\n    want " + Json(r["text_skip"]).dump() + "\n    got  " +
            Json(skip).dump());
  }
  EXPECT_EQ(m.count(), 0) << m.report();
}

class RealTokenizer : public ::testing::TestWithParam<std::string> {
 protected:
  Json golden() const { return read_json(fixtures_dir() / "goldens" / (GetParam() + ".json")); }
};

TEST_P(RealTokenizer, EncodeWithSpecialTokensMatchesTransformers) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  check_encode(*tok, golden(), true);
}

TEST_P(RealTokenizer, EncodeWithoutSpecialTokensMatchesTransformers) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  check_encode(*tok, golden(), false);
}

TEST_P(RealTokenizer, DecodeMatchesTransformers) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  check_decode(*tok, golden());
}

TEST_P(RealTokenizer, CorpusCoversTheCommittedTexts) {
  // The goldens hold the texts they were made from; they must be the corpus files' texts.
  const Json g = golden();
  std::vector<std::string> corpus;
  for (const char* f : {"corpus_manual.jsonl", "corpus_random.jsonl"})
    for (const auto& line : testing::read_jsonl(fixtures_dir() / f)) corpus.push_back(line["text"].get<std::string>());
  ASSERT_EQ(corpus.size(), g["cases"].size());
  for (size_t i = 0; i < corpus.size(); ++i) EXPECT_EQ(corpus[i], g["cases"][i]["text"].get<std::string>()) << i;
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, RealTokenizer, ::testing::Values("llama3", "qwen3", "gemma3"));

class SyntheticTokenizer : public ::testing::TestWithParam<std::string> {
 protected:
  static const Json& goldens() {
    static const Json g = read_json(fixtures_dir() / "goldens" / "synthetic.json");
    return g;
  }
  Tokenizer load() const { return Tokenizer::load(fixtures_dir() / "synthetic" / GetParam()); }
};

TEST_P(SyntheticTokenizer, EncodeMatchesTokenizers) {
  const Tokenizer tok = load();
  check_encode(tok, goldens()[GetParam()], true);
  check_encode(tok, goldens()[GetParam()], false);
}

TEST_P(SyntheticTokenizer, DecodeMatchesTokenizers) { check_decode(load(), goldens()[GetParam()]); }

INSTANTIATE_TEST_SUITE_P(Components, SyntheticTokenizer,
                         ::testing::Values("bytelevel_template", "split_behaviours", "split_inverted", "sp_legacy",
                                           "metaspace_first", "metaspace_always", "classic_pretok",
                                           "wordpiece_style"));

}  // namespace
}  // namespace banyan::core
