// core::LoraKernels on the CUDA backend: the (module, slot) tables live on the
// device (one LoraEntry per entry, pointing into the adapter pool's device
// images), rows are grouped by slot on the device once per step and slots array,
// and each module's delta is one shrink and one expand launch (lora.h), on a side
// stream beside the base product when prepare() announced the module (the hook
// does, before the product), then merged into out by apply() (and, with lookahead,
// those of the modules that follow with the same input: see below; the modules of
// a fused group, all announced before their one product, each on a side stream of
// their own: set_lora_group_streams). Outside
// graph capture, a run of at least 128 consecutive token rows of one adapter (a
// prefill chunk) takes cuBLASLt instead (x·A^T rounded to bf16 and scaled, then
// accumulated ·B^T into out, or the DoRA combination), the kernels the rest.
//
// Graphs: a captured step replays the grouping (each capture records its own, at
// the first module that reads a slots array), shrink and expand launches with
// the grid sizes of capture time (the tables' slot count and each module's largest
// rank). Table changes made by set() are staged and uploaded by the next apply()
// or flush(); flush() returns a generation that changes whenever a captured graph
// would be stale (table moved, more slots, a larger rank, scratch or grouping
// buffers grown), so its owner knows to capture again; graph_generation() is
// flush() for the ModelRunner's decode graphs.
//
// Thread-safety: as core::LoraKernels (set() from any thread, the rest on the
// engine thread).
#pragma once

#include "core/adapters/lora_kernels.h"

#include <cstdint>
#include <memory>

namespace banyan::kernels::cuda {

class CudaLoraKernels;

/// The multi-LoRA kernels of `backend`, which must be a CudaBackend (else
/// Error(invalid_argument)). Adapter weights must be BF16 (the activation dtype).
std::unique_ptr<core::LoraKernels> make_cuda_lora_kernels(core::Backend& backend);

/// Overlap (default on): prepare() computes the deltas on a side stream while the
/// base product runs, apply() waits for them and adds them (one merge kernel on the
/// critical path). Off: apply() does the shrink and expand after the product.
void set_lora_overlap(core::LoraKernels& kernels, bool on);

/// Late expand: with overlap, prepare() runs only the shrink on the side stream and
/// apply() the expand into out after the product (B^T prefetched into L2 while the
/// product finishes): no f32 delta buffer written and read, no merge. Otherwise
/// shrink and expand run on the side stream, merged by apply(). off (default);
/// shared: in steps whose tiles have several rows (few adapters, by the batch's
/// host slots); always. Measured slower (H100, Llama-3-8B shape, batch 64: 1 adapter
/// 10.79 vs 9.06 ms a step, 8 adapters 11.78 vs 10.25): the expand's chain of
/// dependent loads on the critical path costs more than the merge's one.
enum class LoraLateExpand { off, shared, always };
void set_lora_late_expand(core::LoraKernels& kernels, LoraLateExpand mode);

/// Lookahead: with overlap (and not the late expand), prepare() of a module also launches the deltas of the
/// modules learned to follow it with the same input (the next prepare() of the
/// previous step with the same x and rows: q -> k -> v, gate -> up), up to two, for
/// steps of at most 1024 rows; their prepare() then claims them (same x, rows, step
/// and out features; else they are dropped and computed anew). It assumes what
/// every model does: modules that take the same x in a row read it unchanged
/// between them (a product whose out overlaps x stops the lookahead).
/// distinct (default): only in steps where every row has its own adapter (measured:
/// it helps there, and costs ~0.3 ms a step with 1 or 8 adapters at batch 64).
enum class LoraLookahead { off, distinct, always };
void set_lora_lookahead(core::LoraKernels& kernels, LoraLookahead mode);

/// Group streams (default on): the modules of a fused group (LinearRegistry::forward_n
/// on a step with adapters: every module's prepare() with the same x, then the one
/// product, then every apply()) each compute their deltas on a side stream of their
/// own (up to three), side by side beside the product; off: one after another on one
/// side stream. Measured (H100, b64, bench/lora_gpu/NOTES.md): on pays 2.8% at one
/// adapter, 6.2% at 8, nothing at 64 distinct adapters (bench --fuse-ab 1).
void set_lora_group_streams(core::LoraKernels& kernels, bool on);

/// Counters of the lookahead (for tests and the benchmark).
struct LoraStats {
  uint64_t ahead_launched = 0;  ///< modules' deltas launched ahead of their prepare()
  uint64_t ahead_claimed = 0;   ///< of those, claimed by their prepare()
};
LoraStats lora_stats(const core::LoraKernels& kernels);

/// Uploads staged table changes (engine thread, not while capturing) and returns
/// the generation described above. `kernels` must come from make_cuda_lora_kernels.
uint64_t flush_lora_tables(core::LoraKernels& kernels);

}  // namespace banyan::kernels::cuda
