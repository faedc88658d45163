#include "core/adapters/packed_adapter.h"

#include "kernels/cpu/convert.h"

#include <banyan/error.h>

#include <cmath>
#include <cstring>

namespace banyan::core {
namespace {

constexpr size_t kAlign = 64;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

float element(const void* data, DType t, int64_t i) {
  switch (t) {
    case DType::f32: {
      float f;
      std::memcpy(&f, static_cast<const char*>(data) + i * 4, 4);
      return f;
    }
    case DType::bf16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(data) + i * 2, 2);
      return kernels::cpu::bf16_to_f32(h);
    }
    case DType::f16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(data) + i * 2, 2);
      return kernels::cpu::f16_to_f32(h);
    }
    default:
      throw Error(Code::unsupported, "adapter tensors must be BF16, F16 or F32, not " +
                                         std::string(dtype_name(t)));
  }
}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = element(t.data, t.type(), i);
  return out;
}

void store(std::byte* dst, DType t, int64_t i, float v) {
  if (t == DType::f32) {
    std::memcpy(dst + i * 4, &v, 4);
  } else {
    uint16_t h = kernels::cpu::f32_to_bf16(v);
    std::memcpy(dst + i * 2, &h, 2);
  }
}

const SafetensorsTensor& base_tensor(const Checkpoint& base, const std::string& name,
                                     const std::string& why) {
  const SafetensorsTensor* t = base.find(name);
  if (!t || !t->dtype)
    throw Error(Code::unsupported, why + ": the base checkpoint has no dense " + name +
                                       " (DoRA needs the base weight; a quantized base is not supported yet)");
  return *t;
}

Tensor view_of(const SafetensorsTensor& t) {
  Tensor v;
  v.data = const_cast<std::byte*>(t.data);
  v.dtype = static_cast<int32_t>(*t.dtype);
  for (int64_t d : t.shape) v.shape[v.ndim++] = d;
  return v;
}

}  // namespace

AdapterLayout plan_adapter(const BanyanAdapterInfo& info, DType activation,
                           const std::function<int32_t(const std::string&)>& module_index,
                           const Checkpoint& base) {
  if (activation != DType::f32 && activation != DType::bf16)
    throw Error(Code::unsupported, "adapters: activation dtype " + std::string(dtype_name(activation)) +
                                       " is not supported");
  bool all_bf16 = info.num_modules > 0;
  for (int32_t i = 0; i < info.num_modules; ++i)
    all_bf16 = all_bf16 && info.modules[i].lora_a.dtype == BANYAN_BF16 &&
               info.modules[i].lora_b.dtype == BANYAN_BF16;
  const DType dtype = all_bf16 ? DType::bf16 : activation;
  AdapterLayout l;
  l.dtype = dtype;
  const size_t es = dtype_size(dtype);
  size_t at = 0;
  for (int32_t i = 0; i < info.num_modules; ++i) {
    const BanyanAdapterModule& m = info.modules[i];
    PackedModule p;
    std::string name = m.name ? m.name : "";
    p.module = module_index(name);
    if (p.module < 0) throw Error(Code::internal, "adapter module " + name + " is not a base linear layer");
    p.rank = m.rank;
    p.in = m.lora_a.shape[1];
    p.out = m.lora_b.shape[0];
    p.scaling = m.scaling;
    if (p.rank <= 0 || m.lora_a.ndim != 2 || m.lora_b.ndim != 2 || m.lora_a.shape[0] != p.rank ||
        m.lora_b.shape[1] != p.rank)
      throw Error(Code::internal, "adapter module " + name + ": inconsistent shapes from the plugin");
    p.a_offset = at;
    at = align_up(at + static_cast<size_t>(p.rank * p.in) * es);
    p.bt_offset = at;
    at = align_up(at + static_cast<size_t>(p.rank * p.out) * es);
    if (m.magnitude.data) {
      p.dora = true;
      const std::string why = "DoRA module " + name;
      const std::string weight_name = name + ".weight";
      const SafetensorsTensor& w = base_tensor(base, weight_name, why);
      const int64_t rows = m.weight_transposed ? p.in : p.out, cols = m.weight_transposed ? p.out : p.in;
      if (w.shape.size() != 2 || w.shape[0] != rows || w.shape[1] != cols)
        throw Error(why + ": the base weight " + name + ".weight is not [" + std::to_string(rows) +
                    ", " + std::to_string(cols) + "]" +
                    (m.weight_transposed ? " (fan_in_fan_out: stored [in, out])" : ""));
      p.scale_offset = at;
      at = align_up(at + static_cast<size_t>(p.out) * 4);
      if (const SafetensorsTensor* b = base.find(name + ".bias")) {
        if (b->shape.size() != 1 || b->shape[0] != p.out || !b->dtype)
          throw Error(why + ": the base bias " + name + ".bias is not [" + std::to_string(p.out) + "]");
        p.bias = true;
        p.bias_offset = at;
        at = align_up(at + static_cast<size_t>(p.out) * 4);
      }
    }
    l.max_rank = std::max(l.max_rank, p.rank);
    l.names.push_back(std::move(name));
    l.modules.push_back(p);
  }
  l.bytes = std::max<size_t>(at, kAlign);
  return l;
}

std::vector<ModuleSegment> module_segments(const AdapterLayout& l) {
  std::vector<ModuleSegment> out(l.modules.size());
  for (size_t i = 0; i < l.modules.size(); ++i) {
    const size_t end = i + 1 < l.modules.size() ? l.modules[i + 1].a_offset : l.bytes;
    if (end <= l.modules[i].a_offset || end > l.bytes)
      throw Error(Code::internal, "adapter image: module " + l.names[i] + " has no bytes of its own");
    out[i] = {l.modules[i].a_offset, end - l.modules[i].a_offset};
  }
  return out;
}

void pack_adapter(const BanyanAdapterInfo& info, const AdapterLayout& l, const Checkpoint& base,
                  std::byte* image) {
  if (static_cast<size_t>(info.num_modules) != l.modules.size())
    throw Error(Code::internal, "adapter image: the plugin's modules and the layout differ");
  std::memset(image, 0, l.bytes);
  for (size_t i = 0; i < l.modules.size(); ++i) {
    const PackedModule& p = l.modules[i];
    const BanyanAdapterModule& m = info.modules[i];
    const std::vector<float> A = to_f32(m.lora_a);  // [r, in]
    const std::vector<float> B = to_f32(m.lora_b);  // [out, r]
    for (int64_t k = 0; k < p.rank * p.in; ++k) store(image + p.a_offset, l.dtype, k, A[k]);
    for (int64_t k = 0; k < p.rank; ++k)
      for (int64_t j = 0; j < p.out; ++j)
        store(image + p.bt_offset, l.dtype, k * p.out + j, B[j * p.rank + k]);
    if (!p.dora) continue;
    // PEFT: weight_norm = ||transpose(W, fan_in_fan_out) + scaling * (B @ A)|| over dim 1,
    // then mag_norm_scale = magnitude / weight_norm, all in f32.
    const Tensor W = view_of(base_tensor(base, l.names[i] + ".weight", "DoRA"));
    const std::vector<float> mag = to_f32(m.magnitude);
    std::vector<float> bias;
    if (p.bias) bias = to_f32(view_of(*base.find(l.names[i] + ".bias")));
    auto* scale = reinterpret_cast<float*>(image + p.scale_offset);
    auto* dbias = p.bias ? reinterpret_cast<float*>(image + p.bias_offset) : nullptr;
    const bool transposed = m.weight_transposed != 0;
    const int64_t in = p.in, out = p.out, r = p.rank;
    const float s = p.scaling;
#pragma omp parallel
    {
      std::vector<float> ba(static_cast<size_t>(in));
#pragma omp for schedule(static)
      for (int64_t j = 0; j < out; ++j) {
        std::fill(ba.begin(), ba.end(), 0.0f);
        for (int64_t k = 0; k < r; ++k) {
          const float b = B[j * r + k];
          const float* a = A.data() + k * in;
#pragma omp simd
          for (int64_t c = 0; c < in; ++c) ba[c] += b * a[c];
        }
        double acc = 0;
        for (int64_t c = 0; c < in; ++c) {
          const float w = element(W.data, W.type(), transposed ? c * out + j : j * in + c);
          const float v = w + s * ba[c];
          acc += static_cast<double>(v) * v;
        }
        const float norm = static_cast<float>(std::sqrt(acc));
        scale[j] = mag[j] / norm;
        if (dbias) dbias[j] = (1.0f - scale[j]) * bias[j];
      }
    }
  }
}

}  // namespace banyan::core
