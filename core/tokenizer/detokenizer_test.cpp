// Streaming detokenization against the Hugging Face decode goldens: pushing the ids one at a
// time must give back exactly transformers' decode(ids) (with and without special tokens),
// every piece complete UTF-8; stop strings cut the text where the reference text has them.
#include <gtest/gtest.h>

#include "core/tokenizer/detokenizer.h"
#include "core/tokenizer/test_fixtures.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

using Json = nlohmann::ordered_json;
using testing::fixtures_dir;

struct Streamed {
  std::string text;
  bool all_pieces_valid = true;
};

Streamed stream(const Tokenizer& tok, const std::vector<int32_t>& ids, DetokenizerOptions opt) {
  IncrementalDetokenizer d(tok, std::move(opt));
  Streamed s;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    s.all_pieces_valid = s.all_pieces_valid && utf8::is_valid(piece);
    s.text += piece;
  }
  const std::string rest = d.flush();
  s.all_pieces_valid = s.all_pieces_valid && utf8::is_valid(rest);
  s.text += rest;
  return s;
}

void check_streaming(const Tokenizer& tok, const Json& golden) {
  int failures = 0;
  std::string first;
  auto check = [&](const std::vector<int32_t>& ids, bool skip, const std::string& want, const std::string& what) {
    DetokenizerOptions opt;
    opt.skip_special_tokens = skip;
    const Streamed got = stream(tok, ids, opt);
    if (got.text != want || !got.all_pieces_valid) {
      if (++failures == 1)
        first = what + (skip ? " (skip special)" : "") + "\n  want " + Json(want).dump() + "\n  got  " +
                Json(utf8::lossy(got.text)).dump() + (got.all_pieces_valid ? "" : " (invalid UTF-8 returned)");
    }
  };
  for (const Json& c : golden["cases"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    check(ids, false, c["decode"].get<std::string>(), c["tag"].get<std::string>());
    check(ids, true, c["decode_skip"].get<std::string>(), c["tag"].get<std::string>());
  }
  for (const Json& r : golden["random_decode"]) {
    const auto ids = r["ids"].get<std::vector<int32_t>>();
    check(ids, false, r["text"].get<std::string>(), "random ids " + testing::show_ids(ids));
    check(ids, true, r["text_skip"].get<std::string>(), "random ids " + testing::show_ids(ids));
  }
  EXPECT_EQ(failures, 0) << "first: " << first;
}

class RealStreaming : public ::testing::TestWithParam<std::string> {};

TEST_P(RealStreaming, ConcatenatedPiecesEqualDecode) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  check_streaming(*tok, testing::read_json(fixtures_dir() / "goldens" / (GetParam() + ".json")));
}

TEST_P(RealStreaming, StopStringSpanningTokensCutsTheText) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  const Json golden = testing::read_json(fixtures_dir() / "goldens" / (GetParam() + ".json"));
  int checked = 0;
  for (const Json& c : golden["cases"]) {
    const std::string text = c["decode_skip"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    if (ids.size() < 6 || !utf8::is_valid(text)) continue;
    // A stop string taken from the middle of the reference text: 5 characters from the
    // middle character on (it spans several tokens in most cases).
    const std::u32string u = utf8::decode(text);
    const std::string stop = utf8::encode(std::u32string_view(u).substr(u.size() / 2, 5));
    const size_t at = text.find(stop);
    for (bool include : {false, true}) {
      DetokenizerOptions opt;
      opt.stop = {stop, "\x01never"};
      opt.include_stop_string = include;
      IncrementalDetokenizer d(*tok, opt);
      std::string out;
      for (int32_t id : ids) out += d.push(id);
      out += d.flush();
      EXPECT_TRUE(d.stopped()) << c["tag"];
      EXPECT_EQ(d.matched_stop(), stop);
      EXPECT_EQ(out, text.substr(0, at) + (include ? stop : "")) << c["tag"] << " stop " << Json(stop).dump();
    }
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST_P(RealStreaming, StopStringPrefixIsReleasedAtTheEnd) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  const std::vector<int32_t> ids = tok->encode("The answer is 42 and then", false);
  const std::string text = tok->decode(ids, true);
  DetokenizerOptions opt;
  opt.stop = {" and then some more"};  // only its prefix " and then" ever appears
  IncrementalDetokenizer d(*tok, opt);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  EXPECT_EQ(out, text.substr(0, text.find(" and")));  // held back while it could still match
  out += d.flush();
  EXPECT_EQ(out, text);
  EXPECT_FALSE(d.stopped());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, RealStreaming, ::testing::Values("llama3", "qwen3", "gemma3"));

class SyntheticStreaming : public ::testing::TestWithParam<std::string> {};

TEST_P(SyntheticStreaming, ConcatenatedPiecesEqualDecode) {
  static const Json goldens = testing::read_json(fixtures_dir() / "goldens" / "synthetic.json");
  check_streaming(Tokenizer::load(fixtures_dir() / "synthetic" / GetParam()), goldens[GetParam()]);
}

INSTANTIATE_TEST_SUITE_P(Components, SyntheticStreaming,
                         ::testing::Values("bytelevel_template", "split_behaviours", "sp_legacy", "metaspace_first",
                                           "metaspace_always", "classic_pretok", "wordpiece_style"));

}  // namespace
}  // namespace banyan::core
