// The adapter manager's memory: registration reads metadata only; the first request
// reads the files into the host tier and the first step makes the adapter resident;
// least recently used adapters leave the device and host tier, never one a running
// request uses, never a pinned one; unload frees memory at once or when its last
// request ends; bad requests are refused by name.
#include "core/adapters/adapter_manager.h"
#include "core/adapters/test_adapters.h"

#include "core/common/logging.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

namespace banyan::core {
namespace {

using nlohmann::json;
using namespace test;

const PluginHost& plugins() {
  static PluginHost* host = [] {
    set_log_level("warn");
    auto* h = new PluginHost();
    h->scan({fs::path(BANYAN_BINARY_DIR) / "lib" / "banyan" / "plugins"});
    return h;
  }();
  return *host;
}

class AdapterPool : public ::testing::Test {
 protected:
  void SetUp() override {
    write_random_llama(tmp_ / "base", {});
    ModelRunnerOptions o;
    o.model_dir = tmp_ / "base";
    o.num_blocks = 16;
    runner_ = std::make_unique<ModelRunner>(plugins(), o);
    // Five adapters of the same size (r8 on q and v), one with rank 16.
    std::map<std::string, LoraTensors> m;
    for (int i = 0; i < 6; ++i) {
      const int r = i == 5 ? 16 : 8;
      std::map<std::string, LoraTensors> mods;
      for (const auto& [name, io] : llama_modules({}))
        if (name.ends_with("q_proj") || name.ends_with("v_proj"))
          mods[name] = random_lora(r, io.first, io.second, 10 * i + static_cast<uint32_t>(mods.size()), false);
      write_peft(tmp_ / ("a" + std::to_string(i)), peft_config(r, 16, {"q_proj", "v_proj"}), mods);
    }
  }

  std::unique_ptr<AdapterManager> manager(size_t pool_adapters, size_t host_adapters = 100,
                                          int32_t max_rank = 64) {
    // The size of one image, from a manager with room for everything.
    if (!image_) {
      AdapterManager probe(plugins(), *runner_, {});
      probe.load("x", path(0));
      image_ = probe.find("x")->bytes;
    }
    AdapterManagerOptions o;
    o.pool_bytes = pool_adapters * image_ + image_ / 2;
    o.host_pool_bytes = host_adapters * image_ + image_ / 2;
    o.max_rank = max_rank;
    return std::make_unique<AdapterManager>(plugins(), *runner_, o);
  }

  std::string path(int i) { return (tmp_ / ("a" + std::to_string(i))).string(); }
  AdapterTier tier(AdapterManager& m, const std::string& n) { return m.find(n)->tier; }
  // A request that runs one step and ends.
  void serve(AdapterManager& m, const std::string& n) {
    uint64_t id = m.begin_request(n);
    m.acquire(id);
    m.end_request(id, true, 10);
  }

  TempDir tmp_;
  std::unique_ptr<ModelRunner> runner_;
  size_t image_ = 0;
};

TEST_F(AdapterPool, RegistrationReadsMetadataOnly) {
  auto m = manager(2);
  for (int i = 0; i < 300; ++i) m->load("n" + std::to_string(i), path(i % 5));
  auto st = m->stats();
  EXPECT_EQ(st.registered, 300);
  EXPECT_EQ(st.device_bytes, 0u);
  EXPECT_EQ(st.host_bytes, 0u);
  EXPECT_EQ(st.disk_reads, 0);
  EXPECT_EQ(tier(*m, "n7"), AdapterTier::disk);
  EXPECT_EQ(m->find("n7")->rank, 8);
  EXPECT_EQ(m->find("n7")->num_modules, 4);
}

TEST_F(AdapterPool, LoadsOnDemandThroughTheTiers) {
  auto m = manager(2);
  m->load("a", path(0));
  uint64_t id = m->begin_request("a");
  EXPECT_EQ(tier(*m, "a"), AdapterTier::host);
  EXPECT_EQ(m->find("a")->disk_reads, 1);
  int32_t slot = m->acquire(id);
  EXPECT_GE(slot, 0);
  EXPECT_EQ(tier(*m, "a"), AdapterTier::device);
  EXPECT_EQ(m->stats().device_bytes, image_);
  m->end_request(id, true, 12);
  serve(*m, "a");  // resident: no new read, no new load
  auto s = *m->find("a");
  EXPECT_EQ(s.disk_reads, 1);
  EXPECT_EQ(s.loads, 1);
  EXPECT_EQ(s.requests, 2);
  EXPECT_EQ(s.tokens, 22);
  EXPECT_EQ(s.running, 0);
}

TEST_F(AdapterPool, LeastRecentlyUsedLeavesTheDeviceFirst) {
  auto m = manager(2);
  for (int i = 0; i < 4; ++i) m->load("a" + std::to_string(i), path(i));
  serve(*m, "a0");
  serve(*m, "a1");
  serve(*m, "a2");  // evicts a0
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::host);
  serve(*m, "a1");  // a1 is now more recent than a2
  serve(*m, "a3");  // evicts a2
  EXPECT_EQ(tier(*m, "a1"), AdapterTier::device);
  EXPECT_EQ(tier(*m, "a2"), AdapterTier::host);
  EXPECT_EQ(tier(*m, "a3"), AdapterTier::device);
  EXPECT_EQ(m->find("a2")->evictions, 1);
  EXPECT_EQ(m->stats().device_bytes, 2 * image_);
  EXPECT_EQ(m->stats().evictions, 2);
  EXPECT_EQ(m->stats().disk_reads, 4);  // evicted adapters come back from the host tier
  serve(*m, "a0");
  EXPECT_EQ(m->stats().disk_reads, 4);
}

TEST_F(AdapterPool, RunningAdaptersAreNeverEvicted) {
  auto m = manager(2);
  for (int i = 0; i < 3; ++i) m->load("a" + std::to_string(i), path(i));
  uint64_t a = m->begin_request("a0"), b = m->begin_request("a1");
  int32_t sa = m->acquire(a), sb = m->acquire(b);
  uint64_t c = m->begin_request("a2");
  int32_t sc = m->acquire(c);  // over budget rather than evicting a running adapter
  EXPECT_NE(sa, sb);
  EXPECT_NE(sc, sa);
  EXPECT_NE(sc, sb);
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::device);
  EXPECT_EQ(tier(*m, "a1"), AdapterTier::device);
  EXPECT_EQ(m->stats().over_budget, 1);
  EXPECT_EQ(m->stats().device_bytes, 3 * image_);
  for (uint64_t id : {a, b, c}) m->end_request(id, true, 1);
  m->load("a3", path(3));
  serve(*m, "a3");  // now two unused adapters make room
  EXPECT_EQ(m->stats().device_bytes, 2 * image_);
}

TEST_F(AdapterPool, PinnedAdaptersStayResident) {
  auto m = manager(2);
  for (int i = 0; i < 3; ++i) m->load("a" + std::to_string(i), path(i));
  m->pin("a0", true);
  serve(*m, "a0");
  serve(*m, "a1");
  serve(*m, "a2");  // a0 is older but pinned: a1 goes
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::device);
  EXPECT_EQ(tier(*m, "a1"), AdapterTier::host);
  EXPECT_TRUE(m->find("a0")->pinned);
}

TEST_F(AdapterPool, HostTierIsBoundedToo) {
  auto m = manager(1, 2);
  for (int i = 0; i < 4; ++i) m->load("a" + std::to_string(i), path(i));
  for (int i = 0; i < 4; ++i) serve(*m, "a" + std::to_string(i));
  auto st = m->stats();
  EXPECT_LE(st.host_bytes, 2 * image_);
  EXPECT_EQ(st.cached, 2);
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::disk);
  serve(*m, "a0");  // read again from disk
  EXPECT_EQ(m->find("a0")->disk_reads, 2);
}

TEST_F(AdapterPool, UnloadFreesMemoryNowOrWhenTheLastRequestEnds) {
  auto m = manager(4);
  m->load("a", path(0));
  m->load("b", path(1));
  serve(*m, "a");
  uint64_t b = m->begin_request("b");
  m->acquire(b);
  EXPECT_EQ(m->stats().device_bytes, 2 * image_);
  m->unload("a");
  EXPECT_FALSE(m->find("a"));
  EXPECT_EQ(m->stats().device_bytes, image_);
  EXPECT_EQ(m->stats().host_bytes, image_);
  m->unload("b");  // still running: freed when it ends
  EXPECT_FALSE(m->find("b"));
  EXPECT_EQ(m->stats().device_bytes, image_);
  m->end_request(b, true, 5);
  EXPECT_EQ(m->stats().device_bytes, 0u);
  EXPECT_EQ(m->stats().host_bytes, 0u);
  EXPECT_EQ(m->stats().registered, 0);
  // The name can be reused, with a new identity.
  uint64_t old_id = b;
  m->load("b", path(2));
  EXPECT_NE(m->begin_request("b"), old_id);
}

TEST_F(AdapterPool, RefusesByName) {
  auto m = manager(2, 100, 8);
  m->load("a", path(0));
  auto code_and_message = [](auto&& f) -> std::pair<Code, std::string> {
    try {
      f();
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    return {Code::ok, ""};
  };
  auto [c1, m1] = code_and_message([&] { m->begin_request("nope"); });
  EXPECT_EQ(c1, Code::not_found);
  EXPECT_NE(m1.find("The model `nope` does not exist"), std::string::npos);
  auto [c2, m2] = code_and_message([&] { m->load("a", path(1)); });
  EXPECT_EQ(c2, Code::invalid_argument);
  EXPECT_NE(m2.find("already loaded"), std::string::npos);
  auto [c3, m3] = code_and_message([&] { m->load("big", path(5)); });
  EXPECT_EQ(c3, Code::invalid_argument);
  EXPECT_NE(m3.find("max_lora_rank 8"), std::string::npos) << m3;
  auto [c4, m4] = code_and_message([&] { m->unload("nope"); });
  EXPECT_EQ(c4, Code::not_found);
  auto [c5, m5] = code_and_message([&] { m->load("gone", (tmp_ / "missing").string()); });
  EXPECT_EQ(c5, Code::not_found);
  EXPECT_NE(m5.find("adapter \"gone\""), std::string::npos);
  // A pool smaller than one adapter refuses it at load.
  AdapterManagerOptions o;
  o.pool_bytes = image_ / 2;
  AdapterManager tiny(plugins(), *runner_, o);
  auto [c6, m6] = code_and_message([&] { tiny.load("a", path(0)); });
  EXPECT_NE(m6.find("more than adapters.pool_bytes"), std::string::npos) << m6;
}

}  // namespace
}  // namespace banyan::core
