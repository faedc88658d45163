#include "core/runtime/safetensors.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

namespace banyan::core {
namespace {

using nlohmann::json;

struct DTypeInfo {
  const char* name;
  size_t size;
  std::optional<DType> dtype;
};

// Every dtype the format defines; those Banyan computes with map to a DType.
const DTypeInfo kDTypes[] = {
    {"BOOL", 1, std::nullopt},    {"U8", 1, DType::u8},         {"I8", 1, DType::i8},
    {"F8_E5M2", 1, std::nullopt}, {"F8_E4M3", 1, DType::fp8_e4m3}, {"I16", 2, std::nullopt},
    {"U16", 2, std::nullopt},     {"F16", 2, DType::f16},       {"BF16", 2, DType::bf16},
    {"I32", 4, DType::i32},       {"U32", 4, std::nullopt},     {"F32", 4, DType::f32},
    {"F64", 8, std::nullopt},     {"I64", 8, DType::i64},       {"U64", 8, std::nullopt},
};

const DTypeInfo* find_dtype(const std::string& s) {
  for (const auto& d : kDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

// A JSON integer >= 0 (safetensors writes unsigned integers).
bool as_count(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

SafetensorsTensor parse_entry(const std::string& label, const std::string& name, const json& v) {
  const std::string at = label + ": tensor \"" + name + "\"";
  if (!v.is_object()) throw Error(at + ": header entry is not an object");
  auto dt = v.find("dtype");
  auto sh = v.find("shape");
  auto off = v.find("data_offsets");
  if (dt == v.end() || !dt->is_string()) throw Error(at + ": missing or non-string \"dtype\"");
  if (sh == v.end() || !sh->is_array()) throw Error(at + ": missing or non-array \"shape\"");
  if (off == v.end() || !off->is_array() || off->size() != 2)
    throw Error(at + ": \"data_offsets\" must be an array [begin, end]");

  SafetensorsTensor t;
  t.name = name;
  t.dtype_name = dt->get<std::string>();
  const DTypeInfo* info = find_dtype(t.dtype_name);
  if (!info) throw Error(at + ": unknown dtype \"" + t.dtype_name + "\"");
  t.dtype = info->dtype;

  uint64_t numel = 1;
  for (const auto& d : *sh) {
    uint64_t n = 0;
    if (!as_count(d, &n) || n > static_cast<uint64_t>(INT64_MAX))
      throw Error(at + ": shape entries must be non-negative integers, got " + sh->dump());
    t.shape.push_back(static_cast<int64_t>(n));
    if (__builtin_mul_overflow(numel, n, &numel))
      throw Error(at + ": shape " + sh->dump() + " overflows");
  }
  if (!as_count((*off)[0], &t.begin) || !as_count((*off)[1], &t.end))
    throw Error(at + ": data_offsets must be non-negative integers, got " + off->dump());
  if (t.end < t.begin)
    throw Error(at + ": data_offsets end " + std::to_string(t.end) + " is before begin " +
                std::to_string(t.begin));
  uint64_t need = 0;
  if (__builtin_mul_overflow(numel, info->size, &need))
    throw Error(at + ": shape " + shape_str(t.shape) + " overflows");
  if (need != t.end - t.begin)
    throw Error(at + ": shape " + shape_str(t.shape) + " of " + t.dtype_name + " needs " +
                std::to_string(need) + " bytes but data_offsets [" + std::to_string(t.begin) +
                ", " + std::to_string(t.end) + "] span " + std::to_string(t.end - t.begin));
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors(std::span<const std::byte> file, const std::string& label) {
  if (file.size() < 8)
    throw Error(label + ": too short for a safetensors file (" + std::to_string(file.size()) +
                " bytes; the header length alone takes 8)");
  const uint64_t n = read_u64_le(file.data());
  if (n > kMaxSafetensorsHeader)
    throw Error(label + ": header length " + std::to_string(n) + " exceeds the limit of " +
                std::to_string(kMaxSafetensorsHeader) + " bytes (corrupt file?)");
  if (n > file.size() - 8)
    throw Error(label + ": truncated: the header needs " + std::to_string(n) +
                " bytes but the file has " + std::to_string(file.size() - 8) + " after the length");
  if (n == 0) throw Error(label + ": empty JSON header");

  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  json root;
  std::string duplicate;
  try {
    // Refuses duplicate tensor names, which a plain parse would silently merge.
    std::set<std::string> keys;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::key && depth == 1) {
        auto k = parsed.get<std::string>();
        if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
      }
      return true;
    };
    root = json::parse(text, text + n, cb);
  } catch (const json::exception& e) {
    throw Error(label + ": header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw Error(label + ": tensor \"" + duplicate + "\" appears twice");
  if (!root.is_object()) throw Error(label + ": header is not a JSON object");

  SafetensorsHeader h;
  h.data_offset = 8 + n;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(label + ": \"__metadata__\" is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw Error(label + ": __metadata__ value \"" + m.key() + "\" is not a string");
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(label, it.key(), *it));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, no
  // truncation, no trailing bytes.
  const uint64_t data_size = file.size() - h.data_offset;
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : h.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const auto* t : order) {
    if (t->begin < cursor)
      throw Error(label + ": tensor \"" + t->name + "\" (bytes " + std::to_string(t->begin) +
                  ".." + std::to_string(t->end) + ") overlaps tensor \"" + prev->name +
                  "\" (ending at " + std::to_string(cursor) + ")");
    if (t->begin > cursor)
      throw Error(label + ": " + std::to_string(t->begin - cursor) +
                  " unaccounted bytes before tensor \"" + t->name + "\" (at offset " +
                  std::to_string(cursor) + ")");
    if (t->end > data_size)
      throw Error(label + ": truncated: tensor \"" + t->name + "\" ends at byte " +
                  std::to_string(t->end) + " of the data section, which has only " +
                  std::to_string(data_size) + " bytes");
    cursor = t->end;
    prev = t;
  }
  if (cursor != data_size)
    throw Error(label + ": " + std::to_string(data_size - cursor) +
                " bytes after the last tensor (corrupt header or wrong file?)");
  return h;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  header_ = parse_safetensors(file_.bytes(), path.string());
  const std::byte* data = file_.bytes().data() + header_.data_offset;
  for (size_t i = 0; i < header_.tensors.size(); ++i) {
    header_.tensors[i].data = data + header_.tensors[i].begin;
    index_.emplace(header_.tensors[i].name, i);
  }
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace banyan::core
