// Host-side launchers of the multi-LoRA kernels (lora_group.cu, lora_apply.cu):
// every row of a step picks its adapter slot; rows are grouped by slot on the
// device (so that a captured CUDA graph regroups on every replay), cut into tiles
// of up to kLoraTileRows rows of one slot, and each tile runs
//   shrink:  t[row, k] = scaling_s * x[row] · A_s[k]        (k < rank_s)
//   expand:  out[row] = out[row] + t[row] · B_s^T            (LoRA)
//            out[row] = dora_scale_s ⊙ (out[row] + t[row] · B_s^T) + dora_bias_s   (DoRA)
// with its own rank (no padding to the largest). Weights and activations are
// bf16, accumulation f32, one rounding at the store. The S-LoRA / Punica idea
// (segmented gather-matmuls over an adapter table), written for this backend.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace banyan::kernels::cuda {

/// One (module, slot) entry of the device table.
struct LoraEntry {
  const uint16_t* a = nullptr;      ///< [rank, in] bf16
  const uint16_t* bt = nullptr;     ///< [rank, out] bf16 (B transposed)
  const float* dora_scale = nullptr;  ///< [out] or null (LoRA)
  const float* dora_bias = nullptr;   ///< [out] or null
  int32_t rank = 0;                 ///< 0: the slot leaves the module alone
  float scaling = 0.0f;
  int64_t reserved = 0;             ///< keeps the entry 16-byte aligned (48 bytes)
};
static_assert(sizeof(LoraEntry) == 48, "LoraEntry is read as three 16-byte words");

/// Rows of one slot that share each read of A and B^T.
constexpr int kLoraTileRows = 8;
/// Largest rank the expand kernel keeps in shared memory.
constexpr int kLoraMaxRank = 256;

/// One tile: up to kLoraTileRows rows of one slot (order[begin .. begin + count)).
struct LoraTile {
  int32_t slot, begin, count, pad;
};

/// Upper bound of the tiles of a step of `rows` rows over `slots` slots.
inline int64_t lora_max_tiles(int64_t rows, int64_t slots) {
  const int64_t distinct = rows < slots ? rows : slots;
  return (rows + kLoraTileRows - 1) / kLoraTileRows + distinct;
}

/// Device scratch the grouping writes (sizes from lora_group_bytes()).
struct LoraGroups {
  int32_t* order = nullptr;      ///< [rows] rows sorted by slot
  LoraTile* tiles = nullptr;     ///< [lora_max_tiles]
  int32_t* num_tiles = nullptr;  ///< [1]
  int32_t* work = nullptr;       ///< [3 * rows] per-position scratch
};
/// Bytes of one LoraGroups for `rows` rows and `slots` slots (all parts 256-aligned).
size_t lora_group_bytes(int64_t rows, int64_t slots);
/// Carves a LoraGroups out of `base` (lora_group_bytes bytes).
LoraGroups lora_groups_at(void* base, int64_t rows, int64_t slots);

/// Groups rows by slots[row] (< 0 or >= num_slots: no adapter) into tiles. One block.
void lora_group(const int32_t* slots, int64_t rows, int32_t num_slots, const LoraGroups& g,
                cudaStream_t stream);

/// The shrink and expand of one module for every tile of `g`. `table` holds the
/// module's entries by slot; max_rank bounds every entry's rank (grid size); t is
/// f32 scratch [rows, max_rank] (rows in slot-sorted order). x [rows, in] bf16;
/// out [rows, n_out], bf16 (out_f32 false) or f32. in and n_out: any size (16-byte
/// paths when multiples of 8).
/// wait_first: the kernel launched just before wrote g (the grouping) or x; the
/// shrink then waits for it before reading anything (else it reads x and A while
/// that kernel finishes: programmatic dependent launch).
/// tile_rows: the most rows the caller expects of one slot (a hint, any tile is
/// computed right): 1 picks the variants for steps of distinct adapters (one row
/// per pass: fewer registers, more blocks per SM and more loads in flight).
void lora_shrink(const uint16_t* x, int64_t rows, int64_t in, const LoraEntry* table,
                 int32_t max_rank, const LoraGroups& g, int64_t max_tiles, float* t,
                 bool wait_first, cudaStream_t stream, int tile_rows = kLoraTileRows);
void lora_expand(const float* t, int64_t rows, int32_t max_rank, const LoraEntry* table,
                 const LoraGroups& g, int64_t max_tiles, void* out, bool out_f32, int64_t n_out,
                 cudaStream_t stream, int tile_rows = kLoraTileRows);

/// As lora_expand, writing each adapted row's delta (t · B^T, no DoRA) into the f32
/// buffer delta [rows, n_out] in row order (other rows untouched), for lora_merge.
void lora_expand_delta(const float* t, int64_t rows, int32_t max_rank, const LoraEntry* table,
                       const LoraGroups& g, int64_t max_tiles, float* delta, int64_t n_out,
                       cudaStream_t stream, int tile_rows = kLoraTileRows);
/// out[row] = out[row] + delta[row] (LoRA) or dora_scale ⊙ (out[row] + delta[row]) +
/// dora_bias (DoRA) for every row whose slot (slots[row], < num_slots) adapts the
/// module (table entry rank > 0); other rows untouched. out bf16 or f32. With n_out
/// % 8 == 0 and 16-byte aligned out and delta: 16-byte accesses, launched with
/// programmatic dependent launch after the base product.
void lora_merge(void* out, bool out_f32, const float* delta, const int32_t* slots, int64_t rows,
                int32_t num_slots, int64_t n_out, const LoraEntry* table, cudaStream_t stream);

/// Benchmark ablations; not thread-safe, set before launching (and capturing).
/// Launch the shrink, expand and merge with programmatic dependent launch (default)
/// or plainly.
void lora_set_pdl(bool on);
/// Use the variants for distinct adapters when tile_rows says so (default) or never.
void lora_set_distinct_variant(bool on);
/// The merge: 0 one thread per column (the first version), 1 (default) 16-byte
/// accesses, 2 also launched with programmatic dependent launch (measured 2026-11-25:
/// 0.5 ms/step slower with 8 adapters, 0.4 with 64, equal with 1).
void lora_set_merge_mode(int mode);
/// Input features each shrink warp reads (the warps of a rank split the input until
/// each has at most this many), for the lean variant and for the one-pass one:
/// default 2048 (8 loads per lane) and 1024 (4 loads per lane); 2048 for the lean
/// variant measured 0.3 ms/step faster with 64 distinct adapters (2026-11-25).
void lora_set_shrink_features(int lean, int one_pass);

// --- lora_dense.cu: the dense path (long runs of one adapter through cuBLASLt) ---
/// t[i] = bf16(t[i] * scaling).
void lora_scale_bf16(uint16_t* t, int64_t n, float scaling, cudaStream_t stream);
/// out [rows, n] = dora_scale ⊙ (out + delta) + dora_bias (bias may be null), per row.
void lora_dora_combine(void* out, bool out_f32, const uint16_t* delta, int64_t rows, int64_t n,
                       const float* dora_scale, const float* dora_bias, cudaStream_t stream);

}  // namespace banyan::kernels::cuda
