// The layout of one forward step, built by the engine (host memory) and consumed
// by the model runner, which moves it to the device in one copy per step.
#pragma once

#include <cstdint>
#include <vector>

namespace banyan::core {

/// One sequence's part of a step.
struct SeqSlice {
  int32_t query_start = 0;   ///< offset of its first new token in the flat token arrays
  int32_t query_len = 0;     ///< new tokens this step (prefill chunk, or 1 for decode)
  int32_t context_len = 0;   ///< tokens in its KV cache after this step (cached + new)
  int32_t block_offset = 0;  ///< offset of its block table in ForwardBatch::block_tables
  int32_t num_blocks = 0;    ///< blocks in its table
  int32_t logits_rows = 1;   ///< logits rows wanted: the last N new tokens (0: none)
  int32_t adapter_slot = -1; ///< adapter of this sequence (-1: base model)
};

/// Flat arrays over all new tokens of the step, sequences concatenated.
struct ForwardBatch {
  std::vector<int32_t> token_ids;     ///< [T]
  std::vector<int32_t> positions;     ///< [T] position of each token in its sequence
  std::vector<int32_t> slot_mapping;  ///< [T] KV slot: block_id * block_size + offset
  std::vector<int32_t> adapter_slots; ///< [T] per-token adapter slot (-1: none)
  std::vector<int32_t> block_tables;  ///< concatenated block tables
  std::vector<SeqSlice> seqs;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  /// Rows of the logits tensor the step returns, in sequence order.
  int32_t num_logits_rows() const {
    int32_t n = 0;
    for (const auto& s : seqs) n += s.logits_rows;
    return n;
  }
  void clear() { *this = ForwardBatch{}; }
};

}  // namespace banyan::core
