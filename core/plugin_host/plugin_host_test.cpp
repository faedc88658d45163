#include "core/plugin_host/plugin_host.h"

#include <banyan/error.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

namespace banyan::core {
namespace {

fs::path lib_path(const std::string& variant) {
  return fs::path(BANYAN_TEST_PLUGIN_DIR) / ("libbanyan_test_plugin_" + variant + ".so");
}

class PluginHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    root_ = fs::temp_directory_path() / ("banyan_plugin_test_" + std::to_string(rd()));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes <root>/<dir>/plugin.yaml for a library variant.
  void manifest(const std::string& dir, const std::string& variant, const std::string& extra = "",
                const std::string& name = "testmodel", const std::string& kind = "model",
                const std::string& version = "1.2.3") {
    fs::create_directories(root_ / dir);
    std::ofstream f(root_ / dir / "plugin.yaml");
    f << "name: " << name << "\nkind: " << kind << "\nversion: " << version
      << "\nlibrary: " << lib_path(variant).string() << "\n"
      << extra;
  }
  // Scans and returns the single refusal message (fails if not exactly one).
  std::string refusal(PluginHost& host) {
    host.scan({root_});
    EXPECT_EQ(host.errors().size(), 1u);
    return host.errors().empty() ? std::string() : host.errors().front();
  }
  fs::path root_;
};

TEST_F(PluginHostTest, LoadsAGoodPluginAndCreatesObjects) {
  manifest("good", "good");
  PluginHost host;
  host.scan({root_});
  ASSERT_TRUE(host.errors().empty()) << host.errors().front();
  ASSERT_EQ(host.plugins().size(), 1u);
  const auto& p = host.plugins().front();
  EXPECT_EQ(p.name, "testmodel");
  EXPECT_EQ(p.kind, "model");
  EXPECT_EQ(p.version, "1.2.3");
  EXPECT_EQ(p.abi_major, uint32_t{BANYAN_ABI_MAJOR});

  PluginObject obj = host.create("model", "testmodel", nullptr, "{\"value\":7}");
  BanyanModelSpec spec{};
  BanyanError err{};
  ASSERT_EQ(obj.iface<BanyanModelV1>()->describe(obj.get(), &spec, &err), BANYAN_OK);
  EXPECT_EQ(spec.num_layers, 7);
}

TEST_F(PluginHostTest, ObjectKeepsItsLibraryAfterTheHostIsGone) {
  manifest("good", "good");
  PluginObject obj;
  {
    PluginHost host;
    host.scan({root_});
    obj = host.create("model", "testmodel", nullptr, "{}");
  }
  BanyanModelSpec spec{};
  BanyanError err{};
  ASSERT_EQ(obj.iface<BanyanModelV1>()->describe(obj.get(), &spec, &err), BANYAN_OK);
  EXPECT_EQ(spec.num_layers, 41);
}

TEST_F(PluginHostTest, SearchesRecursivelyAndIgnoresTheSameLibraryTwice) {
  manifest("a/b/c", "good");
  PluginHost host;
  host.scan({root_, root_ / "a"});
  EXPECT_TRUE(host.errors().empty());
  EXPECT_EQ(host.plugins().size(), 1u);
}

TEST_F(PluginHostTest, RefusesAnotherAbiMajor) {
  manifest("p", "abi_major");
  PluginHost host;
  std::string e = refusal(host);
  EXPECT_NE(e.find(lib_path("abi_major").string()), std::string::npos) << e;
  EXPECT_NE(e.find("ABI " + std::to_string(BANYAN_ABI_MAJOR + 1) + "." + std::to_string(BANYAN_ABI_MINOR)), std::string::npos) << e;
  EXPECT_TRUE(host.plugins().empty());
}

TEST_F(PluginHostTest, RefusesANewerMinor) {
  manifest("p", "abi_minor_newer");
  PluginHost host;
  std::string e = refusal(host);
  EXPECT_NE(e.find("newer than this host"), std::string::npos) << e;
}

TEST_F(PluginHostTest, RefusesAWrongKind) {
  manifest("p", "wrong_kind");
  PluginHost host;
  std::string e = refusal(host);
  EXPECT_NE(e.find("\"decoding\" plugin"), std::string::npos) << e;
  EXPECT_NE(e.find("plugin.yaml"), std::string::npos) << e;
}

TEST_F(PluginHostTest, RefusesAMissingEntrySymbol) {
  manifest("p", "no_entry");
  PluginHost host;
  EXPECT_NE(refusal(host).find("missing symbol banyan_plugin_entry"), std::string::npos);
}

TEST_F(PluginHostTest, RefusesANullDescriptor) {
  manifest("p", "null_entry");
  PluginHost host;
  EXPECT_NE(refusal(host).find("returned null"), std::string::npos);
}

TEST_F(PluginHostTest, RefusesAMissingSlot) {
  manifest("p", "no_create");
  PluginHost host;
  EXPECT_NE(refusal(host).find("required slot \"create\""), std::string::npos);
}

TEST_F(PluginHostTest, RefusesATruncatedDescriptor) {
  manifest("p", "small_struct");
  PluginHost host;
  EXPECT_NE(refusal(host).find("struct_size 8"), std::string::npos);
}

TEST_F(PluginHostTest, RefusesAManifestThatDoesNotMatchItsLibrary) {
  manifest("p", "name_mismatch");
  PluginHost host;
  EXPECT_NE(refusal(host).find("calls itself \"othermodel\""), std::string::npos);
  PluginHost host2;
  fs::remove_all(root_ / "p");
  manifest("q", "good", "", "testmodel", "model", "9.9.9");
  EXPECT_NE(refusal(host2).find("version \"9.9.9\""), std::string::npos);
}

TEST_F(PluginHostTest, RefusesADuplicateName) {
  manifest("a", "good");
  manifest("b", "throws_on_create");  // another library calling itself testmodel
  PluginHost host;
  std::string e = refusal(host);
  EXPECT_NE(e.find("duplicate model plugin name \"testmodel\""), std::string::npos) << e;
  EXPECT_EQ(host.plugins().size(), 1u);
}

TEST_F(PluginHostTest, RefusesAMissingLibraryAndBadManifests) {
  fs::create_directories(root_ / "x");
  std::ofstream(root_ / "x" / "plugin.yaml") << "name: x\nkind: model\nversion: 1\nlibrary: nope.so\n";
  fs::create_directories(root_ / "y");
  std::ofstream(root_ / "y" / "plugin.yaml") << "name: y\nkind: sampler\nversion: 1\nlibrary: a.so\n";
  fs::create_directories(root_ / "z");
  std::ofstream(root_ / "z" / "plugin.yaml") << "name: [unclosed\n";
  PluginHost host;
  host.scan({root_});
  ASSERT_EQ(host.errors().size(), 3u);
  EXPECT_NE(host.errors()[0].find("nope.so does not exist"), std::string::npos);
  EXPECT_NE(host.errors()[1].find("unknown kind \"sampler\""), std::string::npos);
  EXPECT_NE(host.errors()[2].find("not valid YAML"), std::string::npos);
}

TEST_F(PluginHostTest, RefusesOptionsThatFailTheirOwnTypes) {
  manifest("p", "good", "options:\n  - {name: k, type: int, default: many}\n");
  PluginHost host;
  EXPECT_NE(refusal(host).find("option \"k\": default is not a int"), std::string::npos);
}

TEST_F(PluginHostTest, ValidatesAndFillsOptions) {
  manifest("p", "good",
           "options:\n"
           "  - {name: group_size, type: int, default: 128, min: 32, max: 1024, doc: g}\n"
           "  - {name: mode, type: string, default: a, choices: [a, b]}\n");
  PluginHost host;
  host.scan({root_});
  ASSERT_TRUE(host.errors().empty()) << host.errors().front();
  const PluginInfo& info = *host.find("model", "testmodel");
  auto out = host.resolve_options(info, nlohmann::json::object());
  EXPECT_EQ(out["group_size"], 128);
  EXPECT_EQ(out["mode"], "a");
  EXPECT_EQ(host.resolve_options(info, {{"group_size", 64}})["group_size"], 64);
  try {
    host.resolve_options(info, {{"group_sise", 64}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean \"group_size\""), std::string::npos);
  }
  EXPECT_THROW(host.resolve_options(info, {{"group_size", "big"}}), Error);
  EXPECT_THROW(host.resolve_options(info, {{"group_size", 4096}}), Error);
  EXPECT_THROW(host.resolve_options(info, {{"mode", "c"}}), Error);
}

TEST_F(PluginHostTest, CreateFailureCarriesThePluginsMessage) {
  manifest("p", "throws_on_create");
  PluginHost host;
  host.scan({root_});
  try {
    host.create("model", "testmodel", nullptr, "{}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("option \"x\" is not allowed here"), std::string::npos);
  }
  EXPECT_THROW(host.create("model", "testmodle", nullptr, "{}"), Error);
}

TEST_F(PluginHostTest, MissingSearchPathIsAnError) {
  PluginHost host;
  EXPECT_THROW(host.scan({root_ / "does-not-exist"}), Error);
}

}  // namespace
}  // namespace banyan::core
