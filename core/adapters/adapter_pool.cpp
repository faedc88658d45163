#include "core/adapters/adapter_pool.h"

#include <banyan/error.h>

#include <algorithm>
#include <bit>
#include <numeric>
#include <string>

namespace banyan::core {
namespace {
std::string mib(size_t bytes) { return std::to_string((bytes + (size_t{1} << 20) - 1) >> 20) + " MiB"; }
}  // namespace

size_t choose_page_bytes(size_t smallest_rank8_segment_bytes) {
  constexpr size_t kMin = size_t{4} << 10, kMax = size_t{64} << 10;
  return std::clamp(std::bit_floor(std::max<size_t>(smallest_rank8_segment_bytes, 1)), kMin, kMax);
}

AdapterPool::AdapterPool(Backend& backend, const AdapterPoolOptions& o)
    : backend_(backend), page_bytes_(o.page_bytes) {
  if (page_bytes_ < 64 || !std::has_single_bit(page_bytes_))
    throw Error(Code::invalid_argument, "adapter pool: a page of " + std::to_string(page_bytes_) +
                                            " bytes (a power of two of at least 64 is needed)");
  budget_pages_ = static_cast<int64_t>(o.budget_bytes / page_bytes_);
  chunk_pages_ = std::max<int64_t>(1, pages_for(o.chunk_bytes));
}

int64_t AdapterPool::pages_for(size_t bytes) const {
  return static_cast<int64_t>((bytes + page_bytes_ - 1) / page_bytes_);
}

int64_t AdapterPool::pages_for(std::span<const size_t> segment_bytes) const {
  int64_t n = 0;
  for (size_t b : segment_bytes) n += pages_for(b);
  return n;
}

std::optional<AdapterPlacement> AdapterPool::allocate(std::span<const size_t> segment_bytes) {
  AdapterPlacement p;
  p.pages = pages_for(segment_bytes);
  p.runs.resize(segment_bytes.size());
  // Cheap refusal first: the eviction loop of the manager calls this once per victim.
  if (p.pages > pages_.free_pages() + (budget_pages_ - pages_.total_pages())) return std::nullopt;
  // Longest segments first: they are the hardest to fit, short ones fill the gaps.
  std::vector<size_t> order(segment_bytes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return segment_bytes[a] > segment_bytes[b]; });
  size_t placed = 0;
  auto undo = [&] {
    for (size_t k = 0; k < placed; ++k) pages_.free(p.runs[order[k]]);
  };
  try {
    for (; placed < order.size(); ++placed) {
      const size_t i = order[placed];
      const int64_t n = pages_for(segment_bytes[i]);
      if (n <= 0) throw Error(Code::internal, "adapter pool: an empty segment");
      std::optional<PageRun> run = pages_.allocate(n);
      if (!run) {
        // Grow: a whole chunk (or what is left of the budget), at least this run.
        const int64_t left = budget_pages_ - pages_.total_pages();
        const int64_t grow = std::min(left, std::max(chunk_pages_, n));
        if (grow < n) {
          undo();
          return std::nullopt;
        }
        DeviceBuffer memory;
        try {
          memory = DeviceBuffer(backend_, static_cast<size_t>(grow) * page_bytes_);
        } catch (const Error& e) {
          throw Error(e.code(), "adapter pool: cannot reserve " +
                                    mib(static_cast<size_t>(grow) * page_bytes_) + " more (" +
                                    mib(static_cast<size_t>(pages_.total_pages()) * page_bytes_) +
                                    " of adapters.pool_bytes reserved so far): " + e.what());
        }
        const int32_t id = pages_.add_chunk(grow);
        if (static_cast<size_t>(id) >= memory_.size()) memory_.resize(static_cast<size_t>(id) + 1);
        memory_[static_cast<size_t>(id)] = std::move(memory);
        run = pages_.allocate(n);
        if (!run) throw Error(Code::internal, "adapter pool: a new chunk does not hold its run");
      }
      p.runs[i] = *run;
    }
  } catch (...) {
    undo();
    throw;
  }
  return p;
}

AdapterPlacement AdapterPool::allocate_over_budget(std::span<const size_t> segment_bytes) {
  AdapterPlacement p;
  p.pages = pages_for(segment_bytes);
  p.over_budget = true;
  if (p.pages == 0) return p;
  DeviceBuffer memory(backend_, static_cast<size_t>(p.pages) * page_bytes_);
  const int32_t id = over_.add_chunk(p.pages);
  if (static_cast<size_t>(id) >= over_memory_.size()) over_memory_.resize(static_cast<size_t>(id) + 1);
  over_memory_[static_cast<size_t>(id)] = std::move(memory);
  // The chunk holds exactly these runs, and every other chunk beyond the budget is
  // full (each holds one adapter), so the runs all land in it.
  for (size_t b : segment_bytes) {
    std::optional<PageRun> run = over_.allocate(pages_for(b));
    if (!run || run->chunk != id) throw Error(Code::internal, "adapter pool: an over-budget chunk is shared");
    p.runs.push_back(*run);
  }
  return p;
}

void AdapterPool::release(AdapterPlacement& p) {
  PageAllocator& a = p.over_budget ? over_ : pages_;
  for (const PageRun& r : p.runs) a.free(r);
  if (p.over_budget && !p.runs.empty()) {
    const int32_t id = p.runs.front().chunk;
    over_.remove_chunk(id);  // throws if anything else were in it
    over_memory_[static_cast<size_t>(id)].reset();
  }
  p = AdapterPlacement{};
}

void* AdapterPool::address(const PageRun& run, bool over_budget) const {
  const auto& memory = over_budget ? over_memory_ : memory_;
  if (run.chunk < 0 || static_cast<size_t>(run.chunk) >= memory.size() || !memory[static_cast<size_t>(run.chunk)])
    throw Error(Code::internal, "adapter pool: the address of a run in no chunk");
  return static_cast<std::byte*>(memory[static_cast<size_t>(run.chunk)].data()) +
         static_cast<size_t>(run.first) * page_bytes_;
}

AdapterPoolUsage AdapterPool::usage() const {
  AdapterPoolUsage u;
  u.page_bytes = page_bytes_;
  u.budget_pages = budget_pages_;
  u.used_pages = pages_.used_pages() + over_.used_pages();
  u.reserved_pages = pages_.total_pages() + over_.total_pages();
  u.over_budget_pages = over_.total_pages();
  u.largest_free_run = pages_.largest_free_run();
  u.chunks = pages_.chunks() + over_.chunks();
  return u;
}

void AdapterPool::check() const {
  pages_.check();
  over_.check();
  if (pages_.total_pages() > budget_pages_)
    throw Error(Code::internal, "adapter pool: " + std::to_string(pages_.total_pages()) +
                                    " pages reserved within a budget of " + std::to_string(budget_pages_));
  if (over_.free_pages() != 0)
    throw Error(Code::internal, "adapter pool: free pages in a chunk beyond the budget");
  size_t held = 0;
  for (const auto& m : memory_) held += m ? 1 : 0;
  for (const auto& m : over_memory_) held += m ? 1 : 0;
  if (held != static_cast<size_t>(pages_.chunks() + over_.chunks()))
    throw Error(Code::internal, "adapter pool: device chunks and page chunks differ");
}

}  // namespace banyan::core
