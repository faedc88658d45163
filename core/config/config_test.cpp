#include "core/config/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace banyan::core {
namespace {

std::vector<ConfigIssue> load(Config& c, const std::string& yaml) {
  std::vector<ConfigIssue> issues;
  c.merge_yaml_text(yaml, "x.yaml", issues);
  return issues;
}

TEST(Config, DefaultsComeFromTheSchema) {
  Config c;
  EXPECT_EQ(c.get_int("engine.max_num_seqs"), 256);
  EXPECT_EQ(c.get_int("engine.block_size"), 16);
  EXPECT_DOUBLE_EQ(c.get_number("engine.gpu_memory_utilization"), 0.9);
  EXPECT_EQ(c.get_bytes("adapters.pool_bytes"), size_t{2} << 30);
  EXPECT_EQ(c.get_string("adapters.plugin"), "lora");
  EXPECT_EQ(c.get_string("device"), "auto");
  EXPECT_FALSE(c.has("model.path"));
  EXPECT_EQ(c.source("engine.max_num_seqs"), "default");
}

TEST(Config, ReadsEveryKindOfValue) {
  Config c;
  auto issues = load(c,
                     "model: {path: models/demo, dtype: float32}\n"
                     "device: cpu\n"
                     "engine:\n  max_num_seqs: 8\n  prefix_caching: false\n"
                     "adapters:\n  enabled: true\n  pool_bytes: 64MiB\n  plugin: my_format\n"
                     "  allowed_roots: [a, b]\n"
                     "  preload:\n    - {name: x, path: a/x}\n    - y=b/y\n"
                     "quantization: {method: int4, options: {foo: 3, bar: \"3\"}}\n");
  ASSERT_TRUE(issues.empty()) << issues.front().str();
  EXPECT_EQ(c.get_string("model.path"), "models/demo");
  EXPECT_EQ(c.get_int("engine.max_num_seqs"), 8);
  EXPECT_EQ(c.source("engine.max_num_seqs"), "x.yaml:4");
  EXPECT_FALSE(c.get_bool("engine.prefix_caching"));
  EXPECT_EQ(c.get_bytes("adapters.pool_bytes"), size_t{64} << 20);
  EXPECT_EQ(c.get_string("adapters.plugin"), "my_format");
  EXPECT_EQ(c.get_strings("adapters.allowed_roots"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.get_adapters("adapters.preload"),
            (std::vector<AdapterSpec>{{"x", "a/x"}, {"y", "b/y"}}));
  EXPECT_EQ(c.get_mapping_json("quantization.options"), R"({"bar":"3","foo":3})");
}

TEST(Config, ReportsEveryErrorWithKeyPathAndLine) {
  Config c;
  auto issues = load(c,
                     "model:\n  path: m\n"
                     "engine:\n"
                     "  max_num_seqs: lots\n"          // line 4: wrong type
                     "  block_size: 0\n"               // line 5: out of range
                     "  max_num_seq: 3\n"              // line 6: unknown, did-you-mean
                     "device: gpu\n"                   // line 7: bad choice
                     "severs: {}\n"                    // line 8: unknown section
                     "max_loras: 4\n");                // line 9: belongs to adapters
  ASSERT_EQ(issues.size(), 6u);
  EXPECT_EQ(issues[0].str(), "engine.max_num_seqs: expected an integer, got \"lots\" (x.yaml:4)");
  EXPECT_EQ(issues[1].str(), "engine.block_size: 0 is out of range [1, 1024] (x.yaml:5)");
  EXPECT_EQ(issues[2].str(),
            "engine.max_num_seq: unknown key; did you mean \"engine.max_num_seqs\"? (x.yaml:6)");
  EXPECT_EQ(issues[3].str(),
            "device: \"gpu\" is not one of auto, cpu, cuda (x.yaml:7)");
  EXPECT_EQ(issues[4].str(), "severs: unknown key; did you mean \"server\"? (x.yaml:8)");
  EXPECT_EQ(issues[5].str(),
            "max_loras: unknown key; did you mean \"adapters.max_loras\"? (x.yaml:9)");
  // Keys with problems keep their defaults.
  EXPECT_EQ(c.get_int("engine.max_num_seqs"), 256);
}

TEST(Config, RejectsMalformedStructures) {
  Config c;
  auto issues = load(c, "engine: 5\nadapters:\n  preload: [{name: a}]\n  allowed_roots: x\n");
  ASSERT_EQ(issues.size(), 3u);
  EXPECT_EQ(issues[0].str(), "engine: expected a mapping, got \"5\" (x.yaml:1)");
  EXPECT_NE(issues[1].str().find("needs both name and path"), std::string::npos);
  EXPECT_NE(issues[2].str().find("expected a list of strings"), std::string::npos);
}

TEST(Config, InvalidYamlNamesTheLine) {
  Config c;
  auto issues = load(c, "engine:\n  max_num_seqs: [1, 2\n");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_NE(issues[0].str().find("not valid YAML"), std::string::npos);
  EXPECT_NE(issues[0].where.find("x.yaml:"), std::string::npos);
}

TEST(Config, MissingFileIsAnIssue) {
  Config c;
  std::vector<ConfigIssue> issues;
  c.merge_yaml_file("/nonexistent/banyan.yaml", issues);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_NE(issues[0].str().find("no such file"), std::string::npos);
}

TEST(Config, FlagsOverrideTheFile) {
  Config c;
  ASSERT_TRUE(load(c, "engine: {max_num_seqs: 8}\n").empty());
  std::vector<ConfigIssue> issues;
  c.set_from_text("engine.max_num_seqs", {"32"}, "--max-num-seqs", issues);
  c.set_from_text("adapters.preload", {"a=p/a", "b=p/b"}, "--lora-modules", issues);
  c.set_from_text("server.port", {"http"}, "--port", issues);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].str(), "server.port: expected an integer, got \"http\" (--port)");
  EXPECT_EQ(c.get_int("engine.max_num_seqs"), 32);
  EXPECT_EQ(c.source("engine.max_num_seqs"), "--max-num-seqs");
  EXPECT_EQ(c.get_adapters("adapters.preload").size(), 2u);
}

TEST(Config, DumpRoundTrips) {
  Config a;
  ASSERT_TRUE(load(a, "engine: {max_num_seqs: 8}\nadapters: {preload: [{name: a, path: b}]}\n").empty());
  Config b;
  auto issues = load(b, a.dump_yaml());
  ASSERT_TRUE(issues.empty()) << issues.front().str();
  EXPECT_EQ(b.get_int("engine.max_num_seqs"), 8);
  EXPECT_EQ(b.get_adapters("adapters.preload"), a.get_adapters("adapters.preload"));
}

TEST(Config, DocsMatchTheSchema) {
  std::ifstream f(std::string(BANYAN_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(f) << "docs/configuration.md is missing; run `banyan config docs > docs/configuration.md`";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), configuration_markdown())
      << "docs/configuration.md is stale; run `banyan config docs > docs/configuration.md`";
}

TEST(Config, ShippedConfigsAreValid) {
  for (const char* name : {"demo.yaml"}) {
    Config c;
    std::vector<ConfigIssue> issues;
    c.merge_yaml_file(std::string(BANYAN_SOURCE_DIR) + "/configs/" + name, issues);
    EXPECT_TRUE(issues.empty()) << name << ": " << (issues.empty() ? "" : issues.front().str());
  }
}

}  // namespace
}  // namespace banyan::core
