#include "core/engine/scheduler.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

#include <random>

namespace banyan::core {
namespace {

std::unique_ptr<SequenceGroup> make_group(const std::string& id, std::vector<int32_t> prompt,
                                          int max_tokens, uint64_t adapter = 0) {
  auto g = std::make_unique<SequenceGroup>();
  g->request.request_id = id;
  g->request.prompt_ids = prompt;
  g->request.params.max_tokens = max_tokens;
  g->adapter_id = adapter;
  auto s = std::make_unique<Sequence>();
  s->group = g.get();
  s->tokens = prompt;
  s->prompt_len = static_cast<int32_t>(prompt.size());
  g->seqs.push_back(std::move(s));
  return g;
}

// Plays the engine: marks computed, appends a token to sequences that sampled,
// finishes those that reached max_tokens.
void step(Scheduler& sched, const SchedulerOutput& out, std::mt19937& rng) {
  sched.mark_computed(out);
  for (const auto& ss : out.seqs) {
    if (!ss.sample) continue;
    Sequence& s = *ss.seq;
    s.tokens.push_back(static_cast<int32_t>(rng() % 100));
    if (s.output_len() >= s.group->request.params.max_tokens) s.finished = true;
  }
}

TEST(BlockManager, RefCountsAndPrefixCache) {
  BlockManager bm(4, 2, true);
  EXPECT_EQ(bm.num_free(), 4);
  int32_t a = bm.allocate(), b = bm.allocate();
  bm.set_hash(a, 111);
  bm.take(a);
  EXPECT_EQ(bm.ref_count(a), 2);
  bm.release(a);
  bm.release(a);
  bm.release(b);
  EXPECT_EQ(bm.num_free(), 4);
  // The cached block is still findable and is reused last.
  std::vector<BlockHash> hs = {111, 222};
  auto hit = bm.lookup_prefix(hs);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0], a);
  EXPECT_EQ(bm.hits(), 1);
  EXPECT_EQ(bm.queries(), 2);
  EXPECT_TRUE(bm.can_allocate(3, hit));
  EXPECT_FALSE(bm.can_allocate(4, hit));
  for (int i = 0; i < 3; ++i) EXPECT_NE(bm.allocate(), a);
  EXPECT_EQ(bm.allocate(), a);  // evicted last, and now its hash is gone
  EXPECT_TRUE(bm.lookup_prefix(hs).empty());
  EXPECT_FALSE(bm.check_invariants());
  EXPECT_THROW(BlockManager(0, 16, true), Error);
}

TEST(BlockManager, HashChainsDependOnParentAndAdapter) {
  std::vector<int32_t> t = {1, 2, 3};
  EXPECT_EQ(hash_block(0, t, 0), hash_block(0, t, 0));
  EXPECT_NE(hash_block(0, t, 0), hash_block(1, t, 0));
  EXPECT_NE(hash_block(0, t, 0), hash_block(0, t, 7));
}

TEST(Scheduler, ChunksPrefillUnderTheTokenBudget) {
  BlockManager bm(64, 4, true);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 10}, bm);
  std::vector<int32_t> prompt(25);
  for (int i = 0; i < 25; ++i) prompt[i] = i;
  sched.add(make_group("a", prompt, 3));
  std::mt19937 rng(1);
  std::vector<int32_t> chunks;
  while (sched.has_work()) {
    auto out = sched.schedule();
    ASSERT_LE(out.num_tokens, 10);
    chunks.push_back(out.num_tokens);
    step(sched, out, rng);
    sched.collect_finished();
  }
  // 25 prompt tokens in chunks of 10, 10, 5 (sampling the first token), then 2 decodes.
  EXPECT_EQ(chunks, (std::vector<int32_t>{10, 10, 5, 1, 1}));
  EXPECT_EQ(bm.num_free(), 64);
}

TEST(Scheduler, PrefixCacheHitSkipsComputedBlocks) {
  BlockManager bm(64, 4, true);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 100}, bm);
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::mt19937 rng(1);
  sched.add(make_group("a", prompt, 1));
  auto out = sched.schedule();
  EXPECT_EQ(out.num_tokens, 10);
  step(sched, out, rng);
  sched.collect_finished();
  sched.add(make_group("b", prompt, 1));
  out = sched.schedule();
  EXPECT_EQ(out.num_tokens, 2);  // two full blocks (8 tokens) came from the cache
  EXPECT_EQ(out.seqs[0].seq->num_computed, 8);
  // Another adapter does not share the prefix.
  step(sched, out, rng);
  sched.collect_finished();
  sched.add(make_group("c", prompt, 1, /*adapter=*/5));
  out = sched.schedule();
  EXPECT_EQ(out.num_tokens, 10);
}

TEST(Scheduler, MaxLorasMakesRequestsWaitNotFail) {
  BlockManager bm(64, 4, false);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 100, .max_loras = 2}, bm);
  for (uint64_t a = 1; a <= 3; ++a) sched.add(make_group("r" + std::to_string(a), {1, 2, 3}, 5, a));
  auto out = sched.schedule();
  EXPECT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(sched.num_waiting(), 1u);
}

TEST(Scheduler, ForkSharesBlocksAndCopiesOnWrite) {
  BlockManager bm(16, 4, false);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 100}, bm);
  sched.add(make_group("a", {1, 2, 3, 4, 5, 6}, 4));
  auto out = sched.schedule();
  sched.mark_computed(out);
  Sequence& parent = *out.seqs[0].seq;
  ASSERT_EQ(parent.blocks.size(), 2u);
  auto child = sched.fork(parent, 2);
  EXPECT_EQ(bm.ref_count(parent.blocks[1]), 2);
  parent.tokens.push_back(7);
  child->tokens.push_back(8);
  SequenceGroup* g = parent.group;
  g->seqs.push_back(std::move(child));
  out = sched.schedule();
  ASSERT_EQ(out.seqs.size(), 2u);
  // The partial second block was shared: one of the two writers copies it.
  ASSERT_EQ(out.copies.size(), 1u);
  EXPECT_NE(g->seqs[0]->blocks[1], g->seqs[1]->blocks[1]);
  EXPECT_EQ(g->seqs[0]->blocks[0], g->seqs[1]->blocks[0]);  // the full block stays shared
  EXPECT_FALSE(bm.check_invariants());
}

// Random traffic with a tiny KV pool: preemption happens, every request finishes,
// no block leaks, ref counts never go negative.
TEST(Scheduler, RandomTrafficWithPreemptionLeaksNothing) {
  int64_t preemptions = 0;
  for (int seed = 0; seed < 20; ++seed) {
    std::mt19937 rng(seed);
    BlockManager bm(24, 4, seed % 2 == 0);
    Scheduler sched({.max_num_seqs = 6, .max_num_batched_tokens = 16, .max_loras = 2}, bm);
    int submitted = 0, finished = 0;
    for (int it = 0; it < 2000 && (submitted < 40 || sched.has_work()); ++it) {
      if (submitted < 40 && rng() % 3 == 0) {
        std::vector<int32_t> prompt(1 + rng() % 30);
        for (auto& t : prompt) t = static_cast<int32_t>(rng() % 8);  // repeats: cache hits
        sched.add(make_group("r" + std::to_string(submitted++), prompt, 1 + rng() % 20, rng() % 3));
      }
      if (rng() % 17 == 0 && submitted > 0) {  // abort a random request
        if (auto g = sched.remove("r" + std::to_string(rng() % submitted))) ++finished;
      }
      auto out = sched.schedule();
      ASSERT_LE(out.num_tokens, 16);
      step(sched, out, rng);
      finished += static_cast<int>(sched.collect_finished().size());
      auto bad = bm.check_invariants();
      ASSERT_FALSE(bad) << *bad;
    }
    EXPECT_EQ(finished, submitted) << "seed " << seed;
    EXPECT_EQ(bm.num_free(), 24) << "seed " << seed;
    preemptions += sched.preemptions();
  }
  EXPECT_GT(preemptions, 0) << "the pool was meant to be small enough to force preemption";
}

TEST(Scheduler, RequestTooLargeForTheCacheFailsInsteadOfLooping) {
  BlockManager bm(2, 4, false);
  Scheduler sched({.max_num_seqs = 4, .max_num_batched_tokens = 64}, bm);
  sched.add(make_group("big", {1, 2, 3, 4, 5, 6, 7}, 10));
  std::mt19937 rng(0);
  for (int i = 0; i < 20 && sched.has_work(); ++i) {
    auto out = sched.schedule();
    step(sched, out, rng);
    auto done = sched.collect_finished();
    if (!done.empty()) {
      ASSERT_TRUE(done[0]->error.has_value());
      EXPECT_NE(done[0]->error->find("KV cache is too small"), std::string::npos);
    }
  }
  EXPECT_FALSE(sched.has_work());
  EXPECT_EQ(bm.num_free(), 2);
}

}  // namespace
}  // namespace banyan::core
