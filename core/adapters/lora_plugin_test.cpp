// The "lora" adapter plugin through the host's AdapterFormat: PEFT's rules for which
// modules an adapter_config.json selects and with which rank and scaling, and every
// refusal with the message a user needs.
#include "core/adapters/adapter_format.h"
#include "core/adapters/test_adapters.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <cmath>

namespace banyan::core {
namespace {

using nlohmann::json;
using namespace test;

class LoraPluginTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_ = new PluginHost();
    host_->scan({fs::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
  }
  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
  }
  void SetUp() override {
    std::vector<BaseLinear> lin;
    for (const auto& [name, io] : llama_modules(shape_)) lin.push_back({name, io.first, io.second, false});
    lin.push_back({"lm_head", shape_.hidden, shape_.vocab, true});
    format_ = std::make_unique<AdapterFormat>(*host_, "lora", "llama", 2, lin);
  }

  // Every base module whose name ends with one of `suffixes` (all when empty).
  std::map<std::string, LoraTensors> modules(const std::vector<std::string>& suffixes, int r,
                                             bool dora = false) {
    std::map<std::string, LoraTensors> out;
    uint32_t seed = 1;
    for (const auto& [name, io] : llama_modules(shape_)) {
      bool take = suffixes.empty();
      for (const auto& s : suffixes) take = take || name.ends_with(s);
      if (take) out[name] = random_lora(r, io.first, io.second, seed++, dora);
    }
    return out;
  }

  std::map<std::string, std::pair<int, float>> opened(const fs::path& dir) {
    auto h = format_->open(dir.string());
    std::map<std::string, std::pair<int, float>> out;
    for (int i = 0; i < h.info().num_modules; ++i)
      out[h.info().modules[i].name] = {h.info().modules[i].rank, h.info().modules[i].scaling};
    return out;
  }

  std::string error_of(const fs::path& dir) {
    try {
      format_->open(dir.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static PluginHost* host_;
  LlamaShape shape_;
  std::unique_ptr<AdapterFormat> format_;
  TempDir tmp_;
};
PluginHost* LoraPluginTest::host_ = nullptr;

TEST_F(LoraPluginTest, ListTargetsWithScaling) {
  write_peft(tmp_ / "a", peft_config(8, 16, {"q_proj", "v_proj"}), modules({"q_proj", "v_proj"}, 8));
  auto m = opened(tmp_ / "a");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.at("model.layers.1.self_attn.v_proj").first, 8);
  EXPECT_FLOAT_EQ(m.at("model.layers.0.self_attn.q_proj").second, 2.0f);  // alpha / r
}

TEST_F(LoraPluginTest, RsLoraScalesByTheSquareRootOfTheRank) {
  json c = peft_config(16, 8, {"o_proj"});
  c["use_rslora"] = true;
  write_peft(tmp_ / "a", c, modules({"o_proj"}, 16));
  EXPECT_FLOAT_EQ(opened(tmp_ / "a").at("model.layers.0.self_attn.o_proj").second, 2.0f);  // 8 / 4
}

TEST_F(LoraPluginTest, RankAndAlphaPatternsFollowPeftKeyMatching) {
  // File order decides; a key matches a whole name or a suffix after a dot, as a regex.
  json c = peft_config(8, 16, {"q_proj", "up_proj", "down_proj"});
  c["rank_pattern"] = json::object({{"layers.1.mlp.down_proj", 16}, {"q_proj", 4}, {"proj", 2}});
  c["alpha_pattern"] = json::object({{"layers\\.0\\..*up_proj", 4}, {"v_proj", 32}});
  auto mods = modules({"q_proj", "up_proj", "mlp.down_proj"}, 8);
  mods["model.layers.0.self_attn.q_proj"] = random_lora(4, 64, 64, 50, false);
  mods["model.layers.1.self_attn.q_proj"] = random_lora(4, 64, 64, 51, false);
  mods["model.layers.1.mlp.down_proj"] = random_lora(16, 128, 64, 52, false);
  write_peft(tmp_ / "a", c, mods);
  auto m = opened(tmp_ / "a");
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj"), std::make_pair(4, 4.0f));   // 16 / 4
  EXPECT_EQ(m.at("model.layers.1.mlp.down_proj"), std::make_pair(16, 1.0f));     // 16 / 16
  EXPECT_EQ(m.at("model.layers.0.mlp.down_proj"), std::make_pair(8, 2.0f));      // "proj": no dot before it
  EXPECT_EQ(m.at("model.layers.0.mlp.up_proj"), std::make_pair(8, 0.5f));        // alpha 4
  EXPECT_EQ(m.at("model.layers.1.mlp.up_proj"), std::make_pair(8, 2.0f));
}

TEST_F(LoraPluginTest, LayersToTransformSelectsByLayerIndex) {
  json c = peft_config(8, 16, {"q_proj", "down_proj"});
  c["layers_to_transform"] = json::array({1});
  write_peft(tmp_ / "a", c, modules({"layers.1.self_attn.q_proj", "layers.1.mlp.down_proj"}, 8));
  EXPECT_EQ(opened(tmp_ / "a").size(), 2u);
  // Weights for a layer the config leaves out are refused.
  write_peft(tmp_ / "b", c, modules({"q_proj", "layers.1.mlp.down_proj"}, 8));
  EXPECT_NE(error_of(tmp_ / "b").find("model.layers.0.self_attn.q_proj has weights, but"),
            std::string::npos);
  // With layers_pattern, the index is the number after that name.
  c["layers_pattern"] = "layers";
  c["layers_to_transform"] = 0;
  write_peft(tmp_ / "c", c, modules({"layers.0.self_attn.q_proj", "layers.0.mlp.down_proj"}, 8));
  EXPECT_EQ(opened(tmp_ / "c").size(), 2u);
}

TEST_F(LoraPluginTest, RegexTargetsMustMatchTheWholeName) {
  write_peft(tmp_ / "a", peft_config(4, 8, ".*\\.layers\\.1\\..*\\.(k|v)_proj"),
             modules({"layers.1.self_attn.k_proj", "layers.1.self_attn.v_proj"}, 4));
  EXPECT_EQ(opened(tmp_ / "a").size(), 2u);
  // "k_proj" alone is not a full match of any module name: nothing is selected.
  write_peft(tmp_ / "b", peft_config(4, 8, "k_proj"), modules({"k_proj"}, 4));
  EXPECT_NE(error_of(tmp_ / "b").find("do not select it"), std::string::npos);
}

TEST_F(LoraPluginTest, AllLinearSkipsTheOutputProjection) {
  write_peft(tmp_ / "a", peft_config(4, 8, "all-linear"), modules({}, 4));
  EXPECT_EQ(opened(tmp_ / "a").size(), 14u);
  auto mods = modules({}, 4);
  mods["lm_head"] = random_lora(4, 64, 256, 9, false);
  write_peft(tmp_ / "b", peft_config(4, 8, "ALL-LINEAR"), mods);
  EXPECT_NE(error_of(tmp_ / "b").find("module lm_head has weights, but"), std::string::npos);
  // Named explicitly, the output projection takes an adapter.
  write_peft(tmp_ / "c", peft_config(4, 8, {"lm_head"}), {{"lm_head", random_lora(4, 64, 256, 9, false)}});
  EXPECT_EQ(opened(tmp_ / "c").size(), 1u);
}

TEST_F(LoraPluginTest, ExcludeModulesAsListAndRegex) {
  json c = peft_config(4, 8, {"q_proj", "v_proj"});
  c["exclude_modules"] = json::array({"layers.0.self_attn.v_proj"});
  auto mods = modules({"q_proj", "layers.1.self_attn.v_proj"}, 4);
  write_peft(tmp_ / "a", c, mods);
  EXPECT_EQ(opened(tmp_ / "a").size(), 3u);
  c["exclude_modules"] = ".*layers\\.0.*";
  write_peft(tmp_ / "b", c, modules({"layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj"}, 4));
  EXPECT_EQ(opened(tmp_ / "b").size(), 2u);
}

TEST_F(LoraPluginTest, DoraNeedsItsMagnitudeVector) {
  json c = peft_config(4, 8, {"v_proj"});
  c["use_dora"] = true;
  write_peft(tmp_ / "a", c, modules({"v_proj"}, 4, true));
  auto h = format_->open((tmp_ / "a").string());
  EXPECT_STREQ(h.info().method, "dora");
  EXPECT_EQ(h.info().modules[0].magnitude.shape[0], 32);
  write_peft(tmp_ / "b", c, modules({"v_proj"}, 4, false));
  EXPECT_NE(error_of(tmp_ / "b").find("no lora_magnitude_vector"), std::string::npos);
}

TEST_F(LoraPluginTest, Bf16TensorsAreRead) {
  write_peft(tmp_ / "a", peft_config(8, 16, {"q_proj"}), modules({"q_proj"}, 8), DType::bf16);
  auto h = format_->open((tmp_ / "a").string());
  EXPECT_EQ(h.info().modules[0].lora_a.dtype, BANYAN_BF16);
}

TEST_F(LoraPluginTest, AdapterForAnotherBaseModelIsRefusedWithAHint) {
  // A module the base does not have.
  std::map<std::string, LoraTensors> m = {{"model.layers.0.attn.c_attn", random_lora(4, 64, 192, 1, false)}};
  write_peft(tmp_ / "a", peft_config(4, 8, {"c_attn"}), m);
  std::string e = error_of(tmp_ / "a");
  EXPECT_NE(e.find("model.layers.0.attn.c_attn is not a linear layer of the base model"), std::string::npos) << e;
  EXPECT_NE(e.find("adapter for another base model?"), std::string::npos) << e;
  // Shapes of another model (hidden 128).
  auto mods = modules({"q_proj"}, 4);
  mods["model.layers.0.self_attn.q_proj"] = random_lora(4, 128, 128, 2, false);
  write_peft(tmp_ / "b", peft_config(4, 8, {"q_proj"}), mods);
  e = error_of(tmp_ / "b");
  EXPECT_NE(e.find("do not fit the base layer's 64 inputs and 64 outputs"), std::string::npos) << e;
  EXPECT_NE(e.find("adapter for another base model?"), std::string::npos) << e;
  // The config selects modules the file lacks.
  write_peft(tmp_ / "c", peft_config(4, 8, {"q_proj", "k_proj"}), modules({"q_proj"}, 4));
  EXPECT_NE(error_of(tmp_ / "c").find("has no weights for it"), std::string::npos);
  // A rank that disagrees with r.
  write_peft(tmp_ / "d", peft_config(8, 8, {"q_proj"}), modules({"q_proj"}, 4));
  EXPECT_NE(error_of(tmp_ / "d").find("rank 4 but adapter_config.json gives 8"), std::string::npos);
}

TEST_F(LoraPluginTest, RefusesWhatItCannotApply) {
  auto refused = [&](const std::string& dir, json c, const std::string& fragment) {
    write_peft(tmp_ / dir, c, modules({"q_proj"}, 4));
    std::string e = error_of(tmp_ / dir);
    EXPECT_NE(e.find(fragment), std::string::npos) << e;
  };
  json c = peft_config(4, 8, {"q_proj"});
  json m = c;
  m["modules_to_save"] = json::array({"lm_head"});
  refused("mts", m, "modules_to_save");
  json b = c;
  b["bias"] = "all";
  refused("bias", b, "only bias \"none\"");
  json t = c;
  t["peft_type"] = "IA3";
  refused("ia3", t, "reads LORA adapters only");
  // adapter_model.bin is never unpickled.
  fs::create_directories(tmp_ / "bin");
  std::ofstream(tmp_ / "bin" / "adapter_config.json") << c.dump();
  std::ofstream(tmp_ / "bin" / "adapter_model.bin") << "pickle";
  try {
    format_->open((tmp_ / "bin").string());
    ADD_FAILURE() << "adapter_model.bin was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::unsupported);
    EXPECT_NE(std::string(e.what()).find("adapter_model.bin"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("safetensors"), std::string::npos);
  }
  try {
    format_->open((tmp_ / "missing").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::not_found);
  }
}

}  // namespace
}  // namespace banyan::core
