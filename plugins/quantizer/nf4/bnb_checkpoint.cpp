// bitsandbytes 4-bit checkpoints as transformers saves them (Params4bit): for module m,
//   m.weight                 U8 [ceil(N*K/2), 1]   packed indices (even element: high nibble)
//   m.weight.absmax          F32 [nblocks], or U8 [nblocks] when nested
//   m.weight.quant_map       F32 [16]              the code (NF4 or FP4 values)
//   m.weight.nested_absmax   F32 [ceil(nblocks / nested_blocksize)]   (nested)
//   m.weight.nested_quant_map F32 [256]                               (nested)
//   m.weight.quant_state.bitsandbytes__nf4 (or __fp4)  U8 bytes of a JSON object:
//     quant_type, blocksize, shape [N, K], and when nested nested_blocksize, nested_offset.
// That is the LUT4_BLOCK layout itself; the tensors are copied.
#include "nf4_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace banyan::nf4 {
namespace {

struct QuantState {
  std::string type;
  int64_t rows = 0, cols = 0, block = 0, nested_block = 0;
  float offset = 0;
  bool nested = false;
};

QuantState read_state(const std::string& m, const TensorSource& src) {
  Tensor t;
  std::string key;
  for (const char* kind : {"nf4", "fp4"})
    if (src.find(m + ".weight.quant_state.bitsandbytes__" + kind, &t)) {
      key = m + ".weight.quant_state.bitsandbytes__" + kind;
      break;
    }
  if (key.empty())
    throw Error(Code::not_found, m + ": bitsandbytes checkpoint without " + m +
                                     ".weight.quant_state.bitsandbytes__nf4 (or __fp4)");
  if (t.type() != DType::u8) throw Error(m + ": " + key + " is not U8 bytes");
  std::string text(static_cast<const char*>(t.data), static_cast<size_t>(t.numel()));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(m + ": " + key + " is not JSON: " + e.what());
  }
  QuantState s;
  s.type = j.value("quant_type", std::string());
  s.block = j.value("blocksize", int64_t{0});
  auto shape = j.value("shape", std::vector<int64_t>{});
  if (shape.size() != 2 || s.block <= 0)
    throw Error(m + ": " + key + " needs a 2-dimensional shape and a positive blocksize");
  s.rows = shape[0];
  s.cols = shape[1];
  if (j.contains("nested_blocksize")) {
    s.nested = true;
    s.nested_block = j.value("nested_blocksize", int64_t{0});
    s.offset = j.value("nested_offset", 0.0f);
    if (s.nested_block <= 0) throw Error(m + ": " + key + " has a bad nested_blocksize");
  }
  return s;
}

void copy_tensor(const std::string& name, const Tensor& from, BanyanTensor& to, DType dtype) {
  Tensor dst(to);
  if (from.type() != dtype || from.numel() != dst.numel())
    throw Error("checkpoint tensor " + name + " is " + std::string(dtype_name(from.type())) +
                from.shape_string() + ", expected " + std::string(dtype_name(dtype)) + " with " +
                std::to_string(dst.numel()) + " elements");
  std::memcpy(dst.data, from.data, dst.nbytes());
}

}  // namespace

BnbReader::BnbReader(const std::string& text) {
  auto c = nlohmann::json::parse(text);
  std::string method = c.value("quant_method", std::string());
  if (method != "bitsandbytes")
    throw Error(Code::unsupported, "the nf4 plugin does not read quant_method \"" + method + "\"");
  if (c.value("load_in_8bit", false))
    throw Error(Code::unsupported, "bitsandbytes 8-bit (LLM.int8) checkpoints are not read; "
                                   "4-bit (load_in_4bit) ones are");
  if (!c.value("load_in_4bit", false))
    throw Error(Code::unsupported, "bitsandbytes quantization_config without load_in_4bit");
}

bool BnbReader::plan(const std::string& m, const TensorSource& src, BanyanQuantizedWeight& out) const {
  Tensor w;
  if (!src.find(m + ".weight", &w))
    throw Error(Code::not_found, "checkpoint has no tensor " + m + ".weight");
  if (w.type() != DType::u8) return false;  // kept in a float dtype (llm_int8_skip_modules)
  const QuantState s = read_state(m, src);
  if (s.type != "nf4" && s.type != "fp4")
    throw Error(Code::unsupported, m + ": bitsandbytes quant_type \"" + s.type + "\" is not read");
  plan_lut4(s.rows, s.cols, s.block, s.nested, out);
  if (s.nested) {
    out.group_size2 = static_cast<int32_t>(s.nested_block);
    plan_tensor(out.scales2, DType::f32, {ceil_div(ceil_div(s.rows * s.cols, s.block), s.nested_block)});
  }
  return true;
}

void BnbReader::convert(const std::string& m, const TensorSource& src, BanyanQuantizedWeight& out) const {
  const QuantState s = read_state(m, src);
  copy_tensor(m + ".weight", src.get(m + ".weight"), out.qweight, DType::u8);
  copy_tensor(m + ".weight.quant_map", src.get(m + ".weight.quant_map"), out.code, DType::f32);
  if (!s.nested) {
    copy_tensor(m + ".weight.absmax", src.get(m + ".weight.absmax"), out.scales, DType::f32);
    return;
  }
  copy_tensor(m + ".weight.absmax", src.get(m + ".weight.absmax"), out.scales, DType::u8);
  copy_tensor(m + ".weight.nested_absmax", src.get(m + ".weight.nested_absmax"), out.scales2, DType::f32);
  copy_tensor(m + ".weight.nested_quant_map", src.get(m + ".weight.nested_quant_map"), out.code2,
              DType::f32);
  out.offset = s.offset;
}

}  // namespace banyan::nf4
