// The tensors of a Hugging Face checkpoint directory: model.safetensors, or the
// shards listed by model.safetensors.index.json. Every file is memory-mapped and
// validated when the checkpoint opens. Read-only afterwards; safe to share.
#pragma once

#include "core/runtime/safetensors.h"

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace banyan::core {

class Checkpoint {
 public:
  /// Opens `dir`. Throws banyan::Error naming the file (and tensor) when a file
  /// is missing, corrupt or truncated, or when the index and the shards disagree.
  explicit Checkpoint(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  /// Null when absent.
  const SafetensorsTensor* find(std::string_view name) const;
  /// Throws Error(not_found) naming the tensor and the directory when absent.
  const SafetensorsTensor& get(std::string_view name) const;
  /// The file that holds a tensor of this checkpoint.
  const std::filesystem::path& file_of(std::string_view name) const;
  std::vector<std::string> names() const;
  size_t size() const { return index_.size(); }
  /// Total bytes of tensor data.
  uint64_t data_bytes() const;

 private:
  void add_file(const std::filesystem::path& path);
  struct Where {
    size_t file;
    const SafetensorsTensor* tensor;
  };
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, Where> index_;
};

}  // namespace banyan::core
