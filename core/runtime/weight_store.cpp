#include "core/runtime/weight_store.h"

namespace banyan::core {

WeightStore::WeightStore(const Checkpoint& checkpoint, Backend& backend)
    : ckpt_(checkpoint), backend_(backend) {}

Tensor WeightStore::describe(const SafetensorsTensor& st) const {
  const std::string where =
      "tensor \"" + st.name + "\" of " + ckpt_.file_of(st.name).string();
  if (!st.dtype)
    throw Error(Code::unsupported, where + " has dtype " + st.dtype_name +
                                       ", which Banyan does not compute with");
  if (st.shape.size() > BANYAN_MAX_DIMS)
    throw Error(Code::unsupported, where + " has " + std::to_string(st.shape.size()) +
                                       " dimensions (at most " +
                                       std::to_string(BANYAN_MAX_DIMS) + " supported)");
  Tensor t;
  const int ndim = static_cast<int>(st.shape.size());
  t.dtype = static_cast<int32_t>(backend_.weight_dtype(*st.dtype, ndim));
  Device d = backend_.device();
  t.device_type = static_cast<int32_t>(d.type);
  t.device_index = d.index;
  t.ndim = ndim;
  for (int i = 0; i < ndim; ++i) t.shape[i] = st.shape[i];
  if (ndim == 0) {  // a scalar: a 1-element vector
    t.ndim = 1;
    t.shape[0] = 1;
  }
  return t;
}

void WeightStore::declare(const std::string& name, const Tensor& logical) {
  Tensor t = logical;
  t.data = nullptr;
  declared_.insert_or_assign(name, t);
}

bool WeightStore::info(const std::string& name, Tensor* out) const {
  if (auto it = declared_.find(name); it != declared_.end()) {
    if (out) *out = it->second;
    return true;
  }
  if (auto it = loaded_.find(name); it != loaded_.end()) {
    if (out) *out = it->second.tensor;
    return true;
  }
  const SafetensorsTensor* st = ckpt_.find(name);
  if (!st) return false;
  if (out) {
    *out = describe(*st);
    out->data = nullptr;
  }
  return true;
}

const Tensor* WeightStore::find(const std::string& name) {
  if (auto it = loaded_.find(name); it != loaded_.end()) return &it->second.tensor;
  if (declared_.count(name))
    throw Error(Code::unsupported, "tensor \"" + name + "\" of " + ckpt_.dir().string() +
                                       " is stored quantized: only its linear layer's quantizer reads it");
  const SafetensorsTensor* st = ckpt_.find(name);
  if (!st) return nullptr;
  Entry e;
  e.tensor = describe(*st);
  if (backend_.can_use_host_weight(st->data, *st->dtype, static_cast<int>(st->shape.size()))) {
    e.tensor.data = const_cast<std::byte*>(st->data);  // read-only by contract
    mapped_bytes_ += e.tensor.nbytes();
  } else {
    e.buffer = DeviceBuffer(backend_, e.tensor.nbytes());
    e.tensor.data = e.buffer.data();
    backend_.load_weight(st->data, *st->dtype, e.tensor);
    device_bytes_ += e.buffer.size();
  }
  return &loaded_.emplace(name, std::move(e)).first->second.tensor;
}

std::optional<Tensor> WeightStore::load_fused(const std::vector<std::string>& names) {
  if (names.empty()) return std::nullopt;
  std::vector<const SafetensorsTensor*> sts;
  std::vector<Tensor> parts;
  for (const std::string& n : names) {
    if (loaded_.count(n) || declared_.count(n)) return std::nullopt;
    const SafetensorsTensor* st = ckpt_.find(n);
    if (!st || !st->dtype) return std::nullopt;
    Tensor t = describe(*st);
    const Tensor& first = parts.empty() ? t : parts.front();
    if (t.dtype != first.dtype || t.ndim != first.ndim) return std::nullopt;
    for (int d = 1; d < t.ndim; ++d)
      if (t.shape[d] != first.shape[d]) return std::nullopt;
    // Each part starts 16-byte aligned in the buffer (vector loads).
    if (t.nbytes() % 16 != 0) return std::nullopt;
    sts.push_back(st);
    parts.push_back(t);
  }
  Tensor whole = parts.front();
  whole.shape[0] = 0;
  size_t bytes = 0;
  for (const Tensor& t : parts) {
    whole.shape[0] += t.shape[0];
    bytes += t.nbytes();
  }
  DeviceBuffer buf(backend_, bytes);
  whole.data = buf.data();
  size_t off = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    Entry e;
    e.tensor = parts[i];
    e.tensor.data = static_cast<std::byte*>(buf.data()) + off;
    backend_.load_weight(sts[i]->data, *sts[i]->dtype, e.tensor);
    off += parts[i].nbytes();
    loaded_.emplace(names[i], std::move(e));
  }
  device_bytes_ += buf.size();
  fused_.push_back(std::move(buf));
  return whole;
}

const Tensor& WeightStore::get(const std::string& name) {
  if (const Tensor* t = find(name)) return *t;
  throw Error(Code::not_found, "checkpoint " + ckpt_.dir().string() + " has no tensor \"" +
                                   name + "\"");
}

}  // namespace banyan::core

