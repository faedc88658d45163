// The safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}, then the
// tensor bytes. Parsed with full validation (header bounds, JSON, dtypes, shapes
// against byte ranges, overlaps, gaps, truncation) and memory-mapped.
#pragma once

#include "core/runtime/mapped_file.h"

#include <banyan/tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace banyan::core {

/// One tensor of a safetensors file: a view into the mapping.
struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;       ///< as written ("BF16", "F32", "BOOL", ...)
  std::optional<DType> dtype;   ///< empty for dtypes Banyan does not compute with
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte range inside the data section
  const std::byte* data = nullptr;
  size_t nbytes() const { return static_cast<size_t>(end - begin); }
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  ///< in header order, data pointers unset
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  ///< where the data section starts in the file
};

/// The largest header accepted (as the reference implementation does).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

/// Parses and validates a whole safetensors image. `label` (the file name) starts
/// every error message; errors also name the tensor. Throws banyan::Error.
SafetensorsHeader parse_safetensors(std::span<const std::byte> file, const std::string& label);

class SafetensorsFile {
 public:
  /// Maps and validates `path`. Throws banyan::Error naming the file (and tensor).
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::vector<SafetensorsTensor>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsTensor* find(std::string_view name) const;

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace banyan::core
