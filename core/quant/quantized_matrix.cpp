#include "core/quant/quantized_matrix.h"

#include <banyan/error.h>

#include <cstring>

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

bool stackable_rows(std::span<const BanyanQuantizedWeight> parts, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (parts.empty()) return no("no parts");
  const BanyanQuantizedWeight& a = parts[0];
  for (const BanyanQuantizedWeight& p : parts) {
    const bool last = &p == &parts.back();
    if (p.layout != a.layout || p.cols != a.cols || p.group_size != a.group_size ||
        p.group_size2 != a.group_size2)
      return no("the parts are stored differently (" + describe(a) + " [" + std::to_string(a.rows) + ", " +
                std::to_string(a.cols) + "], " + describe(p) + " [" + std::to_string(p.rows) + ", " +
                std::to_string(p.cols) + "])");
    switch (p.layout) {
      case BANYAN_QUANT_INT8_ROW:
      case BANYAN_QUANT_INT4_GROUP: break;
      case BANYAN_QUANT_LUT4_BLOCK: {
        if (p.group_size2 > 0) return no(describe(p) + ": double quantization's statistics span the whole weight");
        const int64_t n = p.rows * p.cols;
        if (p.group_size <= 0 || (!last && (n % p.group_size != 0 || n % 2 != 0)))
          return no(describe(p) + ": a block or a byte would straddle two parts ([" + std::to_string(p.rows) +
                    ", " + std::to_string(p.cols) + "])");
        break;
      }
      case BANYAN_QUANT_FP8:
        if (numel(p.scales) != p.rows) return no(describe(p) + ": one scale per part");
        break;
      default: return no("layout " + std::to_string(p.layout) + " is not known to stack");
    }
  }
  return true;
}

std::optional<QuantizedMatrix> stack_rows(std::span<const QuantizedMatrix> parts, const std::string& name,
                                          std::string* why) {
  std::vector<BanyanQuantizedWeight> plans;
  for (const QuantizedMatrix& p : parts) plans.push_back(p.get());
  if (!stackable_rows(plans, why)) return std::nullopt;
  // Slots 0-2 (qweight, scales, zeros) are per row or block: stacked. Slots 3 and 5
  // (code, code2) are tables every part must share; 4 (scales2) is never used here.
  BanyanQuantizedWeight plan = plans[0];
  plan.rows = 0;
  for (const auto& p : plans) plan.rows += p.rows;
  auto slots = tensor_slots(plan);
  for (size_t i = 0; i < 3; ++i) {
    BanyanTensor& t = *slots[i];
    if (t.ndim == 0) continue;
    bool same_tail = true;  // stack along the first dimension when the others agree
    int64_t first = 0, total = 0;
    for (const auto& p : plans) {
      const BanyanTensor& u = *tensor_slots(p)[i];
      same_tail = same_tail && u.ndim == t.ndim;
      for (int d = 1; same_tail && d < t.ndim; ++d) same_tail = u.shape[d] == t.shape[d];
      first += u.shape[0];
      total += numel(u);
    }
    if (!same_tail) {
      t.ndim = 1;
      t.shape[0] = total;
    } else {
      t.shape[0] = first;
    }
  }
  for (size_t i = 3; i < slots.size(); ++i) {
    const BanyanTensor& t = *slots[i];
    if (t.ndim == 0) continue;
    const size_t bytes = Tensor(t).nbytes();
    for (const auto& p : plans)
      if (std::memcmp(tensor_slots(p)[i]->data, t.data, bytes) != 0) {
        if (why) *why = std::string("the parts' ") + kTensorSlotNames[i] + " tables differ";
        return std::nullopt;
      }
  }
  QuantizedMatrix out(plan, name);
  auto dst = tensor_slots(out.get());
  for (size_t i = 0; i < dst.size(); ++i) {
    if (dst[i]->ndim == 0) continue;
    auto* d = static_cast<std::byte*>(dst[i]->data);
    if (i >= 3) {  // a shared table
      std::memcpy(d, slots[i]->data, Tensor(*dst[i]).nbytes());
      continue;
    }
    for (const auto& p : plans) {
      const Tensor src(*tensor_slots(p)[i]);
      std::memcpy(d, src.data, src.nbytes());
      d += src.nbytes();
    }
  }
  validate(out.get(), name);
  return out;
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
