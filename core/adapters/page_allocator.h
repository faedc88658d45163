// Which pages of the adapter pool are free: pure bookkeeping, no memory (AdapterPool
// maps each chunk to device memory). Pages live in chunks; a run is a range of
// contiguous pages inside one chunk. Free space is kept as extents, merged with
// their neighbours when a run is freed and indexed by length, so that an allocation
// (best fit: the shortest free extent that holds the run) costs log(extents), not a
// scan of the pages. Every run handed out is recorded: freeing a run that was not
// allocated (twice, or with another length) is an Error(internal), not silent
// corruption of the accounting.
//
// Thread-safety: none; the owner serializes every call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

namespace banyan::core {

struct PageRun {
  int32_t chunk = -1;
  int64_t first = 0;  ///< first page inside the chunk
  int64_t pages = 0;
  bool operator==(const PageRun&) const = default;
};

class PageAllocator {
 public:
  /// Adds a chunk of `pages` (>= 1) free pages; returns its id (the lowest id of a
  /// removed chunk, else the next one).
  int32_t add_chunk(int64_t pages);
  /// Removes an entirely free chunk. Throws Error(internal) when a run is allocated in it.
  void remove_chunk(int32_t chunk);

  /// Best fit for `pages` (>= 1) contiguous pages; ties go to the lowest chunk and
  /// page. nullopt: no free extent is long enough (the free pages may still suffice).
  std::optional<PageRun> allocate(int64_t pages);
  /// Returns a run from allocate(). Throws Error(internal) for anything else.
  void free(const PageRun& run);

  int64_t total_pages() const { return total_; }
  int64_t used_pages() const { return used_; }
  int64_t free_pages() const { return total_ - used_; }
  /// The longest run allocate() can give now (0: none).
  int64_t largest_free_run() const;
  int32_t chunks() const { return live_; }
  int64_t chunk_pages(int32_t chunk) const;
  bool chunk_free(int32_t chunk) const;
  /// Recounts everything from the extents and runs; throws Error(internal) when the
  /// counters disagree, extents overlap or touch without being merged, or a page is
  /// neither free nor allocated. For tests (cost: linear in the extents and runs).
  void check() const;

 private:
  struct Chunk {
    int64_t pages = 0;  ///< 0: removed
    int64_t used = 0;
    std::map<int64_t, int64_t> free;  ///< first page → length
    std::map<int64_t, int64_t> runs;  ///< allocated: first page → length
  };
  using Key = std::tuple<int64_t, int32_t, int64_t>;  // length, chunk, first page
  Chunk& chunk_at(int32_t chunk, const char* what);
  void add_free(int32_t chunk, int64_t first, int64_t pages);
  void erase_free(int32_t chunk, int64_t first, int64_t pages);

  std::vector<Chunk> chunks_;
  std::set<Key> by_length_;
  int64_t total_ = 0, used_ = 0;
  int32_t live_ = 0;
};

}  // namespace banyan::core
