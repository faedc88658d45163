#include "st_file.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace banyan::lora {
namespace {

bool dtype_of(const std::string& s, DType& out) {
  if (s == "BF16") out = DType::bf16;
  else if (s == "F16") out = DType::f16;
  else if (s == "F32") out = DType::f32;
  else return false;
  return true;
}

}  // namespace

StFile::StFile(const std::filesystem::path& path) {
  const std::string file = path.string();
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(Code::not_found, "cannot open " + file + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(Code::not_found, "cannot stat " + file);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw Error(file + ": " + std::to_string(size_) + " bytes is too short for a safetensors file");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(Code::out_of_memory, "cannot map " + file + ": " + std::strerror(errno));
  }
  try {
    const auto* base = static_cast<const unsigned char*>(map_);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
    if (n > size_ - 8 || n > 100'000'000)
      throw Error(file + ": header length " + std::to_string(n) + " exceeds the file (" +
                  std::to_string(size_) + " bytes): truncated or not a safetensors file");
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                reinterpret_cast<const char*>(base + 8 + n));
    } catch (const nlohmann::json::exception& e) {
      throw Error(file + ": header is not valid JSON: " + e.what());
    }
    if (!h.is_object()) throw Error(file + ": header is not a JSON object");
    const uint64_t data_size = size_ - 8 - n;
    const std::byte* data = reinterpret_cast<const std::byte*>(base + 8 + n);
    for (const auto& [name, t] : h.items()) {
      if (name == "__metadata__") continue;
      const std::string at = file + ": tensor " + name;
      if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") ||
          !t.contains("data_offsets"))
        throw Error(at + ": expected {dtype, shape, data_offsets}");
      StTensor out;
      out.name = name;
      DType dt{};
      const std::string ds = t["dtype"].is_string() ? t["dtype"].get<std::string>() : "?";
      if (!dtype_of(ds, dt))
        throw Error(Code::unsupported, at + " has dtype " + ds + "; adapter tensors must be BF16, F16 or F32");
      const auto& shape = t["shape"];
      const auto& off = t["data_offsets"];
      if (!shape.is_array() || shape.size() > BANYAN_MAX_DIMS || !off.is_array() || off.size() != 2)
        throw Error(at + ": bad shape or data_offsets");
      Tensor v;
      v.dtype = static_cast<int32_t>(dt);
      uint64_t numel = 1;
      for (const auto& d : shape) {
        if (!d.is_number_unsigned()) throw Error(at + ": shape must hold non-negative integers");
        v.shape[v.ndim++] = d.get<int64_t>();
        numel *= d.get<uint64_t>();
      }
      const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
      if (b > e || e > data_size)
        throw Error(at + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                    ") lie outside the data section (" + std::to_string(data_size) +
                    " bytes): truncated file?");
      if (e - b != numel * dtype_size(dt))
        throw Error(at + ": " + std::to_string(e - b) + " bytes for " + ds + v.shape_string());
      v.data = const_cast<std::byte*>(data + b);
      out.view = v;
      tensors_.push_back(std::move(out));
    }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

StFile::~StFile() {
  if (map_) ::munmap(map_, size_);
}

}  // namespace banyan::lora
