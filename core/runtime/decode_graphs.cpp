#include "core/runtime/decode_graphs.h"

#include "core/common/logging.h"
#include "core/runtime/linear.h"
#include "core/runtime/step_arena.h"

#ifdef BANYAN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#include <banyan/error.h>

#include <algorithm>
#include <map>
#include <string>

namespace banyan::core {
namespace {

constexpr int32_t kMinContextBound = 256;
constexpr int kMaxCaptureFailures = 2;  // per key, until something moves
constexpr int64_t kFixedInts = 11;      // per sequence, before the block tables

int32_t blocks_for(int32_t tokens, int32_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace

std::vector<int32_t> capture_sizes(int32_t max_batch_size) {
  std::vector<int32_t> out;
  for (int32_t s : {1, 2, 4, 8})
    if (s < max_batch_size) out.push_back(s);
  for (int64_t p = 16; p < max_batch_size; p *= 2) {
    out.push_back(static_cast<int32_t>(p));
    if (p * 3 / 2 < max_batch_size) out.push_back(static_cast<int32_t>(p * 3 / 2));
  }
  if (max_batch_size >= 1) out.push_back(max_batch_size);
  return out;
}

int32_t padded_size(std::span<const int32_t> sizes, int32_t n) {
  auto it = std::lower_bound(sizes.begin(), sizes.end(), n);
  return it == sizes.end() ? 0 : *it;
}

int32_t context_bound(int32_t max_context_len) {
  int64_t b = kMinContextBound;
  while (b < max_context_len) b *= 2;
  return static_cast<int32_t>(std::min<int64_t>(b, int64_t{1} << 30));
}

bool is_pure_decode(const ForwardBatch& batch) {
  if (batch.seqs.empty()) return false;
  for (const auto& s : batch.seqs)
    if (s.query_len != 1 || s.logits_rows != 1) return false;
  return true;
}

void pad_decode_batch(const ForwardBatch& in, const DecodeGraphKey& key, int32_t block_size,
                      ForwardBatch& out) {
  const int32_t S = static_cast<int32_t>(in.seqs.size()), P = key.batch_size;
  if (S > P || block_size <= 0)
    throw Error(Code::internal, "decode graphs: " + std::to_string(S) + " sequences padded to " +
                                    std::to_string(P));
  out.token_ids.assign(in.token_ids.begin(), in.token_ids.end());
  out.token_ids.resize(P, 0);
  out.positions.assign(in.positions.begin(), in.positions.end());
  out.positions.resize(P, 0);
  out.slot_mapping.assign(in.slot_mapping.begin(), in.slot_mapping.end());
  out.slot_mapping.resize(P, -1);
  out.adapter_slots.clear();
  out.block_tables.clear();
  out.seqs.clear();
  for (int32_t i = 0; i < S; ++i) {
    const SeqSlice& q = in.seqs[i];
    const int32_t need = blocks_for(q.context_len, block_size);
    const int32_t offset = static_cast<int32_t>(out.block_tables.size());
    out.block_tables.insert(out.block_tables.end(), in.block_tables.begin() + q.block_offset,
                            in.block_tables.begin() + q.block_offset + need);
    out.adapter_slots.push_back(in.adapter_slots.empty() ? q.adapter_slot : in.adapter_slots[i]);
    out.seqs.push_back(SeqSlice{i, 1, q.context_len, offset, need, 1, out.adapter_slots.back()});
  }
  for (int32_t i = S; i < P; ++i) {
    out.seqs.push_back(SeqSlice{i, 1, 1, static_cast<int32_t>(out.block_tables.size()), 1, 1, -1});
    out.block_tables.push_back(0);
    out.adapter_slots.push_back(-1);
  }
}

size_t decode_layout_capacity(const DecodeGraphKey& key, int32_t block_size) {
  const int64_t P = key.batch_size;
  return static_cast<size_t>(P * kFixedInts + P * blocks_for(key.context_bound, block_size));
}

StepLayout pack_decode_layout(const ForwardBatch& b, const DecodeGraphKey& key, int32_t block_size,
                              Device device, int32_t* base, std::vector<int32_t>& st) {
  const int32_t P = key.batch_size;
  const size_t capacity = decode_layout_capacity(key, block_size);
  if (static_cast<int32_t>(b.seqs.size()) != P || b.num_tokens() != P ||
      static_cast<int32_t>(b.adapter_slots.size()) != P ||
      static_cast<size_t>(P) * kFixedInts + b.block_tables.size() > capacity)
    throw Error(Code::internal, "decode graphs: the batch is not padded to its key");
  st.clear();
  st.insert(st.end(), b.token_ids.begin(), b.token_ids.end());
  st.insert(st.end(), b.positions.begin(), b.positions.end());
  st.insert(st.end(), b.slot_mapping.begin(), b.slot_mapping.end());
  st.insert(st.end(), b.adapter_slots.begin(), b.adapter_slots.end());
  for (int32_t s = 0; s < P; ++s) st.push_back(s);  // token_seq
  for (const auto& q : b.seqs) st.insert(st.end(), {q.query_start, q.query_len, q.context_len, q.block_offset});
  for (int32_t s = 0; s < P; ++s) st.push_back(s);  // logits rows
  st.insert(st.end(), b.adapter_slots.begin(), b.adapter_slots.end());  // logits adapter slots
  st.insert(st.end(), b.block_tables.begin(), b.block_tables.end());

  StepLayout l;
  l.num_tokens = P;
  l.num_seqs = P;
  l.max_query_len = 1;
  l.max_context_len = key.context_bound;
  l.has_adapters = key.adapters;
  int32_t* cursor = base;
  auto take = [&](std::initializer_list<int64_t> shape) {
    Tensor t(cursor, DType::i32, shape, device);
    cursor += t.numel();
    return t;
  };
  l.token_ids = take({P});
  l.positions = take({P});
  l.slot_mapping = take({P});
  l.adapter_slots = take({P});
  l.token_seq = take({P});
  l.seq_info = take({P, kSeqInfoFields});
  l.logits_rows = take({P});
  l.logits_adapter_slots = take({P});
  l.block_tables = take({static_cast<int64_t>(capacity) - P * kFixedInts});
  return l;
}

// ---------------------------------------------------------------- DecodeGraphs --

struct DecodeGraphs::Impl {
  Backend& backend;
  DecodeGraphOptions opts;
  Stats stats;
  ForwardBatch padded;
  std::vector<int32_t> staging;
#ifdef BANYAN_WITH_CUDA
  kernels::cuda::CudaBackend* cuda = nullptr;
  struct Entry {
    bool warm = false;        // ran once op by op: plans, workspaces and tables exist
    int failures = 0;
    kernels::cuda::Graph graph;
    uint64_t generation = 0;  // the adapter hook's, at capture
    Tensor logits;            // where the graph writes them
    size_t arena_used = 0;    // arena bytes the captured step allocated
  };
  // What every graph points at; any change drops them all.
  struct Where {
    const void* arena = nullptr;
    size_t arena_capacity = 0;
    const void* kv = nullptr;
    int64_t kv_blocks = 0;
    uint64_t epoch = 0;
    const void* hook = nullptr;
    bool operator==(const Where&) const = default;
  };
  Where where;
  std::map<DecodeGraphKey, Entry> entries;
#endif

  Impl(Backend& b, const DecodeGraphOptions& o) : backend(b), opts(o) {
    if (opts.batch_sizes.empty()) opts.batch_sizes = capture_sizes(opts.max_batch_size);
    for (size_t i = 0; i < opts.batch_sizes.size(); ++i)
      if (opts.batch_sizes[i] < 1 || (i > 0 && opts.batch_sizes[i] <= opts.batch_sizes[i - 1]))
        throw Error(Code::invalid_argument,
                    "decode graph batch sizes must be positive and increasing");
#ifdef BANYAN_WITH_CUDA
    cuda = dynamic_cast<kernels::cuda::CudaBackend*>(&b);
#endif
  }
};

DecodeGraphs::DecodeGraphs(Backend& backend, const DecodeGraphOptions& options)
    : impl_(std::make_unique<Impl>(backend, options)) {}

DecodeGraphs::~DecodeGraphs() = default;

GraphMode DecodeGraphs::mode() const { return impl_->opts.mode; }
void DecodeGraphs::set_mode(GraphMode mode) { impl_->opts.mode = mode; }
const std::vector<int32_t>& DecodeGraphs::batch_sizes() const { return impl_->opts.batch_sizes; }

DecodeGraphs::Stats DecodeGraphs::stats() const {
  Stats s = impl_->stats;
  s.graphs = 0;
#ifdef BANYAN_WITH_CUDA
  for (const auto& [key, e] : impl_->entries) s.graphs += e.graph ? 1 : 0;
#endif
  return s;
}

std::optional<Tensor> DecodeGraphs::run(const ForwardBatch& batch, const Env& env, uint64_t step_id,
                                        StepLayout& layout, const Forward& forward) {
  Impl& m = *impl_;
  bool use_graph = m.opts.mode == GraphMode::graphs;
#ifdef BANYAN_WITH_CUDA
  if (!m.cuda) use_graph = false;
#else
  use_graph = false;
#endif
  if (m.opts.mode == GraphMode::eager || (m.opts.mode == GraphMode::graphs && !use_graph) ||
      env.rope_host_rows || !is_pure_decode(batch))
    return std::nullopt;
  const int32_t S = static_cast<int32_t>(batch.seqs.size());
  const int32_t P = padded_size(m.opts.batch_sizes, S);
  if (P == 0) return std::nullopt;
  int32_t longest = 0;
  bool adapters = false;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    longest = std::max(longest, batch.seqs[i].context_len);
    adapters |= (batch.adapter_slots.empty() ? batch.seqs[i].adapter_slot : batch.adapter_slots[i]) >= 0;
  }
  if (longest > m.opts.max_context_len) return std::nullopt;
  // Outside any capture: the hook uploads staged table changes here.
  std::optional<uint64_t> generation = uint64_t{0};
  if (use_graph && adapters && env.hook) {
    generation = env.hook->graph_generation();
    if (!generation) use_graph = false;
  }

  const DecodeGraphKey key{P, context_bound(longest), adapters};
  pad_decode_batch(batch, key, env.block_size, m.padded);
  env.arena.reset();
  auto* base = static_cast<int32_t*>(
      env.arena.allocate(decode_layout_capacity(key, env.block_size) * sizeof(int32_t)));
  layout = pack_decode_layout(m.padded, key, env.block_size, m.backend.device(), base, m.staging);
  layout.step_id = step_id;
  m.backend.upload(base, m.staging.data(), m.staging.size() * sizeof(int32_t));
  auto real_rows = [S](Tensor t) {
    t.shape[0] = S;
    return t;
  };
  auto eager = [&] {
    ++m.stats.padded_eager;
    return real_rows(forward(m.padded, layout));
  };
  if (!use_graph) return eager();

#ifdef BANYAN_WITH_CUDA
  const Impl::Where now{env.arena.base(), env.arena.capacity(), env.kv_cache, env.kv_blocks,
                        m.cuda->graph_epoch(), env.hook};
  if (!(now == m.where)) {
    bool dropped = false;
    for (auto& [k, e] : m.entries) {
      dropped |= static_cast<bool>(e.graph);
      e.graph = kernels::cuda::Graph();
      e.failures = 0;
    }
    m.stats.invalidations += dropped ? 1 : 0;
    m.where = now;
  }
  Impl::Entry& e = m.entries[key];
  if (e.graph && e.generation == *generation) {
    // The captured step allocated past the layout: keep those bytes (the logits)
    // out of reach of anything that allocates before the next step.
    if (e.arena_used > env.arena.used()) env.arena.allocate(e.arena_used - env.arena.used());
    m.cuda->launch(e.graph);
    ++m.stats.replays;
    return real_rows(e.logits);
  }
  e.graph = kernels::cuda::Graph();
  if (!e.warm || e.failures >= kMaxCaptureFailures) {
    e.warm = true;
    return eager();
  }
  Tensor logits;
  try {
    m.cuda->begin_capture();
    logits = forward(m.padded, layout);
    e.graph = m.cuda->end_capture();
  } catch (const std::exception& ex) {
    m.cuda->abort_capture();
    e.graph = kernels::cuda::Graph();
    ++e.failures;
    ++m.stats.capture_failures;
    log_warn("decode graph for batch " + std::to_string(P) + ", context bound " +
             std::to_string(key.context_bound) + (adapters ? ", adapters" : "") +
             ": capture failed, the step runs op by op: " + ex.what());
    return eager();
  }
  e.logits = logits;
  e.generation = *generation;
  e.arena_used = env.arena.used();
  ++m.stats.captures;
  m.cuda->launch(e.graph);
  return real_rows(e.logits);
#else
  return eager();
#endif
}

}  // namespace banyan::core
