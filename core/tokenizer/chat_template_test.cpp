// Chat templates rendered identically to transformers' apply_chat_template (goldens made by
// tools/make_tokenizer_goldens.py with transformers 5.17): the templates of the three real
// tokenizers and the test templates in tests/fixtures/tokenizer/templates/, over the message
// shapes of tests/fixtures/tokenizer/chats.jsonl.
#include <gtest/gtest.h>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/test_fixtures.h"

namespace banyan::core {
namespace {

using Json = nlohmann::ordered_json;
using testing::fixtures_dir;

std::map<std::string, Json> chats_by_name() {
  std::map<std::string, Json> out;
  for (const Json& c : testing::read_jsonl(fixtures_dir() / "chats.jsonl")) out[c["name"].get<std::string>()] = c;
  return out;
}

// Renders one chat case; returns the text, or "ERROR: ..." when rendering threw.
template <class F>
std::string attempt(F&& render) {
  try {
    return render();
  } catch (const std::exception& e) {
    return std::string("ERROR: ") + e.what();
  }
}

class RealChatTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(RealChatTemplate, MatchesApplyChatTemplate) {
  BANYAN_REQUIRE_TOKENIZER(tok, GetParam());
  const Json golden = testing::read_json(fixtures_dir() / "goldens" / (GetParam() + ".json"));
  const auto chats = chats_by_name();
  int checked = 0;
  for (const Json& g : golden["chat"]) {
    const Json& chat = chats.at(g["name"].get<std::string>());
    const std::string got = attempt([&] {
      return render_chat(*tok, chat["messages"].dump(), chat["add_generation_prompt"].get<bool>(), chat["kwargs"].dump());
    });
    if (g.contains("error")) {
      EXPECT_EQ(got.rfind("ERROR: ", 0), 0u) << g["name"] << ": transformers failed with " << g["error"]
                                            << " but we rendered " << Json(got).dump();
    } else {
      EXPECT_EQ(got, g["text"].get<std::string>()) << g["name"];
      if (got == g["text"].get<std::string>() && g.contains("ids")) {
        EXPECT_EQ(tok->encode(got, false), g["ids"].get<std::vector<int32_t>>()) << g["name"] << " (prompt ids)";
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(chats.size()));
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, RealChatTemplate, ::testing::Values("llama3", "qwen3", "gemma3"));

TEST(TestChatTemplates, MatchApplyChatTemplate) {
  // Rendered by transformers with the llama3 tokenizer's special tokens.
  const Json golden = testing::read_json(fixtures_dir() / "goldens" / "llama3.json");
  const auto chats = chats_by_name();
  const std::map<std::string, std::string> specials{{"bos_token", "<|begin_of_text|>"},
                                                    {"eos_token", "<|end_of_text|>"}};
  ASSERT_FALSE(golden["templates"].empty());
  for (const Json& g : golden["templates"]) {
    const std::string source =
        testing::read_text(fixtures_dir() / "templates" / (g["template"].get<std::string>() + ".jinja"));
    const Json& chat = chats.at(g["name"].get<std::string>());
    const std::string got = attempt([&] {
      return render_chat_source(source, specials, chat["messages"].dump(), chat["add_generation_prompt"].get<bool>(),
                                chat["kwargs"].dump());
    });
    const std::string where = g["template"].get<std::string>() + " / " + g["name"].get<std::string>();
    if (g.contains("error")) {
      EXPECT_EQ(got.rfind("ERROR: ", 0), 0u) << where << ": transformers failed with " << g["error"]
                                            << " but we rendered " << Json(got).dump();
    } else {
      EXPECT_EQ(got, g["text"].get<std::string>()) << where;
    }
  }
}

}  // namespace
}  // namespace banyan::core
