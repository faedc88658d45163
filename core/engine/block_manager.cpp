#include "core/engine/block_manager.h"

#include <banyan/error.h>

#include <string>

namespace banyan::core {

BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, uint64_t adapter_id) {
  // 64-bit FNV-1a over (parent, adapter, tokens), then a final avalanche (splitmix).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  mix(adapter_id);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

BlockManager::BlockManager(int32_t num_blocks, int32_t block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching), blocks_(num_blocks) {
  if (num_blocks <= 0 || block_size <= 0)
    throw Error("KV cache needs at least one block of at least one token (got " +
                std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) + ")");
  for (int32_t i = 0; i < num_blocks; ++i) blocks_[i].free_pos = free_.insert(free_.end(), i);
}

std::vector<int32_t> BlockManager::lookup_prefix(std::span<const BlockHash> hashes) {
  std::vector<int32_t> out;
  if (!prefix_caching_) return out;
  for (BlockHash h : hashes) {
    ++queries_;
    auto it = cached_.find(h);
    if (it == cached_.end()) break;
    ++hits_;
    out.push_back(it->second);
  }
  return out;
}

bool BlockManager::can_allocate(int32_t fresh, std::span<const int32_t> cached) const {
  int32_t available = num_free();
  for (int32_t b : cached)
    if (blocks_[b].refs == 0) --available;  // taking it removes it from the free list
  return fresh <= available;
}

void BlockManager::take(int32_t block) {
  Block& b = blocks_[block];
  if (b.refs == 0) free_.erase(b.free_pos);
  ++b.refs;
}

int32_t BlockManager::allocate() {
  if (free_.empty()) throw Error(Code::internal, "KV block allocation with no free block");
  int32_t id = free_.front();
  free_.pop_front();
  Block& b = blocks_[id];
  if (b.hash) {
    auto it = cached_.find(*b.hash);
    if (it != cached_.end() && it->second == id) cached_.erase(it);
    b.hash.reset();
  }
  b.refs = 1;
  return id;
}

void BlockManager::release(int32_t block) {
  Block& b = blocks_[block];
  if (b.refs <= 0)
    throw Error(Code::internal, "KV block " + std::to_string(block) + " released with no reference");
  if (--b.refs == 0) {
    // Cached blocks go to the back (kept longest); uncached ones to the front.
    b.free_pos = b.hash ? free_.insert(free_.end(), block) : free_.insert(free_.begin(), block);
  }
}

void BlockManager::set_hash(int32_t block, BlockHash hash) {
  if (!prefix_caching_) return;
  Block& b = blocks_[block];
  if (b.hash) return;
  auto [it, inserted] = cached_.try_emplace(hash, block);
  if (inserted) b.hash = hash;  // an equal block already cached keeps the entry
}

void BlockManager::reset_prefix_cache() {
  cached_.clear();
  for (auto& b : blocks_) b.hash.reset();
}

std::optional<std::string> BlockManager::check_invariants() const {
  size_t zero = 0;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].refs < 0) return "block " + std::to_string(i) + " has a negative ref count";
    if (blocks_[i].refs == 0) ++zero;
  }
  if (zero != free_.size())
    return "free list holds " + std::to_string(free_.size()) + " blocks but " +
           std::to_string(zero) + " have no reference";
  for (int32_t id : free_)
    if (blocks_[id].refs != 0) return "block " + std::to_string(id) + " is free and referenced";
  for (const auto& [h, id] : cached_)
    if (!blocks_[id].hash || *blocks_[id].hash != h)
      return "hash index points at block " + std::to_string(id) + " which holds another hash";
  return std::nullopt;
}

}  // namespace banyan::core
