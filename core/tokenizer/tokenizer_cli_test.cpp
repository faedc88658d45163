// The `banyan tokenize` / `banyan chat-template` contract: JSONL in, one JSONL line out per
// input line, errors as {"error": ...} lines with a non-zero status.
#include <gtest/gtest.h>

#include <sstream>

#include "core/tokenizer/test_fixtures.h"
#include "core/tokenizer/tokenizer_cli.h"

namespace banyan::core {
namespace {

using Json = nlohmann::ordered_json;
using testing::fixtures_dir;

std::vector<Json> output_lines(const std::string& out) {
  std::vector<Json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) lines.push_back(Json::parse(line));
  return lines;
}

TEST(TokenizeCli, WritesIdsPerLineAndErrorsInPlace) {
  const Json golden = testing::read_json(fixtures_dir() / "goldens" / "synthetic.json")["bytelevel_template"];
  const Json& c0 = golden["cases"][0];
  const Json& c1 = golden["cases"][5];
  std::string input;
  input += Json{{"text", c0["text"]}}.dump() + "\n";
  input += "\n";  // blank lines are skipped
  input += Json{{"text", c1["text"]}, {"add_special_tokens", false}}.dump() + "\n";
  input += "{not json\n";
  input += R"({"txt": "missing text"})" "\n";
  input += R"({"text": 5})" "\n";
  input += R"({"text": "x", "add_special_tokens": "yes"})" "\n";
  input += "{\"text\": \"bad \xff utf8\"}\n";
  input += Json{{"text", c1["text"]}}.dump() + "\n";  // processing continues after errors
  std::istringstream in(input);
  std::ostringstream out, err;
  const int rc = tokenize_cli(fixtures_dir() / "synthetic" / "bytelevel_template", in, out, err);
  EXPECT_EQ(rc, 1);
  const auto lines = output_lines(out.str());
  ASSERT_EQ(lines.size(), 8u) << out.str();
  EXPECT_EQ(lines[0]["ids"], c0["ids"]);
  EXPECT_EQ(lines[1]["ids"], c1["ids_plain"]);
  for (size_t i = 2; i < 7; ++i) EXPECT_TRUE(lines[i].contains("error")) << lines[i];
  EXPECT_EQ(lines[7]["ids"], c1["ids"]);
  EXPECT_NE(err.str().find("line 4"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("line 8"), std::string::npos) << err.str();
}

TEST(TokenizeCli, AllGoodLinesExitZero) {
  std::istringstream in(R"({"text": "hello"})" "\n");
  std::ostringstream out, err;
  EXPECT_EQ(tokenize_cli(fixtures_dir() / "synthetic" / "sp_legacy", in, out, err), 0);
  EXPECT_EQ(err.str(), "");
}

TEST(TokenizeCli, UnloadableTokenizerIsReported) {
  std::istringstream in(R"({"text": "hello"})" "\n");
  std::ostringstream out, err;
  EXPECT_EQ(tokenize_cli(fixtures_dir() / "no-such-tokenizer", in, out, err), 1);
  EXPECT_NE(err.str().find("no-such-tokenizer"), std::string::npos);
}

TEST(ChatTemplateCli, RendersLikeApplyChatTemplate) {
  BANYAN_REQUIRE_TOKENIZER(tok, "qwen3");
  const Json golden = testing::read_json(fixtures_dir() / "goldens" / "qwen3.json");
  std::map<std::string, Json> chats;
  for (const Json& c : testing::read_jsonl(fixtures_dir() / "chats.jsonl")) chats[c["name"].get<std::string>()] = c;
  std::string input;
  std::vector<Json> expected;
  for (const Json& g : golden["chat"]) {
    const Json& chat = chats.at(g["name"].get<std::string>());
    Json request = chat["kwargs"];
    request["messages"] = chat["messages"];
    request["add_generation_prompt"] = chat["add_generation_prompt"];
    input += request.dump() + "\n";
    expected.push_back(g);
  }
  input += R"({"messages": "not a list"})" "\n";
  std::istringstream in(input);
  std::ostringstream out, err;
  EXPECT_EQ(chat_template_cli(testing::tokenizer_cache() / "qwen3", in, out, err), 1);
  const auto lines = output_lines(out.str());
  ASSERT_EQ(lines.size(), expected.size() + 1);
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i].contains("error")) {
      EXPECT_TRUE(lines[i].contains("error")) << expected[i]["name"];
    } else {
      EXPECT_EQ(lines[i]["text"], expected[i]["text"]) << expected[i]["name"];
    }
  }
  EXPECT_TRUE(lines.back().contains("error"));
}

}  // namespace
}  // namespace banyan::core
