// CUDA graphs for decode steps. A step in which every sequence adds one token
// (and wants its logits) is padded to a captured batch size (1, 2, 4, 8, 16, 24,
// 32, 48, 64, 96, 128, ...) and planned for a context bound (a power of two, at
// least 256) instead of its exact longest context, so that the same kernels with
// the same grids serve every step of that (size, bound, adapters) key. The first
// step of a key runs op by op (it makes the GEMM plans, workspaces and tables the
// capture needs), the second is captured into a graph and launched, later ones
// replay it: the step's layout is uploaded into the same arena bytes first, and
// the graph's logits are always at the same address.
//
// Padding sequences come last: token 0 at position 0, KV slot -1 (nothing is
// written), a context of one token over block 0, no adapter; their logits rows are
// left out of the result. Block tables are packed last in the layout and only
// the entries a sequence's context needs are uploaded, so the upload stays
// proportional to the real contexts.
//
// Graphs are dropped (captured again on use) when anything they point at moves:
// the step arena (it grew), the KV cache (sized after profiling), the CUDA
// backend's workspaces (graph_epoch()), the adapter hook, or, for steps with
// adapters, the hook's graph_generation(). Steps with adapters run eagerly when
// the hook has no generation (it does host work per step). Other steps (prefill,
// mixed, larger than the largest size, contexts beyond max_context_len, dynamic
// NTK rotary beyond max_position) run eagerly as before. Off the CUDA backend
// there are no graphs: `graphs` mode is plain eager there.
//
// Thread-safety: the engine thread only, like the ModelRunner that owns it.
#pragma once

#include "core/runtime/backend.h"
#include "core/runtime/forward_batch.h"

#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace banyan::core {

class StepArena;
class LinearAdapterHook;

enum class GraphMode {
  eager,         ///< every step op by op (engine.enforce_eager)
  padded_eager,  ///< decode steps padded and bounded as for graphs, op by op (tests)
  graphs,        ///< decode steps replay captured graphs (CUDA; elsewhere plain eager)
};

struct DecodeGraphOptions {
  GraphMode mode = GraphMode::graphs;
  /// Largest batch captured; larger decode steps run eagerly.
  int32_t max_batch_size = 256;
  /// Longest context a captured step may hold (vLLM's max_seq_len_to_capture).
  int32_t max_context_len = 8192;
  /// Captured batch sizes, ascending; empty: capture_sizes(max_batch_size).
  std::vector<int32_t> batch_sizes;
};

/// 1, 2, 4, 8, then powers of two p >= 16 and 1.5 p (16, 24, 32, 48, 64, 96, 128,
/// 192, 256, ...) below max_batch_size, then max_batch_size itself. Empty for max < 1.
std::vector<int32_t> capture_sizes(int32_t max_batch_size);
/// The smallest of `sizes` (ascending) at least n, or 0 when there is none.
int32_t padded_size(std::span<const int32_t> sizes, int32_t n);
/// The context bound a decode step is planned for: the least power of two at
/// least max(max_context_len, 256).
int32_t context_bound(int32_t max_context_len);
/// Every sequence adds one token and wants its logits row.
bool is_pure_decode(const ForwardBatch& batch);

/// What a graph is captured for.
struct DecodeGraphKey {
  int32_t batch_size = 0;
  int32_t context_bound = 0;
  bool adapters = false;
  auto operator<=>(const DecodeGraphKey&) const = default;
};

/// `in` (a validated pure-decode batch of at most key.batch_size sequences)
/// padded to key.batch_size sequences as described above, each sequence's block
/// table cut to the blocks its context uses. Reuses `out`'s storage.
void pad_decode_batch(const ForwardBatch& in, const DecodeGraphKey& key, int32_t block_size,
                      ForwardBatch& out);

/// Ints of a padded decode layout: 11 per sequence, then the block tables, at
/// most key.batch_size * ceil(context_bound / block_size) entries.
size_t decode_layout_capacity(const DecodeGraphKey& key, int32_t block_size);

/// Packs the padded batch into `staging` in the order of the layout (ids,
/// positions, slots, adapter slots, token_seq, seq_info, logits rows, logits
/// adapter slots, block tables) and returns the layout whose tensors start at
/// `device_base` (decode_layout_capacity ints), with max_context_len the key's
/// bound. Upload staging.size() ints to device_base to fill it.
StepLayout pack_decode_layout(const ForwardBatch& padded, const DecodeGraphKey& key,
                              int32_t block_size, Device device, int32_t* device_base,
                              std::vector<int32_t>& staging);

class DecodeGraphs {
 public:
  DecodeGraphs(Backend& backend, const DecodeGraphOptions& options);
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  /// What the step runs in, as the ModelRunner has it now.
  struct Env {
    StepArena& arena;
    const void* kv_cache = nullptr;  ///< layer 0's K pool (moves when the cache is resized)
    int64_t kv_blocks = 0;
    int32_t block_size = 16;
    LinearAdapterHook* hook = nullptr;
    bool rope_host_rows = false;     ///< the step uploads rotary rows (RopeCache::host_rows)
  };
  /// Runs the model on a (padded) batch and layout, returning its logits [R, V].
  using Forward = std::function<Tensor(const ForwardBatch&, const StepLayout&)>;

  /// When `batch` (validated) is a decode step this mode takes, runs it padded
  /// (resetting env.arena and uploading the layout there; `layout` gets it) and
  /// returns its logits [S, V] (the padding's rows left out), valid until the next
  /// step. nullopt: the caller runs the step as usual.
  std::optional<Tensor> run(const ForwardBatch& batch, const Env& env, uint64_t step_id,
                            StepLayout& layout, const Forward& forward);

  GraphMode mode() const;
  void set_mode(GraphMode mode);
  const std::vector<int32_t>& batch_sizes() const;

  struct Stats {
    int64_t padded_eager = 0;      ///< padded steps run op by op (first of a key, no graph)
    int64_t captures = 0;
    int64_t replays = 0;           ///< launches of a graph captured before
    int64_t capture_failures = 0;  ///< captures abandoned (the step then ran op by op)
    int64_t invalidations = 0;     ///< times every graph was dropped (something moved)
    int64_t graphs = 0;            ///< graphs held now
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::core
