// The page allocator alone: runs inside chunks, best fit, extents merged on free,
// fragmentation (free pages that hold no run), refusals of bad frees, and a random
// workload checked page by page against a plain bitmap.
#include "core/adapters/page_allocator.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <functional>
#include <random>

namespace banyan::core {
namespace {

Code code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Code::ok;
}

TEST(PageAllocator, RunsFillAChunkAndMergeBackWhenFreed) {
  PageAllocator a;
  const int32_t c = a.add_chunk(16);
  EXPECT_EQ(a.total_pages(), 16);
  std::vector<PageRun> runs;
  for (int i = 0; i < 4; ++i) {
    auto r = a.allocate(4);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->chunk, c);
    EXPECT_EQ(r->first, 4 * i);  // one free extent: taken from its front
    runs.push_back(*r);
    a.check();
  }
  EXPECT_EQ(a.used_pages(), 16);
  EXPECT_EQ(a.largest_free_run(), 0);
  EXPECT_FALSE(a.allocate(1));
  a.free(runs[1]);
  a.free(runs[2]);  // merges with the extent of runs[1]
  a.check();
  EXPECT_EQ(a.largest_free_run(), 8);
  auto eight = a.allocate(8);
  ASSERT_TRUE(eight);
  EXPECT_EQ(eight->first, 4);
  a.free(*eight);
  a.free(runs[0]);
  a.free(runs[3]);  // merges on both sides
  a.check();
  EXPECT_EQ(a.used_pages(), 0);
  EXPECT_EQ(a.largest_free_run(), 16);
  EXPECT_TRUE(a.chunk_free(c));
}

TEST(PageAllocator, BestFitTakesTheShortestExtentThatHoldsTheRun) {
  PageAllocator a;
  a.add_chunk(20);
  auto r5 = a.allocate(5), r3 = a.allocate(3), r2 = a.allocate(2), r7 = a.allocate(7), rest = a.allocate(3);
  ASSERT_TRUE(r5 && r3 && r2 && r7 && rest);
  a.free(*r5);  // free: [0,5)
  a.free(*r7);  // and [10,17)
  a.free(*r2);  // [8,10) merges with [10,17): [0,5) and [8,17)
  a.check();
  auto three = a.allocate(3);  // [0,5) is shorter than [8,17)
  ASSERT_TRUE(three);
  EXPECT_EQ(three->first, 0);
  auto six = a.allocate(6);  // only [8,17) holds 6
  ASSERT_TRUE(six);
  EXPECT_EQ(six->first, 8);
  a.check();
}

TEST(PageAllocator, FreePagesInTheWrongPlacesHoldNoRun) {
  PageAllocator a;
  a.add_chunk(12);
  std::vector<PageRun> r;
  for (int i = 0; i < 4; ++i) r.push_back(*a.allocate(3));
  a.free(r[0]);
  a.free(r[2]);
  EXPECT_EQ(a.free_pages(), 6);
  EXPECT_EQ(a.largest_free_run(), 3);
  EXPECT_FALSE(a.allocate(6));  // six free pages, in two runs of three
  EXPECT_EQ(a.used_pages(), 6);  // a refusal takes nothing
  a.free(r[1]);                 // its neighbours join it: [0, 9)
  auto six = a.allocate(6);
  ASSERT_TRUE(six);
  EXPECT_EQ(six->first, 0);
  a.check();
}

TEST(PageAllocator, RunsNeverSpanChunks) {
  PageAllocator a;
  const int32_t c0 = a.add_chunk(4), c1 = a.add_chunk(4);
  EXPECT_NE(c0, c1);
  EXPECT_EQ(a.free_pages(), 8);
  EXPECT_FALSE(a.allocate(5));
  auto r = a.allocate(4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->chunk, c0);  // ties: the lowest chunk
  a.free(*r);
  a.remove_chunk(c0);
  EXPECT_EQ(a.chunks(), 1);
  EXPECT_EQ(a.total_pages(), 4);
  EXPECT_EQ(a.add_chunk(9), c0);  // the removed id is reused
  auto nine = a.allocate(9);
  ASSERT_TRUE(nine);
  EXPECT_EQ(nine->chunk, c0);
  a.check();
}

TEST(PageAllocator, RefusesWhatWouldCorruptTheAccounting) {
  PageAllocator a;
  const int32_t c = a.add_chunk(8);
  auto r = *a.allocate(4);
  EXPECT_EQ(code_of([&] { a.remove_chunk(c); }), Code::internal);  // pages in use
  EXPECT_EQ(code_of([&] { a.free({c, r.first, 3}); }), Code::internal);  // another length
  EXPECT_EQ(code_of([&] { a.free({c, 4, 4}); }), Code::internal);        // a free extent
  EXPECT_EQ(code_of([&] { a.free({7, 0, 4}); }), Code::internal);        // no such chunk
  EXPECT_EQ(code_of([&] { (void)a.allocate(0); }), Code::internal);
  EXPECT_EQ(code_of([&] { a.add_chunk(0); }), Code::internal);
  a.free(r);
  EXPECT_EQ(code_of([&] { a.free(r); }), Code::internal);  // twice
  a.check();
  EXPECT_EQ(a.used_pages(), 0);
  a.remove_chunk(c);
  EXPECT_EQ(a.total_pages(), 0);
  EXPECT_EQ(code_of([&] { a.remove_chunk(c); }), Code::internal);
  a.check();
}

// Random allocations and frees over three chunks, each page's owner tracked in a
// plain bitmap: no page is ever handed out twice, best fit never refuses a run that
// some free extent holds, and freeing everything leaves each chunk one extent.
TEST(PageAllocator, RandomWorkloadMatchesABitmap) {
  PageAllocator a;
  const std::vector<int64_t> sizes = {64, 37, 100};
  std::vector<std::vector<int>> owner;  // per chunk, per page: run number or -1
  for (int64_t n : sizes) {
    a.add_chunk(n);
    owner.emplace_back(static_cast<size_t>(n), -1);
  }
  auto longest_free = [&] {
    int64_t best = 0;
    for (const auto& pages : owner) {
      int64_t run = 0;
      for (int o : pages) {
        run = o < 0 ? run + 1 : 0;
        best = std::max(best, run);
      }
    }
    return best;
  };
  std::mt19937 rng(7);
  std::vector<std::pair<int, PageRun>> live;
  int next = 0, refusals = 0;
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 5 < 3) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 12);
      const int64_t expect_fit = longest_free();
      auto r = a.allocate(n);
      ASSERT_EQ(r.has_value(), n <= expect_fit) << "step " << step;
      if (!r) {
        ++refusals;
        continue;
      }
      ASSERT_EQ(r->pages, n);
      for (int64_t p = r->first; p < r->first + n; ++p) {
        int& o = owner[static_cast<size_t>(r->chunk)][static_cast<size_t>(p)];
        ASSERT_EQ(o, -1) << "page " << p << " of chunk " << r->chunk << " handed out twice";
        o = next;
      }
      live.emplace_back(next++, *r);
    } else {
      const size_t k = rng() % live.size();
      const PageRun r = live[k].second;
      a.free(r);
      for (int64_t p = r.first; p < r.first + r.pages; ++p)
        owner[static_cast<size_t>(r.chunk)][static_cast<size_t>(p)] = -1;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    int64_t used = 0;
    for (const auto& pages : owner)
      for (int o : pages) used += o >= 0;
    ASSERT_EQ(a.used_pages(), used);
    ASSERT_EQ(a.largest_free_run(), longest_free());
    if (step % 97 == 0) a.check();
  }
  EXPECT_GT(refusals, 0) << "the workload should meet a full or fragmented pool";
  for (const auto& [n, r] : live) a.free(r);
  a.check();
  EXPECT_EQ(a.used_pages(), 0);
  EXPECT_EQ(a.largest_free_run(), 100);
  for (int32_t c = 0; c < 3; ++c) EXPECT_TRUE(a.chunk_free(c));
}

}  // namespace
}  // namespace banyan::core
