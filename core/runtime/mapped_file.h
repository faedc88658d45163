// A read-only memory map of a whole file (RAII: unmapped on destruction).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace banyan::core {

class MappedFile {
 public:
  MappedFile() = default;
  /// Maps `path` read-only. Throws banyan::Error naming the file on failure; an
  /// empty file maps to an empty span.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void reset() noexcept;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace banyan::core
