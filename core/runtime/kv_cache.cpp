#include "core/runtime/kv_cache.h"

#include <string>

namespace banyan::core {

KvCache::KvCache(Backend& backend, const KvCacheConfig& c) : cfg_(c) {
  if (c.num_layers <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 || c.block_size <= 0 ||
      c.num_blocks <= 0)
    throw Error("KV cache: layers (" + std::to_string(c.num_layers) + "), kv heads (" +
                std::to_string(c.num_kv_heads) + "), head_dim (" + std::to_string(c.head_dim) +
                "), block_size (" + std::to_string(c.block_size) + ") and num_blocks (" +
                std::to_string(c.num_blocks) + ") must all be positive");
  if (c.num_blocks * c.block_size > INT32_MAX)
    throw Error("KV cache: " + std::to_string(c.num_blocks) + " blocks of " +
                std::to_string(c.block_size) + " tokens exceed the i32 slot range");
  const size_t layer_bytes = bytes_per_block(c) / (2 * static_cast<size_t>(c.num_layers)) *
                             static_cast<size_t>(c.num_blocks);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    k_.emplace_back(backend, layer_bytes);
    v_.emplace_back(backend, layer_bytes);
    backend.fill_zero(k_.back().data(), layer_bytes);
    backend.fill_zero(v_.back().data(), layer_bytes);
  }
}

size_t KvCache::bytes_per_block(const KvCacheConfig& c) {
  return 2 * static_cast<size_t>(c.num_layers) * static_cast<size_t>(c.block_size) *
         static_cast<size_t>(c.num_kv_heads) * static_cast<size_t>(c.head_dim) *
         dtype_size(c.dtype);
}

int64_t KvCache::blocks_for_bytes(const KvCacheConfig& c, size_t bytes) {
  const size_t per = bytes_per_block(c);
  return per ? static_cast<int64_t>(bytes / per) : 0;
}

Tensor KvCache::pool(const DeviceBuffer& b) const {
  return b.view(cfg_.dtype, {cfg_.num_blocks, cfg_.block_size, cfg_.num_kv_heads, cfg_.head_dim});
}

Tensor KvCache::key(int32_t layer) const { return pool(k_.at(static_cast<size_t>(layer))); }
Tensor KvCache::value(int32_t layer) const { return pool(v_.at(static_cast<size_t>(layer))); }

}  // namespace banyan::core
