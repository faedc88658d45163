// The paged KV cache storage: per layer, a K pool and a V pool of
// [num_blocks, block_size, kv_heads, head_dim] on the device. Tokens are written
// through ForwardBatch::slot_mapping (slot = block * block_size + offset) and read
// through each sequence's block table, both inside the attention op; models see
// the cache only through that op. Which blocks belong to which sequence is the
// engine's business (its block manager); this class only owns the memory.
#pragma once

#include "core/runtime/device_buffer.h"

#include <vector>

namespace banyan::core {

struct KvCacheConfig {
  int32_t num_layers = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 16;  ///< tokens per block
  int64_t num_blocks = 0;
  DType dtype = DType::f32;
};

class KvCache {
 public:
  /// Allocates and zeroes the pools. Throws banyan::Error on a bad config or OOM.
  KvCache(Backend& backend, const KvCacheConfig& config);

  /// Bytes one block takes over all layers, K and V.
  static size_t bytes_per_block(const KvCacheConfig& config);
  /// How many blocks fit in `bytes`.
  static int64_t blocks_for_bytes(const KvCacheConfig& config, size_t bytes);

  const KvCacheConfig& config() const { return cfg_; }
  int32_t block_size() const { return cfg_.block_size; }
  int64_t num_blocks() const { return cfg_.num_blocks; }
  int64_t num_slots() const { return cfg_.num_blocks * cfg_.block_size; }
  size_t bytes() const { return bytes_per_block(cfg_) * static_cast<size_t>(cfg_.num_blocks); }

  /// The K / V pool of `layer`: [num_blocks, block_size, kv_heads, head_dim].
  Tensor key(int32_t layer) const;
  Tensor value(int32_t layer) const;

 private:
  Tensor pool(const DeviceBuffer& b) const;
  KvCacheConfig cfg_;
  std::vector<DeviceBuffer> k_, v_;
};

}  // namespace banyan::core
