// The adapter manager's memory: registration reads metadata only; the first request
// reads the files into the host tier and the first step makes the adapter resident;
// least recently used adapters leave the device and host tier, never one a running
// request uses, never a pinned one; unload frees memory at once or when its last
// request ends; bad requests are refused by name.
#include "core/adapters/adapter_manager.h"
#include "core/adapters/adapter_pool.h"
#include "core/adapters/test_adapters.h"

#include "core/common/logging.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <numeric>
#include <random>

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

class AdapterManagerPool : public ::testing::Test {
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
    // The footprint of one adapter in the pool (whole pages), from a manager with
    // room for everything.
    if (!image_) {
      AdapterManager probe(plugins(), *runner_, {});
      probe.load("x", path(0));
      image_ = static_cast<size_t>(probe.find("x")->pages) * probe.stats().page_bytes;
      packed_ = probe.find("x")->bytes;
      EXPECT_GE(image_, packed_);
    }
    AdapterManagerOptions o;
    o.pool_bytes = pool_adapters * image_ + image_ / 2;
    o.host_pool_bytes = host_adapters * packed_ + packed_ / 2;
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
  size_t image_ = 0;   // pool footprint (device bytes)
  size_t packed_ = 0;  // packed image (host tier bytes)
};

TEST_F(AdapterManagerPool, RegistrationReadsMetadataOnly) {
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

TEST_F(AdapterManagerPool, LoadsOnDemandThroughTheTiers) {
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

TEST_F(AdapterManagerPool, LeastRecentlyUsedLeavesTheDeviceFirst) {
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

TEST_F(AdapterManagerPool, RunningAdaptersAreNeverEvicted) {
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
  // The third got memory of its own beyond the budget.
  EXPECT_EQ(m->stats().device_reserved_bytes, m->stats().device_budget + image_);
  m->check_pool();
  for (uint64_t id : {a, b, c}) m->end_request(id, true, 1);
  m->load("a3", path(3));
  serve(*m, "a3");  // the one beyond the budget leaves first, then the oldest
  EXPECT_EQ(m->stats().device_bytes, 2 * image_);
  EXPECT_EQ(tier(*m, "a2"), AdapterTier::host);
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::host);
  EXPECT_EQ(tier(*m, "a1"), AdapterTier::device);
  EXPECT_LE(m->stats().device_reserved_bytes, m->stats().device_budget);  // its chunk went back
  m->check_pool();
}

TEST_F(AdapterManagerPool, PinnedAdaptersStayResident) {
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

TEST_F(AdapterManagerPool, HostTierIsBoundedToo) {
  auto m = manager(1, 2);
  for (int i = 0; i < 4; ++i) m->load("a" + std::to_string(i), path(i));
  for (int i = 0; i < 4; ++i) serve(*m, "a" + std::to_string(i));
  auto st = m->stats();
  EXPECT_LE(st.host_bytes, 2 * packed_);
  EXPECT_EQ(st.cached, 2);
  EXPECT_EQ(tier(*m, "a0"), AdapterTier::disk);
  serve(*m, "a0");  // read again from disk
  EXPECT_EQ(m->find("a0")->disk_reads, 2);
}

TEST_F(AdapterManagerPool, UnloadFreesMemoryNowOrWhenTheLastRequestEnds) {
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
  EXPECT_EQ(m->stats().host_bytes, packed_);
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

TEST_F(AdapterManagerPool, RefusesByName) {
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

// Adapters of many sizes (ranks 2 to 16, on the attention or the MLP) served in a
// random order through a pool for about three of them, with small pages so that the
// runs vary. After every request: within budget, never over it, every page accounted
// for; after unloading everything: every page free.
TEST_F(AdapterManagerPool, MixedSizesStayWithinBudgetAndLeakNoPage) {
  const std::vector<int> ranks = {2, 5, 8, 13, 16, 3, 11, 7, 4, 9};
  for (size_t i = 0; i < ranks.size(); ++i) {
    const bool attn = i % 2 == 0;
    std::map<std::string, LoraTensors> mods;
    for (const auto& [name, io] : llama_modules({}))
      if (attn ? name.ends_with("q_proj") || name.ends_with("v_proj")
               : name.ends_with("gate_proj") || name.ends_with("down_proj") || name.ends_with("o_proj"))
        mods[name] = random_lora(ranks[i], io.first, io.second, 500 + static_cast<uint32_t>(i * 10 + mods.size()), false);
    write_peft(tmp_ / ("m" + std::to_string(i)), peft_config(ranks[i], 16, attn ? json{"q_proj", "v_proj"}
                                                                           : json{"gate_proj", "down_proj", "o_proj"}),
               mods);
  }
  AdapterManagerOptions o;
  o.page_bytes = 256;
  o.pool_bytes = 0;
  {
    AdapterManager probe(plugins(), *runner_, {});
    for (size_t i = 0; i < ranks.size(); ++i) probe.load("m" + std::to_string(i), (tmp_ / ("m" + std::to_string(i))).string());
    size_t total = 0;
    for (const auto& st : probe.list()) total += st.bytes;
    o.pool_bytes = total * 3 / static_cast<size_t>(ranks.size());  // about three adapters
  }
  AdapterManager m(plugins(), *runner_, o);
  for (size_t i = 0; i < ranks.size(); ++i) m.load("m" + std::to_string(i), (tmp_ / ("m" + std::to_string(i))).string());
  const int64_t budget = m.stats().device_budget_pages;
  ASSERT_GT(budget, 0);
  std::mt19937 rng(11);
  int fragmented = 0, roomy = 0;
  for (int k = 0; k < 400; ++k) {
    const std::string n = "m" + std::to_string(rng() % ranks.size());
    const AdapterStatus before = *m.find(n);
    const AdapterPoolStats st = m.stats();
    serve(m, n);
    const AdapterPoolStats after = m.stats();
    ASSERT_EQ(tier(m, n), AdapterTier::device);
    ASSERT_LE(after.device_pages, budget) << "request " << k;
    ASSERT_LE(after.device_reserved_bytes, after.device_budget);
    ASSERT_EQ(after.over_budget, 0);
    ASSERT_NO_THROW(m.check_pool()) << "request " << k;
    // Enough free pages, yet something had to go: the runs did not fit.
    if (before.tier != AdapterTier::device && budget - st.device_pages >= before.pages) {
      ++roomy;
      if (after.evictions > st.evictions) ++fragmented;
    }
  }
  EXPECT_GT(m.stats().evictions, 100);
  std::cout << "[  POOL    ] " << budget << " pages; of " << roomy << " loads with enough free pages, "
            << fragmented << " evicted further for contiguous runs; " << m.stats().evictions
            << " evictions in all\n";
  for (size_t i = 0; i < ranks.size(); ++i) m.unload("m" + std::to_string(i));
  const AdapterPoolStats end = m.stats();
  EXPECT_EQ(end.device_pages, 0);
  EXPECT_EQ(end.device_bytes, 0u);
  EXPECT_EQ(end.resident, 0);
  EXPECT_EQ(end.largest_free_run * static_cast<int64_t>(end.page_bytes),
            static_cast<int64_t>(end.device_reserved_bytes) / end.device_chunks)
      << "one chunk, entirely free";
  m.check_pool();
}

// Free pages that hold no run: the pool holds four small adapters (two one-page
// segments each) and a large one needs a single run of four pages. Evicting the two
// least recently used small ones frees four pages in two holes of two; the manager
// evicts a third, whose pages join them, instead of failing or going over budget.
TEST_F(AdapterManagerPool, FragmentationIsResolvedByEvictingFurther) {
  // f32 on the CPU: a rank-r q_proj segment is r x (64 + 64) x 4 = 512 r bytes.
  for (int i = 0; i < 4; ++i) {
    std::map<std::string, LoraTensors> mods;
    for (const auto& [name, io] : llama_modules({}))
      if (name.ends_with("q_proj")) mods[name] = random_lora(1, io.first, io.second, 900 + static_cast<uint32_t>(i * 2 + mods.size()), false);
    write_peft(tmp_ / ("s" + std::to_string(i)), peft_config(1, 2, {"q_proj"}), mods);
  }
  {
    std::map<std::string, LoraTensors> mods;
    mods["model.layers.0.self_attn.q_proj"] = random_lora(4, 64, 64, 950, false);
    json c = peft_config(4, 8, {"q_proj"});
    c["layers_to_transform"] = {0};
    write_peft(tmp_ / "big", c, mods);
  }
  AdapterManagerOptions o;
  o.page_bytes = 512;
  o.pool_bytes = 8 * 512;
  AdapterManager m(plugins(), *runner_, o);
  for (int i = 0; i < 4; ++i) m.load("s" + std::to_string(i), (tmp_ / ("s" + std::to_string(i))).string());
  m.load("big", (tmp_ / "big").string());
  ASSERT_EQ(m.find("s0")->pages, 2);
  ASSERT_EQ(m.find("big")->pages, 4);
  for (const char* n : {"s0", "s1", "s2", "s3", "s1", "s3"}) serve(m, n);  // LRU: s0, s2, s1, s3
  EXPECT_EQ(m.stats().device_pages, 8);
  EXPECT_EQ(m.stats().evictions, 0);
  serve(m, "big");
  EXPECT_EQ(tier(m, "big"), AdapterTier::device);
  EXPECT_EQ(m.stats().evictions, 3) << "s0 and s2 free four pages in two holes: s1 must go too";
  for (const char* n : {"s0", "s1", "s2"}) EXPECT_EQ(tier(m, n), AdapterTier::host) << n;
  EXPECT_EQ(tier(m, "s3"), AdapterTier::device);
  EXPECT_EQ(m.stats().over_budget, 0);
  EXPECT_EQ(m.stats().device_pages, 6);
  EXPECT_EQ(m.stats().largest_free_run, 2);
  m.check_pool();
}

TEST_F(AdapterManagerPool, UsesPagesNotAnAllocationPerAdapter) {
  auto m = manager(3);
  for (int i = 0; i < 5; ++i) m->load("a" + std::to_string(i), path(i));
  for (int round = 0; round < 4; ++round)
    for (int i = 0; i < 5; ++i) serve(*m, "a" + std::to_string(i));
  const AdapterPoolStats st = m->stats();
  EXPECT_EQ(st.loads, 20);  // every request evicted and loaded one
  EXPECT_EQ(st.device_chunks, 1) << "one chunk reserved once, reused by every load";
  EXPECT_EQ(st.device_bytes, 3 * image_);
  EXPECT_EQ(st.device_bytes, static_cast<size_t>(st.device_pages) * st.page_bytes);
  EXPECT_LE(st.device_bytes, st.device_budget);
  EXPECT_EQ(m->find("a4")->pages * static_cast<int64_t>(st.page_bytes), static_cast<int64_t>(image_));
  m->check_pool();
}

// adapters.plugin names the format; anything but a loaded adapter plugin is refused
// with the adapter plugins there are.
TEST_F(AdapterManagerPool, ThePluginIsChosenByName) {
  auto message = [&](const std::string& plugin) -> std::string {
    AdapterManagerOptions o;
    o.plugin = plugin;
    try {
      AdapterManager m(plugins(), *runner_, o);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::not_found);
      return e.what();
    }
    return "";
  };
  const std::string other = message("sampling");
  EXPECT_NE(other.find("adapters.plugin: \"sampling\" is a decoding plugin, not an adapter plugin"),
            std::string::npos) << other;
  EXPECT_NE(other.find("(adapter plugins: lora)"), std::string::npos) << other;
  const std::string none = message("nope");
  EXPECT_NE(none.find("no adapter plugin named \"nope\" is loaded (adapter plugins: lora)"),
            std::string::npos) << none;
  EXPECT_EQ(message("lora"), "");
}

// ----------------------------------------------------------- the pool alone ---

TEST(AdapterPoolPages, PageSizeFollowsTheSmallestSegment) {
  EXPECT_EQ(choose_page_bytes(8 * (4096 + 1024) * 2), size_t{64} << 10);  // Llama-3-8B k_proj
  EXPECT_EQ(choose_page_bytes(8 * (1024 + 1024) * 2), size_t{32} << 10);  // Qwen3-0.6B k_proj
  EXPECT_EQ(choose_page_bytes(8 * (256 + 128) * 2), size_t{4} << 10);     // the demo model
  EXPECT_EQ(choose_page_bytes(1), size_t{4} << 10);
  EXPECT_EQ(choose_page_bytes(size_t{1} << 30), size_t{64} << 10);
  auto be = make_backend("cpu");
  EXPECT_THROW(AdapterPool(*be, {.budget_bytes = 1 << 20, .page_bytes = 3000}), Error);
}

TEST(AdapterPoolPages, GrowsInChunksUpToTheBudgetNeverBeyond) {
  auto be = make_backend("cpu");
  constexpr size_t kPage = 4096;
  AdapterPool pool(*be, {.budget_bytes = 10 * kPage + 100, .page_bytes = kPage, .chunk_bytes = 4 * kPage});
  EXPECT_EQ(pool.budget_pages(), 10);
  EXPECT_EQ(pool.usage().reserved_pages, 0);  // nothing before the first placement
  const std::vector<size_t> four = {kPage, 1, kPage + 1};
  EXPECT_EQ(pool.pages_for(four), 4);
  auto a = pool.allocate(four);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->pages, 4);
  EXPECT_EQ(pool.usage().reserved_pages, 4);
  auto b = pool.allocate(four);
  ASSERT_TRUE(b);
  EXPECT_EQ(pool.usage().reserved_pages, 8);
  EXPECT_EQ(pool.usage().chunks, 2);
  EXPECT_FALSE(pool.allocate(four));  // two pages of budget left
  EXPECT_EQ(pool.usage().used_pages, 8);
  EXPECT_EQ(pool.usage().reserved_pages, 8);
  auto c = pool.allocate(std::vector<size_t>{2 * kPage});  // the last chunk: what is left
  ASSERT_TRUE(c);
  EXPECT_EQ(pool.usage().reserved_pages, 10);
  EXPECT_FALSE(pool.allocate(std::vector<size_t>{1}));
  pool.check();
  for (auto* p : {&*a, &*b, &*c}) pool.release(*p);
  EXPECT_EQ(pool.usage().used_pages, 0);
  EXPECT_EQ(pool.usage().reserved_pages, 10);  // chunks stay for the next adapters
  pool.check();
  // A run must be contiguous: twelve free pages in three chunks hold no run of five.
  EXPECT_FALSE(pool.allocate(std::vector<size_t>{5 * kPage}));
  EXPECT_TRUE(pool.allocate(std::vector<size_t>{4 * kPage}));
}

TEST(AdapterPoolPages, OverBudgetGetsAChunkOfItsOwnReturnedWhenReleased) {
  auto be = make_backend("cpu");
  constexpr size_t kPage = 1024;
  AdapterPool pool(*be, {.budget_bytes = 4 * kPage, .page_bytes = kPage, .chunk_bytes = 64 * kPage});
  auto a = pool.allocate(std::vector<size_t>{4 * kPage});
  ASSERT_TRUE(a);
  EXPECT_EQ(pool.usage().reserved_pages, 4);  // a chunk never exceeds the budget
  EXPECT_FALSE(pool.allocate(std::vector<size_t>{1}));
  AdapterPlacement over = pool.allocate_over_budget(std::vector<size_t>{kPage, 2 * kPage});
  EXPECT_TRUE(over.over_budget);
  EXPECT_EQ(over.pages, 3);
  EXPECT_EQ(pool.usage().used_pages, 7);
  EXPECT_EQ(pool.usage().over_budget_pages, 3);
  EXPECT_NE(pool.address(over.runs[0], true), pool.address(over.runs[1], true));
  pool.check();
  pool.release(over);
  EXPECT_TRUE(over.runs.empty());
  EXPECT_EQ(pool.usage().reserved_pages, 4);
  EXPECT_EQ(pool.usage().over_budget_pages, 0);
  EXPECT_EQ(pool.usage().chunks, 1);
  pool.release(*a);
  EXPECT_EQ(pool.usage().used_pages, 0);
  pool.check();
}

// Placements come and go at random; each segment's bytes are written through the
// backend and read back at the end: no two runs share a byte.
TEST(AdapterPoolPages, EverySegmentKeepsItsBytes) {
  auto be = make_backend("cpu");
  constexpr size_t kPage = 256;
  AdapterPool pool(*be, {.budget_bytes = 96 * kPage, .page_bytes = kPage, .chunk_bytes = 32 * kPage});
  std::mt19937 rng(3);
  struct Live {
    AdapterPlacement p;
    std::vector<std::vector<uint8_t>> bytes;
  };
  std::vector<Live> live;
  int refused = 0;
  for (int step = 0; step < 300; ++step) {
    if (!live.empty() && (rng() % 3 == 0)) {
      const size_t k = rng() % live.size();
      pool.release(live[k].p);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    std::vector<size_t> seg(1 + rng() % 5);
    for (auto& b : seg) b = 1 + rng() % (6 * kPage);
    auto p = pool.allocate(seg);
    if (!p) {
      ++refused;
      continue;
    }
    Live l{std::move(*p), {}};
    for (size_t i = 0; i < seg.size(); ++i) {
      ASSERT_EQ(l.p.runs[i].pages, pool.pages_for(seg[i]));
      std::vector<uint8_t> v(seg[i]);
      for (auto& x : v) x = static_cast<uint8_t>(rng());
      be->upload(pool.address(l.p.runs[i], false), v.data(), v.size());
      l.bytes.push_back(std::move(v));
    }
    live.push_back(std::move(l));
    ASSERT_LE(pool.usage().reserved_pages, pool.budget_pages());
  }
  EXPECT_GT(refused, 0);
  pool.check();
  for (const Live& l : live)
    for (size_t i = 0; i < l.bytes.size(); ++i) {
      std::vector<uint8_t> back(l.bytes[i].size());
      be->download(back.data(), pool.address(l.p.runs[i], false), back.size());
      ASSERT_EQ(back, l.bytes[i]);
    }
  for (Live& l : live) pool.release(l.p);
  EXPECT_EQ(pool.usage().used_pages, 0);
  pool.check();
}

}  // namespace
}  // namespace banyan::core
