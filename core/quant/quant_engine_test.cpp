// Quantization through the engine (quantization.method as the YAML or --quantization
// sets it): QLoRA, the peft adapter qv_r8 over the nf4 llama base, matches peft over
// the nf4-dequantized base (tests/fixtures/quant/qlora/golden.json) while plain nf4
// requests in the same run match transformers on the dequantized base; the adapter
// hook runs after the quantized provider. Also the refusals: a group size that does
// not divide a layer, a pre-quantized checkpoint of an unread kind, re-quantizing a
// pre-quantized checkpoint.
#include "core/quant/quant_test_util.h"

#include "core/common/logging.h"
#include "core/engine/engine_impl.h"
#include "core/engine/output_collector.h"

#include <banyan/error.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <optional>
#include <mutex>

namespace banyan::core {
namespace {

using nlohmann::json;

constexpr double kLogprobTolerance = 1e-3;

Config engine_config(const fs::path& model, const std::vector<std::string>& extra) {
  set_log_level("warn");
  Config c;
  std::vector<ConfigIssue> issues;
  c.set_from_text("model.path", {model.string()}, "test", issues);
  c.set_from_text("model.skip_tokenizer_init", {"true"}, "test", issues);
  c.set_from_text("device", {"cpu"}, "test", issues);
  for (size_t i = 0; i + 1 < extra.size(); i += 2) c.set_from_text(extra[i], {extra[i + 1]}, "test", issues);
  EXPECT_TRUE(issues.empty()) << issues.front().str();
  return c;
}

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

void expect_matches(const RequestResult& r, const json& c, const std::string& what) {
  ASSERT_FALSE(r.error) << what << ": " << *r.error;
  ASSERT_EQ(r.outputs.size(), 1u) << what;
  const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(r.outputs[0].token_ids, want) << what;
  const auto& lps = r.outputs[0].logprobs;
  ASSERT_EQ(lps.size(), want.size()) << what;
  for (size_t s = 0; s < want.size(); ++s) {
    if (r.outputs[0].token_ids[s] != want[s]) break;
    int compared = 0;
    for (const auto& pair : c["top_logprobs"][s])
      for (const auto& t : lps[s].top)
        if (t.id == pair[0].get<int32_t>()) {
          EXPECT_NEAR(t.logprob, pair[1].get<double>(), kLogprobTolerance) << what << ", step " << s;
          ++compared;
        }
    EXPECT_GE(compared, 4) << what << ", step " << s << ": top-5 sets differ";
  }
}

// BANYAN_FUSE_LINEARS for the engines made in one scope (the registry reads it).
class FuseLinearsEnv {
 public:
  explicit FuseLinearsEnv(const char* value) {
    if (const char* e = std::getenv("BANYAN_FUSE_LINEARS")) old_ = e;
    if (value) setenv("BANYAN_FUSE_LINEARS", value, 1);
    else unsetenv("BANYAN_FUSE_LINEARS");
  }
  ~FuseLinearsEnv() {
    if (old_) setenv("BANYAN_FUSE_LINEARS", old_->c_str(), 1);
    else unsetenv("BANYAN_FUSE_LINEARS");
  }

 private:
  std::optional<std::string> old_;
};

// With fusion (BANYAN_FUSE_LINEARS=1; the CPU default is off) q/k/v and gate/up of
// the nf4 base are one QuantizedLinear each, and the LoRA hook runs on each module's
// part of the fused output (quant_fusion_test.cpp checks that these groups fuse).
class QloraFusion : public ::testing::TestWithParam<const char*> {};

TEST_P(QloraFusion, QloraMatchesPeftOverTheDequantizedBase) {
  FuseLinearsEnv env(GetParam());
  const json qlora = test::read_json(test::quant_fixtures() / "qlora" / "golden.json");
  const json nf4 = test::read_json(test::quant_fixtures() / "nf4" / "golden.json");
  const fs::path model = test::model_fixture("llama");
  auto engine = Engine::create(engine_config(model, {"quantization.method", "nf4", "adapters.enabled", "true"}));
  engine->load_adapter("qv_r8", (model / "adapters" / "qv_r8").string());
  std::vector<std::pair<json, std::string>> wants;
  Results results;
  const json& base = nf4["models"]["llama"]["cases"];
  for (size_t k = 0; k < std::max(base.size(), qlora["cases"].size()); ++k) {
    if (k < qlora["cases"].size()) {
      wants.emplace_back(qlora["cases"][k], "qlora case " + std::to_string(k));
      engine->submit(greedy_request("a" + std::to_string(k), qlora["cases"][k], "qv_r8"),
                     results.sink(wants.size() - 1));
    }
    if (k < base.size()) {
      wants.emplace_back(base[k], "nf4 base case " + std::to_string(k));
      engine->submit(greedy_request("b" + std::to_string(k), base[k], ""), results.sink(wants.size() - 1));
    }
  }
  results.wait(wants.size());
  for (size_t i = 0; i < wants.size(); ++i) expect_matches(results.get(i), wants[i].first, wants[i].second);
}

INSTANTIATE_TEST_SUITE_P(QuantEngine, QloraFusion, ::testing::Values("0", "1"),
                         [](const auto& info) { return std::string(info.param) == "1" ? "Fused" : "Unfused"; });

TEST(QuantEngine, AGroupSizeThatDoesNotDivideALayerIsRefusedNamingIt) {
  // llama's down_proj has 352 inputs: 128 (the default) does not divide it.
  try {
    Engine::create(engine_config(test::model_fixture("llama"), {"quantization.method", "int4"}));
    FAIL() << "int4 with group size 128 was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mlp.down_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("group_size 128 does not divide"), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(Engine::create(engine_config(test::model_fixture("llama"),
                                               {"quantization.method", "int4", "quantization.group_size", "32"})));
}

/// A copy of the llama fixture whose config.json says it is pre-quantized.
fs::path prequantized_copy(const std::string& tag, const json& qc) {
  const fs::path dir = fs::temp_directory_path() / ("banyan_quant_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "generation_config.json"})
    fs::copy_file(test::model_fixture("llama") / f, dir / f, fs::copy_options::overwrite_existing);
  json cfg = test::read_json(test::model_fixture("llama") / "config.json");
  cfg["quantization_config"] = qc;
  std::ofstream(dir / "config.json") << cfg.dump(2);
  return dir;
}

TEST(QuantEngine, PrequantizedCheckpointsOfAnUnreadKindAreRefusedByName) {
  for (const char* method : {"hqq", "compressed-tensors", "eetq"}) {
    const fs::path dir = prequantized_copy(method, {{"quant_method", method}});
    try {
      Engine::create(engine_config(dir, {}));
      ADD_FAILURE() << method << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("\"") + method + "\""), std::string::npos) << msg;
      EXPECT_NE(msg.find("gptq (int4)"), std::string::npos) << msg << ": the message lists what is read";
    }
    fs::remove_all(dir);
  }
  const fs::path dir = prequantized_copy("bnb8", {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}});
  try {
    Engine::create(engine_config(dir, {}));
    ADD_FAILURE() << "bitsandbytes 8-bit was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8-bit"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(QuantEngine, AnUnknownMethodNamesTheLoadedQuantizers) {
  // quantization.method takes any quantizer plugin's name, so a wrong one is refused at
  // load, naming what is loaded.
  try {
    Engine::create(engine_config(test::model_fixture("llama"), {"quantization.method", "int3"}));
    ADD_FAILURE() << "quantization.method int3 was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no quantizer plugin named \"int3\""), std::string::npos) << msg;
    for (const char* name : {"int8", "int4", "nf4", "fp8"})
      EXPECT_NE(msg.find(name), std::string::npos) << msg << ": lists " << name;
  }
}

TEST(QuantEngine, APrequantizedCheckpointIsNotQuantizedAgain) {
  const fs::path dir = prequantized_copy("gptq", {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}});
  try {
    Engine::create(engine_config(dir, {"quantization.method", "int8"}));
    ADD_FAILURE() << "int8 over a GPTQ checkpoint was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("already quantized"), std::string::npos) << msg;
    EXPECT_NE(msg.find("int4"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace banyan::core
