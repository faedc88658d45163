// KV-cache block bookkeeping: reference-counted blocks, copy-on-write sharing for
// forked sequences (n > 1, beams), and automatic prefix caching: every full block
// is hashed in a chain (previous block's hash, its tokens, the adapter) so that a
// new sequence with the same prefix reuses the computed blocks. Freed blocks that
// hold a cached prefix stay findable until they are reused, least recently freed
// first.
//
// The API pairs a check with a commit (can_allocate / allocate): the scheduler
// decides before anything changes. It never touches device memory.
// Thread-safety: none; owned by the engine thread.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace banyan::core {

using BlockHash = uint64_t;

/// The hash of a full block given its predecessor's hash (0 for the first).
BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, uint64_t adapter_id);

class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int32_t block_size, bool prefix_caching);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  /// Blocks not referenced by any sequence (cached or not).
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  double usage() const { return 1.0 - static_cast<double>(num_free()) / num_blocks(); }

  /// The longest run of leading hashes that are cached; takes no reference.
  std::vector<int32_t> lookup_prefix(std::span<const BlockHash> hashes);

  /// True when `fresh` new blocks can be allocated after taking `cached` (the
  /// blocks returned by lookup_prefix, some of which may sit on the free list).
  bool can_allocate(int32_t fresh, std::span<const int32_t> cached = {}) const;
  /// Takes a reference to a block (a prefix hit or a fork).
  void take(int32_t block);
  /// A new block with ref count 1; evicts the least recently freed cached block.
  /// Requires can_allocate(1).
  int32_t allocate();
  /// Drops one reference; at zero the block goes to the free list, keeping its hash.
  void release(int32_t block);
  /// Records that `block` now holds the full block with this hash.
  void set_hash(int32_t block, BlockHash hash);
  int32_t ref_count(int32_t block) const { return blocks_[block].refs; }

  /// Prefix-cache counters (blocks looked up / found), for metrics.
  int64_t queries() const { return queries_; }
  int64_t hits() const { return hits_; }
  /// Drops every cached hash (e.g. when an adapter is reloaded).
  void reset_prefix_cache();

  /// Internal invariants (free list consistent with ref counts, hash index valid);
  /// returns a description of the first violation or nullopt. For tests.
  std::optional<std::string> check_invariants() const;

 private:
  struct Block {
    int32_t refs = 0;
    std::optional<BlockHash> hash;
    std::list<int32_t>::iterator free_pos;  // valid when refs == 0
  };
  int32_t block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::list<int32_t> free_;  // front: evicted first
  std::unordered_map<BlockHash, int32_t> cached_;
  int64_t queries_ = 0, hits_ = 0;
};

}  // namespace banyan::core
