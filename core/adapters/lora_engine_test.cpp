// Adapters through the engine, against peft: every adapter of every fixture family
// (tests/fixtures/models/<family>/golden_adapters.json, made by tools/make_fixtures.py
// with PeftModel on the saved adapter) served together in one run, mixed with base
// requests; each request's greedy tokens must equal peft's and its top logprobs
// match. Then a storm: 200 registered adapters, a device pool for 16, random mixed
// traffic while adapters are unloaded and loaded again: no failed or wrong request,
// and every byte back once all are unloaded. Families whose model plugin is out of
// tree (gpt2: examples/gpt2) run when BANYAN_TEST_PLUGIN_PATH names its build.
#include "core/adapters/adapter_manager.h"
#include "core/adapters/test_adapters.h"

#include "core/common/logging.h"
#include "core/engine/engine_impl.h"
#include "core/engine/output_collector.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace banyan::core {
namespace {

using nlohmann::json;
using test::TempDir;

constexpr double kLogprobTolerance = 1e-3;

fs::path fixtures() { return fs::path(BANYAN_SOURCE_DIR) / "tests" / "fixtures" / "models"; }

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

Config engine_config(const fs::path& model, const std::vector<std::string>& extra = {}) {
  set_log_level("warn");
  Config c;
  std::vector<ConfigIssue> issues;
  c.set_from_text("model.path", {model.string()}, "test", issues);
  c.set_from_text("model.skip_tokenizer_init", {"true"}, "test", issues);
  c.set_from_text("device", {"cpu"}, "test", issues);
  c.set_from_text("adapters.enabled", {"true"}, "test", issues);
  // Out-of-tree model plugins (e.g. examples/gpt2, built against the installed SDK).
  if (const char* extra_plugins = std::getenv("BANYAN_TEST_PLUGIN_PATH"))
    c.set_from_text("plugins.search_paths", {extra_plugins}, "BANYAN_TEST_PLUGIN_PATH", issues);
  for (size_t i = 0; i + 1 < extra.size(); i += 2) c.set_from_text(extra[i], {extra[i + 1]}, "test", issues);
  EXPECT_TRUE(issues.empty()) << issues.front().str();
  return c;
}

// Collects the results of many concurrent requests.
class Results {
 public:
  RequestSink sink(size_t i) {
    {
      std::lock_guard lk(mu_);
      if (results_.size() <= i) results_.resize(i + 1);
    }
    return [this, i](RequestOutput&& m) {
      std::lock_guard lk(mu_);
      const bool fin = m.finished;
      results_[i].add(std::move(m));
      if (fin) {
        ++done_;
        cv_.notify_all();
      }
    };
  }
  void wait(size_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return done_ >= n; });
  }
  RequestResult get(size_t i) {
    std::lock_guard lk(mu_);
    return results_[i];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestResult> results_;
  size_t done_ = 0;
};

GenerationRequest greedy_request(const std::string& id, const json& c, const std::string& adapter) {
  GenerationRequest r;
  r.request_id = id;
  r.prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
  r.params.temperature = 0.0;
  r.params.max_tokens = static_cast<int>(c["greedy_ids"].size());
  r.params.ignore_eos = true;
  r.params.logprobs = 5;
  r.adapter = adapter;
  return r;
}

// Tokens equal peft's; while they agree, every golden (id, logprob) is close.
void expect_matches(const RequestResult& r, const json& c, const std::string& what) {
  ASSERT_FALSE(r.error) << what << ": " << *r.error;
  ASSERT_EQ(r.outputs.size(), 1u) << what;
  const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(r.outputs[0].token_ids, want) << what;
  const auto& lps = r.outputs[0].logprobs;
  ASSERT_EQ(lps.size(), want.size()) << what << ": logprobs were asked for every token";
  for (size_t s = 0; s < want.size(); ++s) {
    if (r.outputs[0].token_ids[s] != want[s]) break;
    int compared = 0;
    for (const auto& pair : c["top_logprobs"][s]) {
      const int32_t id = pair[0];
      for (const auto& t : lps[s].top) {
        if (t.id != id) continue;
        EXPECT_NEAR(t.logprob, pair[1].get<double>(), kLogprobTolerance) << what << ", step " << s;
        ++compared;
      }
    }
    EXPECT_GE(compared, 4) << what << ", step " << s << ": top-5 sets differ";
  }
}

std::vector<std::string> adapter_families() {
  std::vector<std::string> out;
  if (!fs::is_directory(fixtures())) return out;
  for (const auto& e : fs::directory_iterator(fixtures()))
    if (fs::exists(e.path() / "golden_adapters.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Null (with a message) when no model plugin of this build serves the family.
std::unique_ptr<Engine> open_engine(const fs::path& model, std::string* skipped,
                                    const std::vector<std::string>& extra = {}) {
  try {
    return Engine::create(engine_config(model, extra));
  } catch (const Error& e) {
    if (e.code() != Code::unsupported && e.code() != Code::not_found) throw;
    *skipped = e.what();
    return nullptr;
  }
}

// Serves every case of every adapter of `fam`, and the base model's own cases, in
// one run and checks them against peft. Returns the requests checked (0: skipped).
size_t serve_family(const std::string& fam, const std::vector<std::string>& extra, std::string* skipped,
                    EngineStats* stats) {
  const json g = read_json(fixtures() / fam / "golden_adapters.json");
  const json& adapters = g.contains("adapters") ? g["adapters"] : g;
  auto engine = open_engine(fixtures() / fam, skipped, extra);
  if (!engine) return 0;  // e.g. gpt2, whose model plugin lives out of tree
  for (const auto& [name, a] : adapters.items())
    engine->load_adapter(name, (fixtures() / fam / "adapters" / name).string());
  struct Want {
    json c;
    std::string what;
  };
  std::vector<Want> wants;
  Results results;
  auto submit = [&](const json& c, const std::string& adapter, const std::string& what) {
    const size_t i = wants.size();
    wants.push_back({c, what + " case " + std::to_string(i)});
    engine->submit(greedy_request("r" + std::to_string(i), c, adapter), results.sink(i));
  };
  // Interleaved: case k of every adapter, then case k of the base model, k = 0, 1, ...
  const json base = fs::exists(fixtures() / fam / "golden.json")
                        ? read_json(fixtures() / fam / "golden.json")["cases"]
                        : json::array();
  for (size_t k = 0;; ++k) {
    bool any = false;
    for (const auto& [name, a] : adapters.items())
      if (k < a["cases"].size()) submit(a["cases"][k], name, fam + "/" + name), any = true;
    if (k < base.size()) submit(base[k], "", fam + "/base"), any = true;
    if (!any) break;
  }
  results.wait(wants.size());
  for (size_t i = 0; i < wants.size(); ++i) expect_matches(results.get(i), wants[i].c, wants[i].what);
  for (const auto& info : engine->adapters()) {  // per-adapter counters
    EXPECT_EQ(info.requests, static_cast<int64_t>(adapters[info.name]["cases"].size())) << info.name;
    EXPECT_GT(info.tokens, info.requests * 16) << info.name;
    EXPECT_TRUE(info.resident) << info.name;
  }
  std::cout << "[   PEFT   ] " << fam << ": " << adapters.size() << " adapters and the base model, "
            << wants.size() << " requests in one run\n";
  *stats = engine->stats();
  return wants.size();
}

TEST(LoraEngine, EveryAdapterMatchesPeftAllMixedInOneRun) {
  size_t checked = 0;
  std::string skips;
  for (const auto& fam : adapter_families()) {
    std::string why;
    EngineStats st;
    checked += serve_family(fam, {}, &why, &st);
    if (!why.empty()) skips += fam + " (" + why + "); ";
  }
  if (!skips.empty()) std::cout << "[  SKIPPED ] families without a model plugin: " << skips << "\n";
  if (!checked) GTEST_SKIP() << "no adapter goldens generated yet (tools/make_fixtures.py)";
}

// The same under chunked prefill (a 40-token budget) and preemption (a KV cache of
// 32 blocks of 4 tokens): a preempted request keeps its adapter and recomputes.
TEST(LoraEngine, PeftParityUnderChunkedPrefillAndPreemption) {
  if (!fs::exists(fixtures() / "llama" / "golden_adapters.json")) GTEST_SKIP() << "no llama fixture";
  std::string why;
  EngineStats st;
  ASSERT_GT(serve_family("llama",
                         {"engine.max_num_batched_tokens", "40", "engine.max_num_seqs", "16",
                          "engine.block_size", "4", "engine.cpu_kv_cache_bytes", "128KiB"},
                         &why, &st),
            0u) << why;
  EXPECT_GT(st.preemptions, 0) << "the KV cache was meant to force preemption";
}

TEST(LoraEngine, UnknownAdaptersAndDisabledAdaptersAreRefused) {
  if (!fs::exists(fixtures() / "llama" / "golden_adapters.json")) GTEST_SKIP() << "no llama fixture";
  auto engine = Engine::create(engine_config(fixtures() / "llama"));
  GenerationRequest r;
  r.request_id = "x";
  r.prompt_ids = {1, 2, 3};
  r.adapter = "nope";
  try {
    engine->submit(r, [](RequestOutput&&) {});
    ADD_FAILURE() << "an unknown adapter was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::not_found);
    EXPECT_NE(std::string(e.what()).find("The model `nope` does not exist"), std::string::npos);
  }
  EXPECT_THROW(engine->unload_adapter("nope"), Error);
  auto plain = Engine::create(engine_config(fixtures() / "llama", {"adapters.enabled", "false"}));
  try {
    plain->load_adapter("a", (fixtures() / "llama" / "adapters" / "qv_r8").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--enable-lora"), std::string::npos);
  }
}

TEST(LoraEngine, StormOf200AdaptersThroughAPoolFor16) {
  const fs::path fam = fixtures() / "llama";
  if (!fs::exists(fam / "golden_adapters.json")) GTEST_SKIP() << "no llama adapter goldens";
  const json g = read_json(fam / "golden_adapters.json");
  const json& sources = g.contains("adapters") ? g["adapters"] : g;
  const json base_cases = read_json(fam / "golden.json")["cases"];
  std::vector<std::string> source_names;
  for (const auto& [name, a] : sources.items()) source_names.push_back(name);

  // 200 adapters: symlinks to the fixture adapters under a temp dir.
  TempDir tmp;
  const int kAdapters = 200;
  std::vector<std::string> source_of(kAdapters), paths(kAdapters);
  for (int i = 0; i < kAdapters; ++i) {
    source_of[i] = source_names[static_cast<size_t>(i) % source_names.size()];
    paths[i] = (tmp / ("s" + std::to_string(i))).string();
    fs::create_directory_symlink(fam / "adapters" / source_of[i], paths[i]);
  }
  // The pool holds 16 of the largest footprint (its pages).
  size_t largest = 0;
  {
    auto probe = Engine::create(engine_config(fam));
    auto* impl = dynamic_cast<EngineImpl*>(probe.get());
    ASSERT_TRUE(impl);
    const size_t page = impl->adapter_manager()->stats().page_bytes;
    for (const auto& n : source_names) {
      probe->load_adapter(n, (fam / "adapters" / n).string());
      largest = std::max(largest, static_cast<size_t>(impl->adapter_manager()->find(n)->pages) * page);
    }
  }
  auto engine = Engine::create(engine_config(
      fam, {"adapters.pool_bytes", std::to_string(16 * largest), "adapters.host_pool_bytes",
            std::to_string(40 * largest), "adapters.max_loras", "8", "engine.max_num_seqs", "24"}));
  const AdapterManager& mgr = *dynamic_cast<EngineImpl&>(*engine).adapter_manager();
  for (int i = 0; i < kAdapters; ++i) engine->load_adapter("s" + std::to_string(i), paths[i]);
  EXPECT_EQ(mgr.stats().registered, kAdapters);

  // Traffic: three clients submit random requests (one in eight for the base model);
  // one thread unloads random adapters and loads them back under the same name.
  struct Sent {
    json c;
    std::string what;
  };
  std::mutex sent_mu;
  std::vector<Sent> sent;
  Results results;
  std::atomic<int> refused_unloaded{0}, other_refusals{0};
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};  // unload + load cycles done
  const int kPerClient = 120;
  auto client = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    for (int k = 0; k < kPerClient; ++k) {
      const bool base = rng() % 8 == 0;
      const int a = static_cast<int>(rng() % kAdapters);
      const json& cases = base ? base_cases : sources[source_of[a]]["cases"];
      const json& c = cases[rng() % cases.size()];
      const std::string name = base ? "" : "s" + std::to_string(a);
      size_t i;
      {
        std::lock_guard lk(sent_mu);
        i = sent.size();
        sent.push_back({c, (base ? std::string("base") : name + " (" + source_of[a] + ")")});
      }
      try {
        engine->submit(greedy_request("q" + std::to_string(i), c, name), results.sink(i));
      } catch (const Error& e) {
        // Only a name that is unloaded at this moment may be refused.
        (e.code() == Code::not_found ? refused_unloaded : other_refusals)++;
        std::lock_guard lk(sent_mu);
        sent[i].what.clear();  // not submitted
        results.sink(i)(RequestOutput{.request_id = "", .outputs = {}, .finished = true});
      }
      if (k % 16 == 0) {
        // Keep the churn interleaved with the traffic however fast this machine is:
        // every 16 requests a client lets the churner complete another cycle.
        const int want = k / 16;
        for (int spin = 0; spin < 2000 && churned.load() < want; ++spin)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  };
  auto churn = [&] {
    std::mt19937 rng(99);
    while (!stop.load()) {
      const int a = static_cast<int>(rng() % kAdapters);
      const std::string name = "s" + std::to_string(a);
      engine->unload_adapter(name);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      engine->load_adapter(name, paths[a]);
      ++churned;
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  };
  std::thread churner(churn);
  std::vector<std::thread> clients;
  for (uint32_t s = 1; s <= 3; ++s) clients.emplace_back(client, s);
  for (auto& t : clients) t.join();
  results.wait(sent.size());
  stop = true;
  churner.join();
  // Each client waited for the churner before every 16th request.
  EXPECT_GE(churned.load(), (kPerClient - 1) / 16);

  int served = 0;
  for (size_t i = 0; i < sent.size(); ++i) {
    if (sent[i].what.empty()) continue;
    expect_matches(results.get(i), sent[i].c, sent[i].what + ", request " + std::to_string(i));
    ++served;
  }
  EXPECT_EQ(other_refusals.load(), 0);
  EXPECT_GT(served, 3 * kPerClient * 9 / 10);
  const AdapterPoolStats st = mgr.stats();
  EXPECT_GT(st.evictions, 0) << "a pool for 16 of 200 adapters must evict";
  EXPECT_GT(st.loads, 16);
  EXPECT_LE(st.device_bytes, 16 * largest);
  EXPECT_EQ(st.device_budget, 16 * largest);
  mgr.check_pool();
  std::cout << "[   STORM  ] " << served << " requests served, " << refused_unloaded.load()
            << " refused while their adapter was unloaded; " << st.loads << " loads, "
            << st.evictions << " evictions, " << st.disk_reads << " disk reads, " << st.over_budget
            << " loads over budget; pool " << st.device_pages << "/" << st.device_budget_pages
            << " pages of " << st.page_bytes << " B in use\n";
  // No leak: unloading everything returns every byte.
  for (const auto& a : engine->adapters()) engine->unload_adapter(a.name);
  const AdapterPoolStats end = mgr.stats();
  EXPECT_EQ(end.device_bytes, 0u);
  EXPECT_EQ(end.device_pages, 0);
  EXPECT_EQ(end.resident, 0);
  EXPECT_LE(end.device_reserved_bytes, end.device_budget);  // chunks beyond the budget went back
  mgr.check_pool();
  EXPECT_EQ(end.host_bytes, 0u);
  EXPECT_EQ(end.registered, 0);
  EXPECT_EQ(engine->stats().kv_usage, 0.0);
}

}  // namespace
}  // namespace banyan::core
