// A memory-mapped safetensors file, read-only: the 8-byte header length, the JSON
// header and the tensors as views (BF16, F16 and F32 only; an adapter has no other).
#pragma once

#include <banyan/tensor.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace banyan::lora {

struct StTensor {
  std::string name;
  Tensor view;  ///< host memory inside the mapping
};

class StFile {
 public:
  /// Maps and validates `path`; throws banyan::Error naming the file and tensor.
  explicit StFile(const std::filesystem::path& path);
  ~StFile();
  StFile(const StFile&) = delete;
  StFile& operator=(const StFile&) = delete;

  const std::vector<StTensor>& tensors() const { return tensors_; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<StTensor> tensors_;
};

}  // namespace banyan::lora
