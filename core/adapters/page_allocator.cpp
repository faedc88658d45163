#include "core/adapters/page_allocator.h"

#include <banyan/error.h>

#include <iterator>
#include <limits>
#include <string>

namespace banyan::core {
namespace {
std::string describe(const PageRun& r) {
  return "run of " + std::to_string(r.pages) + " page(s) at page " + std::to_string(r.first) +
         " of chunk " + std::to_string(r.chunk);
}
}  // namespace

PageAllocator::Chunk& PageAllocator::chunk_at(int32_t chunk, const char* what) {
  if (chunk < 0 || static_cast<size_t>(chunk) >= chunks_.size() || chunks_[chunk].pages == 0)
    throw Error(Code::internal, std::string("page allocator: ") + what + " of chunk " +
                                    std::to_string(chunk) + ", which does not exist");
  return chunks_[static_cast<size_t>(chunk)];
}

void PageAllocator::add_free(int32_t chunk, int64_t first, int64_t pages) {
  chunks_[static_cast<size_t>(chunk)].free.emplace(first, pages);
  by_length_.emplace(pages, chunk, first);
}

void PageAllocator::erase_free(int32_t chunk, int64_t first, int64_t pages) {
  chunks_[static_cast<size_t>(chunk)].free.erase(first);
  by_length_.erase(Key{pages, chunk, first});
}

int32_t PageAllocator::add_chunk(int64_t pages) {
  if (pages <= 0)
    throw Error(Code::internal, "page allocator: a chunk of " + std::to_string(pages) + " pages");
  int32_t id = 0;
  while (static_cast<size_t>(id) < chunks_.size() && chunks_[static_cast<size_t>(id)].pages != 0) ++id;
  if (static_cast<size_t>(id) == chunks_.size()) chunks_.emplace_back();
  chunks_[static_cast<size_t>(id)] = Chunk{};
  chunks_[static_cast<size_t>(id)].pages = pages;
  add_free(id, 0, pages);
  total_ += pages;
  ++live_;
  return id;
}

void PageAllocator::remove_chunk(int32_t chunk) {
  Chunk& c = chunk_at(chunk, "removal");
  if (c.used != 0)
    throw Error(Code::internal, "page allocator: chunk " + std::to_string(chunk) + " removed with " +
                                    std::to_string(c.used) + " page(s) still allocated");
  erase_free(chunk, 0, c.pages);
  total_ -= c.pages;
  --live_;
  c = Chunk{};
}

std::optional<PageRun> PageAllocator::allocate(int64_t pages) {
  if (pages <= 0)
    throw Error(Code::internal, "page allocator: a run of " + std::to_string(pages) + " pages");
  auto it = by_length_.lower_bound(Key{pages, std::numeric_limits<int32_t>::min(),
                                       std::numeric_limits<int64_t>::min()});
  if (it == by_length_.end()) return std::nullopt;
  const auto [length, chunk, first] = *it;
  erase_free(chunk, first, length);
  if (length > pages) add_free(chunk, first + pages, length - pages);
  Chunk& c = chunks_[static_cast<size_t>(chunk)];
  c.runs.emplace(first, pages);
  c.used += pages;
  used_ += pages;
  return PageRun{chunk, first, pages};
}

void PageAllocator::free(const PageRun& run) {
  Chunk& c = chunk_at(run.chunk, "free");
  auto r = c.runs.find(run.first);
  if (r == c.runs.end() || r->second != run.pages)
    throw Error(Code::internal, "page allocator: free of a " + describe(run) + ", which is not allocated");
  c.runs.erase(r);
  c.used -= run.pages;
  used_ -= run.pages;
  int64_t first = run.first, pages = run.pages;
  // Merge with the free extents just before and just after.
  auto next = c.free.lower_bound(first);
  if (next != c.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == first) {
      const int64_t pf = prev->first, pl = prev->second;
      erase_free(run.chunk, pf, pl);
      first = pf;
      pages += pl;
    }
  }
  next = c.free.find(run.first + run.pages);
  if (next != c.free.end()) {
    const int64_t nf = next->first, nl = next->second;
    erase_free(run.chunk, nf, nl);
    pages += nl;
  }
  add_free(run.chunk, first, pages);
}

int64_t PageAllocator::largest_free_run() const {
  return by_length_.empty() ? 0 : std::get<0>(*by_length_.rbegin());
}

int64_t PageAllocator::chunk_pages(int32_t chunk) const {
  return chunk >= 0 && static_cast<size_t>(chunk) < chunks_.size() ? chunks_[static_cast<size_t>(chunk)].pages
                                                                  : 0;
}

bool PageAllocator::chunk_free(int32_t chunk) const {
  return chunk_pages(chunk) > 0 && chunks_[static_cast<size_t>(chunk)].used == 0;
}

void PageAllocator::check() const {
  auto fail = [](const std::string& what) { throw Error(Code::internal, "page allocator: " + what); };
  int64_t total = 0, used = 0;
  int32_t live = 0;
  size_t extents = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const Chunk& c = chunks_[i];
    const std::string where = "chunk " + std::to_string(i);
    if (c.pages == 0) {
      if (!c.free.empty() || !c.runs.empty() || c.used) fail(where + " is removed but holds pages");
      continue;
    }
    ++live;
    total += c.pages;
    // Walk free extents and runs in page order: they must tile the chunk exactly,
    // with no two free extents adjacent (they would have been merged).
    std::map<int64_t, std::pair<int64_t, bool>> all;  // first → (length, free)
    for (const auto& [f, n] : c.free) {
      all.emplace(f, std::pair{n, true});
      if (!by_length_.count(Key{n, static_cast<int32_t>(i), f}))
        fail(where + ": a free extent missing from the length index");
    }
    int64_t chunk_used = 0;
    for (const auto& [f, n] : c.runs) {
      if (!all.emplace(f, std::pair{n, false}).second) fail(where + ": a run starts on a free extent");
      chunk_used += n;
    }
    extents += c.free.size();
    int64_t at = 0;
    bool prev_free = false;
    for (const auto& [f, ln] : all) {
      const auto [n, is_free] = ln;
      if (f != at || n <= 0) fail(where + ": pages " + std::to_string(at) + ".. are lost or overlap");
      if (is_free && prev_free) fail(where + ": two adjacent free extents were not merged");
      prev_free = is_free;
      at = f + n;
    }
    if (at != c.pages) fail(where + ": pages " + std::to_string(at) + ".. are lost or overlap");
    if (chunk_used != c.used) fail(where + ": its used-page count is wrong");
    used += chunk_used;
  }
  if (extents != by_length_.size()) fail("the length index holds extents that do not exist");
  if (total != total_ || used != used_ || live != live_) fail("the page counters are wrong");
}

}  // namespace banyan::core
