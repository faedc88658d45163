// Iteration-level continuous batching. Each step: running sequences first (decodes
// and unfinished prefill chunks), then waiting requests, under a token budget
// (max_num_batched_tokens), a sequence limit (max_num_seqs) and an adapter limit
// (max_loras). Prompts are prefilled in chunks that fit the budget. When KV blocks
// run out, the most recently admitted request is preempted (its blocks freed, it
// waits again and recomputes): no deadlock, no lost request.
//
// The scheduler decides; it never touches device memory. Engine thread only.
#pragma once

#include "core/engine/block_manager.h"
#include "core/engine/sequence.h"

#include <deque>
#include <memory>
#include <set>
#include <utility>
#include <vector>

namespace banyan::core {

struct SchedulerConfig {
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 8192;
  int32_t max_loras = 32;
  bool priority = false;  ///< order waiting requests by priority, then arrival
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_new = 0;     ///< tokens computed this step
  bool sample = false;     ///< this chunk reaches the end of the known tokens
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> seqs;
  std::vector<std::pair<int32_t, int32_t>> copies;  ///< KV block copies (src, dst) first
  std::vector<SequenceGroup*> preempted;
  int32_t num_tokens = 0;
  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, BlockManager& blocks);

  void add(std::unique_ptr<SequenceGroup> group);
  /// Removes a group wherever it is, releasing its blocks; returns it (or null).
  std::unique_ptr<SequenceGroup> remove(const std::string& request_id);
  SchedulerOutput schedule();
  /// After the forward pass: marks the scheduled tokens computed and registers
  /// newly full blocks in the prefix cache.
  void mark_computed(const SchedulerOutput& out);
  /// Releases the blocks of finished sequences; returns finished groups.
  std::vector<std::unique_ptr<SequenceGroup>> collect_finished();
  /// Forks `parent` into a new sequence sharing its blocks (copy-on-write).
  std::unique_ptr<Sequence> fork(const Sequence& parent, int64_t id);
  void free_seq(Sequence& s);

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t preemptions() const { return preemptions_; }
  /// Every group (running first, then waiting). For draining and tests.
  std::vector<SequenceGroup*> groups() const;

 private:
  bool schedule_group(SequenceGroup& g, int32_t& budget, SchedulerOutput& out, bool admitting);
  int32_t blocks_needed(const Sequence& s, int32_t num_new) const;
  void preempt(SequenceGroup& g);
  void update_hashes(Sequence& s);

  SchedulerConfig config_;
  BlockManager& blocks_;
  std::deque<std::unique_ptr<SequenceGroup>> waiting_;
  std::vector<std::unique_ptr<SequenceGroup>> running_;
  int64_t preemptions_ = 0;
};

}  // namespace banyan::core
