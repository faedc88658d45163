#include "core/quant/quantized_matrix.h"

#include <banyan/error.h>

namespace banyan::core {

const std::array<const char*, 6> kTensorSlotNames = {"qweight", "scales", "zeros",
                                                      "code",    "scales2", "code2"};

std::array<BanyanTensor*, 6> tensor_slots(BanyanQuantizedWeight& w) {
  return {&w.qweight, &w.scales, &w.zeros, &w.code, &w.scales2, &w.code2};
}
std::array<const BanyanTensor*, 6> tensor_slots(const BanyanQuantizedWeight& w) {
  return {&w.qweight, &w.scales, &w.zeros, &w.code, &w.scales2, &w.code2};
}

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Want {
  bool used = false;
  DType dtype = DType::f32;
  int64_t numel = 0;
  bool any_of_numel = false;  // FP8 scales: 1 or rows
};

std::array<Want, 6> expected(const BanyanQuantizedWeight& w, const std::string& module) {
  const int64_t N = w.rows, K = w.cols, n = N * K;
  std::array<Want, 6> e{};
  auto fail = [&](const std::string& why) {
    throw Error(Code::internal, "quantized weight of " + module + ": " + why);
  };
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW:
      e[0] = {true, DType::i8, n};
      e[1] = {true, DType::f32, N};
      break;
    case BANYAN_QUANT_INT4_GROUP: {
      if (w.group_size <= 0 || K % w.group_size != 0 || K % 2 != 0)
        fail("group_size " + std::to_string(w.group_size) + " does not divide an even " +
             std::to_string(K));
      const int64_t ng = K / w.group_size;
      e[0] = {true, DType::u8, N * K / 2};
      e[1] = {true, DType::f32, N * ng};
      e[2] = {true, DType::u8, N * ng};
      break;
    }
    case BANYAN_QUANT_LUT4_BLOCK: {
      if (w.group_size <= 0) fail("block size " + std::to_string(w.group_size));
      const int64_t nb = cdiv(n, w.group_size);
      e[0] = {true, DType::u8, cdiv(n, 2)};
      e[3] = {true, DType::f32, 16};
      if (w.group_size2 > 0) {
        e[1] = {true, DType::u8, nb};
        e[4] = {true, DType::f32, cdiv(nb, w.group_size2)};
        e[5] = {true, DType::f32, 256};
      } else {
        e[1] = {true, DType::f32, nb};
      }
      break;
    }
    case BANYAN_QUANT_FP8:
      e[0] = {true, DType::fp8_e4m3, n};
      e[1] = {true, DType::f32, N, true};
      break;
    default: fail("unknown layout " + std::to_string(w.layout));
  }
  return e;
}

int64_t numel(const BanyanTensor& t) {
  int64_t n = t.ndim > 0 ? 1 : 0;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

void check(const BanyanQuantizedWeight& w, const std::string& module, bool need_data) {
  if (w.struct_size < sizeof(BanyanQuantizedWeight))
    throw Error(Code::internal, "quantized weight of " + module + ": struct_size too small");
  if (w.rows <= 0 || w.cols <= 0)
    throw Error(Code::internal, "quantized weight of " + module + ": empty shape");
  const auto want = expected(w, module);
  const auto slots = tensor_slots(w);
  for (size_t i = 0; i < slots.size(); ++i) {
    const BanyanTensor& t = *slots[i];
    const std::string where = "quantized weight of " + module + ": tensor " + kTensorSlotNames[i];
    if (!want[i].used) {
      if (t.ndim != 0) throw Error(Code::internal, where + " is not used by its layout but declared");
      continue;
    }
    const int64_t got = numel(t);
    const bool count_ok = got == want[i].numel || (want[i].any_of_numel && got == 1);
    if (t.ndim <= 0 || t.ndim > BANYAN_MAX_DIMS || static_cast<DType>(t.dtype) != want[i].dtype ||
        !count_ok)
      throw Error(Code::internal, where + " is " + std::string(dtype_name(static_cast<DType>(t.dtype))) +
                                      " with " + std::to_string(got) + " elements, expected " +
                                      std::string(dtype_name(want[i].dtype)) + " with " +
                                      std::to_string(want[i].numel));
    if (need_data && !t.data) throw Error(Code::internal, where + " has no data");
  }
}

}  // namespace

void validate(const BanyanQuantizedWeight& w, const std::string& module) { check(w, module, true); }

QuantizedMatrix::QuantizedMatrix(const BanyanQuantizedWeight& plan, const std::string& module)
    : w_(plan) {
  w_.struct_size = sizeof(BanyanQuantizedWeight);
  check(w_, module, false);
  for (BanyanTensor* t : tensor_slots(w_)) {
    if (t->ndim == 0) {
      t->data = nullptr;
      continue;
    }
    t->device_type = BANYAN_CPU;
    t->device_index = 0;
    buffers_.emplace_back(Tensor(*t).nbytes());
    t->data = buffers_.back().data();
  }
}

size_t QuantizedMatrix::bytes() const {
  size_t n = 0;
  for (const auto& b : buffers_) n += b.size();
  return n;
}

std::string describe(const BanyanQuantizedWeight& w) {
  switch (w.layout) {
    case BANYAN_QUANT_INT8_ROW: return "int8 per row";
    case BANYAN_QUANT_INT4_GROUP: return "int4 g" + std::to_string(w.group_size);
    case BANYAN_QUANT_LUT4_BLOCK:
      return "lut4 b" + std::to_string(w.group_size) + (w.group_size2 > 0 ? " (double)" : "");
    case BANYAN_QUANT_FP8: return numel(w.scales) == 1 ? "fp8 per tensor" : "fp8 per row";
    default: return "layout " + std::to_string(w.layout);
  }
}

}  // namespace banyan::core
