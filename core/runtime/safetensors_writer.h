// Writes safetensors files (header padded to 8 bytes, tensors in the given order).
// Used by tests, benchmarks and tools that produce checkpoints.
#pragma once

#include <banyan/tensor.h>

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace banyan::core {

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  ///< numel * dtype_size bytes, row-major
};

/// Throws banyan::Error when a tensor's bytes do not match its shape, or on I/O errors.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// The header JSON write_safetensors() would produce (unpadded), for tests.
std::string safetensors_header(const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace banyan::core
