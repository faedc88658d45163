// The device memory of resident adapters: a paged pool with a budget in bytes.
//
// Memory is reserved from the Backend in large chunks, grown lazily up to the budget
// and never per adapter: on CUDA a cudaMalloc / cudaFree at every load and eviction
// would stall the device while other requests run. Chunks within the budget stay
// until the pool is destroyed; pages inside them are reused by the next adapter.
// Chunks are divided into pages of one fixed size (the budget counts whole pages:
// floor(budget_bytes / page_bytes), bytes reported = pages x page_bytes).
//
// An adapter is placed module by module: the LoRA kernels take one pointer set per
// (module, slot) (LoraKernels::set), so only each module's segment (A, B^T and the
// DoRA vectors: see module_segments() in packed_adapter.h) must be contiguous; each
// segment gets its own run of pages, anywhere in any chunk. A placement is all or
// nothing: when one segment finds no run, the pages taken for the others go back.
//
// When the budget cannot hold an adapter even after evicting every adapter the
// manager may evict (they are all in use), the manager may force it over the budget:
// the adapter then gets a chunk of its own beyond the budget, returned to the
// backend as soon as the adapter leaves, so that the pool comes back within budget.
//
// Thread-safety: none; AdapterManager calls it under its lock. Device memory is
// touched only through Backend::allocate / deallocate here (the manager uploads).
#pragma once

#include "core/adapters/page_allocator.h"
#include "core/runtime/backend.h"
#include "core/runtime/device_buffer.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace banyan::core {

struct AdapterPoolOptions {
  size_t budget_bytes = 0;
  /// Bytes per page: a power of two from 4 KiB to 64 KiB (see choose_page_bytes()).
  size_t page_bytes = size_t{64} << 10;
  /// Bytes reserved at a time (rounded to pages; the last chunk within the budget
  /// gets what is left of it). Must hold the largest segment an adapter can have.
  size_t chunk_bytes = size_t{64} << 20;
};

/// Where one adapter lies in the pool: one run per segment, in segment order.
struct AdapterPlacement {
  std::vector<PageRun> runs;
  int64_t pages = 0;
  bool over_budget = false;  ///< in a chunk of its own, beyond the budget
};

struct AdapterPoolUsage {
  size_t page_bytes = 0;
  int64_t budget_pages = 0;
  int64_t used_pages = 0;       ///< within the budget and beyond it
  int64_t reserved_pages = 0;   ///< held from the backend (chunks), free or not
  int64_t over_budget_pages = 0;  ///< of which: chunks beyond the budget
  int64_t largest_free_run = 0;   ///< longest run available without growing
  int32_t chunks = 0;
};

/// The page size for a model: the largest power of two, from 4 KiB to 64 KiB, not
/// above its smallest module segment at rank 8 in 16-bit weights (r x (in + out) x 2
/// bytes). Why: a segment wastes less than one page to rounding, so this bounds the
/// waste of a rank-8 adapter to a small fraction of its bytes (Llama-3-8B: k_proj's
/// 80 KiB → 64 KiB pages; a rank-8 adapter on all projections takes 1472 KiB of pages
/// for 1280 KiB of weights, 2624 for 2560 at rank 16), and less at higher ranks (the largest
/// segments, 14336 x 64 x 2 bytes and more, span dozens of pages), while 64 KiB
/// pages keep a 2 GiB pool at 32768 pages. A tiny model gets 4 KiB pages instead of
/// wasting most of every 64 KiB page. Page counts do not slow allocation: free space
/// is tracked as extents (page_allocator.h).
size_t choose_page_bytes(size_t smallest_rank8_segment_bytes);

class AdapterPool {
 public:
  /// Reserves nothing yet. Throws Error(invalid_argument) for a page size that is not
  /// a power of two of at least 64 bytes.
  AdapterPool(Backend& backend, const AdapterPoolOptions& options);
  AdapterPool(const AdapterPool&) = delete;
  AdapterPool& operator=(const AdapterPool&) = delete;

  size_t page_bytes() const { return page_bytes_; }
  int64_t budget_pages() const { return budget_pages_; }
  int64_t pages_for(size_t bytes) const;
  int64_t pages_for(std::span<const size_t> segment_bytes) const;

  /// Places every segment (bytes, each >= 1) within the budget, growing the reserved
  /// chunks when the free runs do not suffice; nullopt when they cannot all fit (no
  /// page is taken then). Throws Error(out_of_memory) when the backend refuses a chunk.
  std::optional<AdapterPlacement> allocate(std::span<const size_t> segment_bytes);
  /// Places every segment in a new chunk of its own beyond the budget.
  AdapterPlacement allocate_over_budget(std::span<const size_t> segment_bytes);
  /// Returns the placement's pages (and its chunk, when beyond the budget); clears it.
  void release(AdapterPlacement& placement);

  /// Device address of a run's first byte.
  void* address(const PageRun& run, bool over_budget) const;
  AdapterPoolUsage usage() const;
  /// PageAllocator::check() of both allocators, and that the chunks within the budget
  /// do not exceed it (tests).
  void check() const;

 private:
  Backend& backend_;
  size_t page_bytes_ = 0;
  int64_t budget_pages_ = 0, chunk_pages_ = 0;
  PageAllocator pages_;                 // chunks within the budget
  std::vector<DeviceBuffer> memory_;    // by chunk id of pages_
  PageAllocator over_;                  // one chunk per adapter placed over budget
  std::vector<DeviceBuffer> over_memory_;
};

}  // namespace banyan::core
