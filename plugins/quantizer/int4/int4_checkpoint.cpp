// GPTQ and AWQ (GEMM packing) 4-bit checkpoints, converted into INT4_GROUP.
//
// GPTQ (quant_method "gptq"): qweight I32 [K/8, N], eight 4-bit values of k = 8i..8i+7
// per word, lowest bits first; qzeros I32 [K/g, N/8], eight zero points of n = 8j..8j+7
// per word; scales F16/BF16/F32 [K/g, N]; g_idx I32 [K]. checkpoint_format "gptq" (v1)
// stores zero - 1, "gptq_v2" the zero itself. Act-order (g_idx other than k / g) is
// refused: its groups are not contiguous in k.
// AWQ (quant_method "awq", version "gemm"): qweight I32 [K, N/8] and qzeros I32
// [K/g, N/8], each word holding n = 8j + kAwqOrder[i] in nibble i; scales [K/g, N].
// Both: w[n,k] = (q - z) * s.
#include "int4_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace banyan::int4 {
namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void expect(const std::string& module, const std::string& name, const Tensor& t, DType dtype,
            std::initializer_list<int64_t> shape) {
  bool ok = t.ndim == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) ok = ok && t.shape[i++] == d;
  if (!ok || (dtype != DType::f32 && t.type() != dtype)) {
    std::string want = "[";
    i = 0;
    for (int64_t d : shape) want += (i++ ? ", " : "") + std::to_string(d);
    throw Error(module + ": checkpoint tensor " + name + " is " + std::string(dtype_name(t.type())) +
                t.shape_string() + ", expected " +
                (dtype == DType::f32 ? std::string("a float tensor ") : std::string(dtype_name(dtype))) +
                want + "]");
  }
}

uint32_t word(const Tensor& t, int64_t i) { return static_cast<const uint32_t*>(t.data)[i]; }

}  // namespace

CheckpointReader::CheckpointReader(const std::string& text) {
  auto c = nlohmann::json::parse(text);
  const std::string method = lower(c.value("quant_method", std::string()));
  const int bits = c.value("bits", c.value("w_bit", 4));
  if (bits != 4)
    throw Error(Code::unsupported, method + " checkpoint with bits " + std::to_string(bits) +
                                       ": the int4 plugin reads 4-bit weights only");
  group_ = c.value("group_size", c.value("q_group_size", int64_t{128}));
  if (method == "gptq") {
    format_ = Format::gptq;
    const std::string fmt = lower(c.value("checkpoint_format", std::string("gptq")));
    if (fmt == "gptq") zero_offset_ = 1;
    else if (fmt == "gptq_v2") zero_offset_ = 0;
    else
      throw Error(Code::unsupported, "GPTQ checkpoint_format \"" + fmt +
                                         "\" is not read (gptq or gptq_v2 are)");
  } else if (method == "awq") {
    format_ = Format::awq;
    const std::string version = lower(c.value("version", std::string("gemm")));
    if (version != "gemm")
      throw Error(Code::unsupported, "AWQ version \"" + version +
                                         "\" is not read: only the GEMM packing is");
    if (!c.value("zero_point", true))
      throw Error(Code::unsupported, "AWQ without zero points is not read");
  } else {
    throw Error(Code::unsupported, "the int4 plugin does not read quant_method \"" + method + "\"");
  }
}

bool CheckpointReader::plan(const std::string& m, const TensorSource& src,
                            BanyanQuantizedWeight& out) const {
  Tensor qw;
  if (!src.find(m + ".qweight", &qw)) {
    if (src.find(m + ".weight", nullptr)) return false;  // left unquantized
    throw Error(Code::not_found, m + ": the checkpoint has neither " + m + ".qweight nor " + m + ".weight");
  }
  if (qw.ndim != 2 || qw.type() != DType::i32)
    throw Error(m + ": " + m + ".qweight is " + std::string(dtype_name(qw.type())) +
                qw.shape_string() + ", expected I32 with 2 dimensions");
  const int64_t K = format_ == Format::gptq ? qw.shape[0] * 8 : qw.shape[0];
  const int64_t N = format_ == Format::gptq ? qw.shape[1] : qw.shape[1] * 8;
  plan_int4(m, N, K, group_ <= 0 ? K : group_, out);
  return true;
}

void CheckpointReader::convert(const std::string& m, const TensorSource& src,
                               BanyanQuantizedWeight& out) const {
  const int64_t N = out.rows, K = out.cols, G = out.group_size, ng = K / G;
  const Tensor qw = src.get(m + ".qweight"), qz = src.get(m + ".qzeros"), sc = src.get(m + ".scales");
  expect(m, m + ".qzeros", qz, DType::i32, {ng, N / 8});
  expect(m, m + ".scales", sc, DType::f32, {ng, N});
  if (N % 8 != 0) throw Error(m + ": output features " + std::to_string(N) + " not a multiple of 8");
  auto* q = static_cast<uint8_t*>(out.qweight.data);
  auto* s = static_cast<float*>(out.scales.data);
  auto* z = static_cast<uint8_t*>(out.zeros.data);
  // Zero points and scales, [N, ng] here.
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t j = n / 8;
      const int nib = format_ == Format::gptq
                          ? static_cast<int>(n % 8)
                          : static_cast<int>(std::find(kAwqOrder, kAwqOrder + 8, n % 8) - kAwqOrder);
      z[n * ng + g] = static_cast<uint8_t>(((word(qz, g * (N / 8) + j) >> (4 * nib)) & 0xfu) +
                                           (format_ == Format::gptq ? zero_offset_ : 0));
      s[n * ng + g] = float_element(sc, g * N + n);
    }
  if (format_ == Format::gptq) {
    Tensor gi;
    if (src.find(m + ".g_idx", &gi)) {
      expect(m, m + ".g_idx", gi, DType::i32, {K});
      for (int64_t k = 0; k < K; ++k)
        if (static_cast<const int32_t*>(gi.data)[k] != k / G)
          throw Error(Code::unsupported, m + ": GPTQ act-order (desc_act) checkpoints are not read: "
                                             "g_idx[" + std::to_string(k) + "] is " +
                                             std::to_string(static_cast<const int32_t*>(gi.data)[k]) +
                                             ", not k / group_size = " + std::to_string(k / G));
    }
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n)
        put_nibble(q + n * (K / 2), k, (word(qw, (k / 8) * N + n) >> (4 * (k % 8))) & 0xfu);
  } else {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N / 8; ++j) {
        const uint32_t w = word(qw, k * (N / 8) + j);
        for (int i = 0; i < 8; ++i) put_nibble(q + (8 * j + kAwqOrder[i]) * (K / 2), k, (w >> (4 * i)) & 0xfu);
      }
  }
}

}  // namespace banyan::int4
