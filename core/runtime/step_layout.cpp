#include "core/runtime/step_layout.h"

#include "core/runtime/step_arena.h"

#include <banyan/error.h>

#include <algorithm>
#include <string>

namespace banyan::core {
namespace {

std::string seq_name(size_t s) { return "forward batch: sequence " + std::to_string(s); }

}  // namespace

void validate_batch(const ForwardBatch& b, const StepLimits& lim) {
  const size_t T = b.token_ids.size();
  if (T == 0) throw Error("forward batch: no tokens");
  if (b.positions.size() != T || b.slot_mapping.size() != T ||
      (!b.adapter_slots.empty() && b.adapter_slots.size() != T))
    throw Error("forward batch: token_ids has " + std::to_string(T) + " entries but positions " +
                std::to_string(b.positions.size()) + ", slot_mapping " +
                std::to_string(b.slot_mapping.size()) + ", adapter_slots " +
                std::to_string(b.adapter_slots.size()) + " (0 or the same)");
  if (b.seqs.empty()) throw Error("forward batch: no sequences");
  int64_t next = 0;
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const SeqSlice& q = b.seqs[s];
    const std::string at = seq_name(s);
    if (q.query_start != next)
      throw Error(at + ": query_start " + std::to_string(q.query_start) + ", expected " +
                  std::to_string(next) + " (sequences must be contiguous and in order)");
    if (q.query_len <= 0 || q.query_start + static_cast<int64_t>(q.query_len) > static_cast<int64_t>(T))
      throw Error(at + ": query_len " + std::to_string(q.query_len) + " is out of range");
    if (q.context_len < q.query_len)
      throw Error(at + ": context_len " + std::to_string(q.context_len) +
                  " is smaller than query_len " + std::to_string(q.query_len));
    if (q.num_blocks < 0 || q.block_offset < 0 ||
        static_cast<size_t>(q.block_offset) + static_cast<size_t>(q.num_blocks) > b.block_tables.size())
      throw Error(at + ": block table [" + std::to_string(q.block_offset) + ", +" +
                  std::to_string(q.num_blocks) + ") is outside block_tables (" +
                  std::to_string(b.block_tables.size()) + " entries)");
    if (static_cast<int64_t>(q.num_blocks) * lim.block_size < q.context_len)
      throw Error(at + ": context_len " + std::to_string(q.context_len) + " needs " +
                  std::to_string((q.context_len + lim.block_size - 1) / lim.block_size) +
                  " blocks of " + std::to_string(lim.block_size) + ", table has " +
                  std::to_string(q.num_blocks));
    for (int32_t i = 0; i < q.num_blocks; ++i) {
      int32_t blk = b.block_tables[q.block_offset + i];
      if (blk < 0 || blk >= lim.num_blocks)
        throw Error(at + ": block id " + std::to_string(blk) + " is outside the KV cache (" +
                    std::to_string(lim.num_blocks) + " blocks)");
    }
    if (q.logits_rows < 0 || q.logits_rows > q.query_len)
      throw Error(at + ": logits_rows " + std::to_string(q.logits_rows) + " is not in [0, " +
                  std::to_string(q.query_len) + "]");
    for (int32_t i = 0; i < q.query_len; ++i) {
      const size_t t = static_cast<size_t>(q.query_start + i);
      const int32_t p = q.context_len - q.query_len + i;
      const int64_t want =
          static_cast<int64_t>(b.block_tables[q.block_offset + p / lim.block_size]) *
              lim.block_size + p % lim.block_size;
      if (b.slot_mapping[t] != want)
        throw Error(at + ", token " + std::to_string(t) + ": slot_mapping " +
                    std::to_string(b.slot_mapping[t]) + " but its block table puts index " +
                    std::to_string(p) + " at slot " + std::to_string(want));
      if (b.token_ids[t] < 0 || b.token_ids[t] >= lim.vocab_size)
        throw Error(at + ", token " + std::to_string(t) + ": token id " +
                    std::to_string(b.token_ids[t]) + " is outside the vocabulary (" +
                    std::to_string(lim.vocab_size) + ")");
      if (b.positions[t] < 0)
        throw Error(at + ", token " + std::to_string(t) + ": negative position");
    }
    next += q.query_len;
  }
  if (next != static_cast<int64_t>(T))
    throw Error("forward batch: sequences cover " + std::to_string(next) + " of " +
                std::to_string(T) + " tokens");
}

StepLayout upload_layout(const ForwardBatch& b, Backend& backend, StepArena& arena,
                         std::vector<int32_t>& st) {
  const int32_t T = b.num_tokens(), S = static_cast<int32_t>(b.seqs.size());
  const int32_t R = b.num_logits_rows();
  const int32_t B = static_cast<int32_t>(b.block_tables.size());
  StepLayout l;
  l.num_tokens = T;
  l.num_seqs = S;
  st.clear();
  auto append = [&](auto&& range) { st.insert(st.end(), range.begin(), range.end()); };
  // Order: ids, positions, slots, adapter slots, token_seq, seq_info, tables, logits rows,
  // logits adapter slots.
  append(b.token_ids);
  append(b.positions);
  append(b.slot_mapping);
  const size_t adapters_at = st.size();
  if (b.adapter_slots.empty()) {
    for (const auto& q : b.seqs) st.insert(st.end(), q.query_len, q.adapter_slot);
  } else {
    append(b.adapter_slots);
  }
  for (int32_t s = 0; s < S; ++s) st.insert(st.end(), b.seqs[s].query_len, s);
  for (const auto& q : b.seqs) {
    st.insert(st.end(), {q.query_start, q.query_len, q.context_len, q.block_offset});
    l.max_query_len = std::max(l.max_query_len, q.query_len);
    l.max_context_len = std::max(l.max_context_len, q.context_len);
  }
  append(b.block_tables);
  const size_t rows_at = st.size();
  for (const auto& q : b.seqs)
    for (int32_t r = q.query_len - q.logits_rows; r < q.query_len; ++r)
      st.push_back(q.query_start + r);
  for (int32_t r = 0; r < R; ++r) st.push_back(st[adapters_at + st[rows_at + r]]);
  for (int32_t t = 0; t < T; ++t) l.has_adapters |= st[adapters_at + t] >= 0;

  auto* base = static_cast<int32_t*>(arena.allocate(st.size() * sizeof(int32_t)));
  backend.upload(base, st.data(), st.size() * sizeof(int32_t));
  const Device dev = backend.device();
  int32_t* cursor = base;
  auto take = [&](std::initializer_list<int64_t> shape) {
    Tensor t(cursor, DType::i32, shape, dev);
    cursor += t.numel();
    return t;
  };
  l.token_ids = take({T});
  l.positions = take({T});
  l.slot_mapping = take({T});
  l.adapter_slots = take({T});
  l.token_seq = take({T});
  l.seq_info = take({S, kSeqInfoFields});
  l.block_tables = take({B});
  l.logits_rows = take({R});
  l.logits_adapter_slots = take({R});
  return l;
}

}  // namespace banyan::core
