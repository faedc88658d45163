// Pre-quantized checkpoints, written here in each tool's own packing from the bf16
// llama fixture, and served through the engine: GPTQ (v2 zeros, trivial g_idx) and
// AWQ GEMM hold the int4 g32 weights, bitsandbytes 4-bit (plain and nested absmax)
// the nf4 ones, FP8 (weight + weight_scale per tensor or per channel) the fp8 ones,
// so each must match the transformers golden of that variant
// (tests/fixtures/quant/<variant>/golden.json). The packings below follow the
// formats' definitions and share no code with the readers. Also: GPTQ v1 zeros
// (stored minus one), act-order refused, AWQ GEMV refused, block-wise FP8 refused.
#include "core/quant/quant_test_util.h"
#include "core/quant/quantizer.h"
#include "core/runtime/checkpoint.h"
#include "core/runtime/safetensors_writer.h"

#include "core/common/logging.h"
#include "core/engine/engine_impl.h"
#include "core/engine/output_collector.h"

#include <banyan/error.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace banyan::core {
namespace {

using nlohmann::json;

/// Bytes of a vector, kept alive with the checkpoint being written.
struct Blob {
  std::vector<std::byte> bytes;
  template <class T> static Blob of(const std::vector<T>& v) {
    Blob b;
    b.bytes.resize(v.size() * sizeof(T));
    std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
    return b;
  }
};

class CheckpointWriter {
 public:
  template <class T>
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
    blobs_.push_back(std::make_unique<Blob>(Blob::of(v)));
    tensors_.push_back({name, dtype, std::move(shape), blobs_.back()->bytes});
  }
  void copy(const SafetensorsTensor& t) {
    tensors_.push_back({t.name, *t.dtype, t.shape, std::span<const std::byte>(t.data, t.nbytes())});
  }
  void write(const fs::path& file) { write_safetensors(file, tensors_, {{"format", "pt"}}); }

 private:
  std::vector<std::unique_ptr<Blob>> blobs_;
  std::vector<TensorToWrite> tensors_;
};

/// The unpacked values of one weight, from the int4 plugin at load: q [N][K], z and s [N][K/g].
struct Int4 {
  int64_t N, K, G;
  std::vector<uint32_t> q, z;
  std::vector<float> s;
};

Int4 int4_values(Quantizer& quantizer, const std::string& module, const Tensor& w) {
  QuantizedMatrix m = quantizer.quantize(module, w);
  const BanyanQuantizedWeight& p = m.get();
  Int4 v{p.rows, p.cols, p.group_size, {}, {}, {}};
  const auto* qb = static_cast<const uint8_t*>(p.qweight.data);
  for (int64_t i = 0; i < v.N * v.K; ++i) v.q.push_back(i % 2 ? qb[i / 2] >> 4 : qb[i / 2] & 0xf);
  const int64_t ng = v.K / v.G;
  for (int64_t i = 0; i < v.N * ng; ++i) {
    v.z.push_back(static_cast<const uint8_t*>(p.zeros.data)[i]);
    v.s.push_back(static_cast<const float*>(p.scales.data)[i]);
  }
  return v;
}

void add_gptq(CheckpointWriter& out, const std::string& m, const Int4& v, int zero_offset, bool act_order) {
  const int64_t N = v.N, K = v.K, ng = K / v.G;
  std::vector<int32_t> qweight(static_cast<size_t>(K / 8 * N)), qzeros(static_cast<size_t>(ng * N / 8)), g_idx(K);
  std::vector<float> scales(static_cast<size_t>(ng * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      qweight[(k / 8) * N + n] = static_cast<int32_t>(static_cast<uint32_t>(qweight[(k / 8) * N + n]) |
                                                      (v.q[n * K + k] << (4 * (k % 8))));
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t z = (v.z[n * ng + g] - zero_offset) & 0xfu;
      qzeros[g * (N / 8) + n / 8] = static_cast<int32_t>(static_cast<uint32_t>(qzeros[g * (N / 8) + n / 8]) |
                                                         (z << (4 * (n % 8))));
      scales[g * N + n] = v.s[n * ng + g];
    }
  for (int64_t k = 0; k < K; ++k) g_idx[k] = static_cast<int32_t>(act_order ? (K - 1 - k) / v.G : k / v.G);
  out.add(m + ".qweight", DType::i32, {K / 8, N}, qweight);
  out.add(m + ".qzeros", DType::i32, {ng, N / 8}, qzeros);
  out.add(m + ".scales", DType::f32, {ng, N}, scales);
  out.add(m + ".g_idx", DType::i32, {K}, g_idx);
}

void add_awq(CheckpointWriter& out, const std::string& m, const Int4& v) {
  static const int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // AutoAWQ's pack order
  const int64_t N = v.N, K = v.K, ng = K / v.G;
  std::vector<int32_t> qweight(static_cast<size_t>(K * N / 8)), qzeros(static_cast<size_t>(ng * N / 8));
  std::vector<float> scales(static_cast<size_t>(ng * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N / 8; ++j) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) w |= v.q[(8 * j + kOrder[i]) * K + k] << (4 * i);
      qweight[k * (N / 8) + j] = static_cast<int32_t>(w);
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t j = 0; j < N / 8; ++j) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) w |= v.z[(8 * j + kOrder[i]) * ng + g] << (4 * i);
      qzeros[g * (N / 8) + j] = static_cast<int32_t>(w);
      for (int i = 0; i < 8; ++i) scales[g * N + 8 * j + i] = v.s[(8 * j + i) * ng + g];
    }
  out.add(m + ".qweight", DType::i32, {K, N / 8}, qweight);
  out.add(m + ".qzeros", DType::i32, {ng, N / 8}, qzeros);
  out.add(m + ".scales", DType::f32, {ng, N}, scales);
}

void add_bnb(CheckpointWriter& out, const std::string& m, Quantizer& nf4, const Tensor& w, bool nested) {
  QuantizedMatrix q = nf4.quantize(m, w);
  const BanyanQuantizedWeight& p = q.get();
  auto vec = [](const BanyanTensor& t, auto tag) {
    using T = decltype(tag);
    const T* d = static_cast<const T*>(t.data);
    return std::vector<T>(d, d + Tensor(t).numel());
  };
  const int64_t packed = Tensor(p.qweight).numel();
  out.add(m + ".weight", DType::u8, {packed, 1}, vec(p.qweight, uint8_t{}));
  out.add(m + ".weight.quant_map", DType::f32, {16}, vec(p.code, float{}));
  json state = {{"quant_type", "nf4"}, {"blocksize", p.group_size}, {"dtype", "bfloat16"},
                {"shape", {p.rows, p.cols}}};
  if (nested) {
    out.add(m + ".weight.absmax", DType::u8, {Tensor(p.scales).numel()}, vec(p.scales, uint8_t{}));
    out.add(m + ".weight.nested_absmax", DType::f32, {Tensor(p.scales2).numel()}, vec(p.scales2, float{}));
    out.add(m + ".weight.nested_quant_map", DType::f32, {256}, vec(p.code2, float{}));
    state["nested_blocksize"] = p.group_size2;
    state["nested_offset"] = p.offset;
    state["nested_dtype"] = "float32";
  } else {
    out.add(m + ".weight.absmax", DType::f32, {Tensor(p.scales).numel()}, vec(p.scales, float{}));
  }
  const std::string text = state.dump();
  out.add(m + ".weight.quant_state.bitsandbytes__nf4", DType::u8, {static_cast<int64_t>(text.size())},
          std::vector<uint8_t>(text.begin(), text.end()));
}

void add_fp8(CheckpointWriter& out, const std::string& m, Quantizer& fp8, const Tensor& w, bool per_channel) {
  QuantizedMatrix q = fp8.quantize(m, w);
  const BanyanQuantizedWeight& p = q.get();
  const auto* qb = static_cast<const uint8_t*>(p.qweight.data);
  out.add(m + ".weight", DType::fp8_e4m3, {p.rows, p.cols}, std::vector<uint8_t>(qb, qb + p.rows * p.cols));
  const auto* s = static_cast<const float*>(p.scales.data);
  if (per_channel)
    out.add(m + ".weight_scale", DType::f32, {p.rows, 1}, std::vector<float>(s, s + p.rows));
  else
    out.add(m + ".weight_scale", DType::f32, {}, std::vector<float>{s[0]});
}

enum class Format { gptq, gptq_act_order, awq, bnb, bnb_nested, fp8, fp8_channel };

/// The llama fixture re-saved pre-quantized in `format`; returns its directory.
fs::path write_checkpoint(Format f, const std::string& tag, json qc) {
  const fs::path src = test::model_fixture("llama");
  const fs::path dir = fs::temp_directory_path() / ("banyan_prequant_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Checkpoint ckpt(src);
  Quantizer int4(test::plugins(), "int4", "{\"group_size\": 32}");
  Quantizer nf4(test::plugins(), "nf4", f == Format::bnb_nested ? "{\"double_quant\": true}" : "{}");
  Quantizer fp8(test::plugins(), "fp8", f == Format::fp8_channel ? "{\"per_channel\": true}" : "{}");
  CheckpointWriter out;
  auto names = ckpt.names();
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const SafetensorsTensor& t = ckpt.get(name);
    const std::string m = name.size() > 7 ? name.substr(0, name.size() - 7) : "";
    if (!(in_decoder_block(name) && name.ends_with("_proj.weight"))) {
      out.copy(t);
      continue;
    }
    Tensor w(const_cast<std::byte*>(t.data), *t.dtype, {t.shape[0], t.shape[1]});
    switch (f) {
      case Format::gptq: add_gptq(out, m, int4_values(int4, m, w), 0, false); break;
      case Format::gptq_act_order: add_gptq(out, m, int4_values(int4, m, w), 0, true); break;
      case Format::awq: add_awq(out, m, int4_values(int4, m, w)); break;
      case Format::bnb: add_bnb(out, m, nf4, w, false); break;
      case Format::bnb_nested: add_bnb(out, m, nf4, w, true); break;
      case Format::fp8: add_fp8(out, m, fp8, w, false); break;
      case Format::fp8_channel: add_fp8(out, m, fp8, w, true); break;
    }
  }
  out.write(dir / "model.safetensors");
  fs::copy_file(src / "generation_config.json", dir / "generation_config.json", fs::copy_options::overwrite_existing);
  json cfg = test::read_json(src / "config.json");
  cfg["quantization_config"] = std::move(qc);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  return dir;
}

Config engine_config(const fs::path& model) {
  set_log_level("warn");
  Config c;
  std::vector<ConfigIssue> issues;
  c.set_from_text("model.path", {model.string()}, "test", issues);
  c.set_from_text("model.skip_tokenizer_init", {"true"}, "test", issues);
  c.set_from_text("device", {"cpu"}, "test", issues);
  EXPECT_TRUE(issues.empty());
  return c;
}

/// Greedy through the engine, one request at a time, against `variant`'s llama golden.
void expect_golden(const fs::path& dir, const std::string& variant) {
  const json golden = test::read_json(test::quant_fixtures() / variant / "golden.json");
  auto engine = Engine::create(engine_config(dir));
  const auto cases = test::read_cases(golden["models"]["llama"]["cases"]);
  for (size_t i = 0; i < cases.size(); ++i) {
    GenerationRequest r;
    r.request_id = "c" + std::to_string(i);
    r.prompt_ids = cases[i].prompt;
    r.params.temperature = 0.0;
    r.params.max_tokens = static_cast<int>(cases[i].greedy.size());
    r.params.ignore_eos = true;
    r.params.logprobs = 5;
    RequestResult res;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    engine->submit(std::move(r), [&](RequestOutput&& m) {
      std::lock_guard lk(mu);
      done = m.finished;
      res.add(std::move(m));
      cv.notify_all();
    });
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done; });
    ASSERT_FALSE(res.error) << *res.error;
    EXPECT_EQ(res.outputs.at(0).token_ids, cases[i].greedy) << variant << " case " << i;
    for (size_t s = 0; s < cases[i].top.size() && s < res.outputs[0].logprobs.size(); ++s)
      for (const auto& t : res.outputs[0].logprobs[s].top) {
        if (t.id == cases[i].top[s][0].first) {
          EXPECT_NEAR(t.logprob, cases[i].top[s][0].second, 1e-3) << variant << " case " << i << " step " << s;
        }
      }
  }
}

TEST(QuantCheckpoint, GptqMatchesTheInt4Golden) {
  const fs::path dir = write_checkpoint(Format::gptq, "gptq",
      {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}, {"desc_act", false}, {"sym", false},
       {"checkpoint_format", "gptq_v2"}});
  expect_golden(dir, "int4");
  fs::remove_all(dir);
}

TEST(QuantCheckpoint, AwqGemmMatchesTheInt4Golden) {
  const fs::path dir = write_checkpoint(Format::awq, "awq",
      {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}, {"zero_point", true}, {"version", "gemm"}});
  expect_golden(dir, "int4");
  fs::remove_all(dir);
}

TEST(QuantCheckpoint, BitsandbytesNf4MatchesTheNf4Goldens) {
  const json qc = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}};
  fs::path dir = write_checkpoint(Format::bnb, "bnb", qc);
  expect_golden(dir, "nf4");
  fs::remove_all(dir);
  dir = write_checkpoint(Format::bnb_nested, "bnb_nested", qc);
  expect_golden(dir, "nf4_double");
  fs::remove_all(dir);
}

TEST(QuantCheckpoint, Fp8WeightAndScaleMatchTheFp8Goldens) {
  const json qc = {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}};
  fs::path dir = write_checkpoint(Format::fp8, "fp8", qc);
  expect_golden(dir, "fp8");
  fs::remove_all(dir);
  dir = write_checkpoint(Format::fp8_channel, "fp8_channel", qc);
  expect_golden(dir, "fp8_channel");
  fs::remove_all(dir);
}

TEST(QuantCheckpoint, UnreadVariantsAreRefusedNamingWhat) {
  auto refused = [](const fs::path& dir, const std::string& needle) {
    try {
      Engine::create(engine_config(dir));
      ADD_FAILURE() << "accepted; expected a refusal mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
  };
  refused(write_checkpoint(Format::gptq_act_order, "act",
                           {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}, {"desc_act", true},
                            {"checkpoint_format", "gptq_v2"}}),
          "act-order");
  refused(write_checkpoint(Format::gptq, "gptq3", {{"quant_method", "gptq"}, {"bits", 3}, {"group_size", 32}}),
          "bits 3");
  refused(write_checkpoint(Format::awq, "gemv", {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32},
                                                  {"version", "gemv"}}),
          "GEMM");
  refused(write_checkpoint(Format::fp8, "block", {{"quant_method", "fp8"}, {"weight_block_size", {128, 128}}}),
          "block-wise");
}

TEST(QuantCheckpoint, GptqV1StoresZeroMinusOne) {
  // A small GPTQ v1 checkpoint (zeros stored minus one), converted and dequantized.
  const fs::path dir = fs::temp_directory_path() / ("banyan_gptq_v1_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Int4 v{16, 64, 32, {}, {}, {}};
  for (int64_t i = 0; i < v.N * v.K; ++i) v.q.push_back(static_cast<uint32_t>((i * 7) % 16));
  for (int64_t i = 0; i < v.N * 2; ++i) {
    v.z.push_back(static_cast<uint32_t>(1 + i % 15));
    v.s.push_back(0.01f * static_cast<float>(1 + i));
  }
  CheckpointWriter out;
  add_gptq(out, "model.layers.0.mlp.up_proj", v, 1, false);
  out.write(dir / "model.safetensors");
  Checkpoint ckpt(dir);
  Quantizer q(test::plugins(), "int4",
              json{{"quantization_config", {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}}}}.dump());
  auto m = q.from_checkpoint("model.layers.0.mlp.up_proj", ckpt);
  ASSERT_TRUE(m);
  const auto d = q.dequantize(*m);
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t k = 0; k < v.K; ++k) {
      const int64_t g = n * 2 + k / 32;
      ASSERT_EQ(d[n * v.K + k], (static_cast<float>(v.q[n * v.K + k]) - static_cast<float>(v.z[g])) * v.s[g])
          << n << ", " << k;
    }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace banyan::core
