#include "core/engine/scheduler.h"

#include "core/engine/text_output.h"

#include <banyan/error.h>

#include <algorithm>

namespace banyan::core {

Scheduler::Scheduler(SchedulerConfig config, BlockManager& blocks)
    : config_(config), blocks_(blocks) {}

void Scheduler::add(std::unique_ptr<SequenceGroup> group) {
  if (!config_.priority) {
    waiting_.push_back(std::move(group));
    return;
  }
  // Priority: lower value first, then arrival (stable among equals).
  auto pos = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& w) {
    return w->request.priority > group->request.priority;
  });
  waiting_.insert(pos, std::move(group));
}

std::vector<SequenceGroup*> Scheduler::groups() const {
  std::vector<SequenceGroup*> out;
  for (const auto& g : running_) out.push_back(g.get());
  for (const auto& g : waiting_) out.push_back(g.get());
  return out;
}

void Scheduler::free_seq(Sequence& s) {
  for (int32_t b : s.blocks) blocks_.release(b);
  s.blocks.clear();
  s.num_computed = 0;
  s.num_hashed = 0;
}

std::unique_ptr<SequenceGroup> Scheduler::remove(const std::string& request_id) {
  auto match = [&](const auto& g) { return g->request.request_id == request_id; };
  if (auto it = std::find_if(running_.begin(), running_.end(), match); it != running_.end()) {
    auto g = std::move(*it);
    running_.erase(it);
    for (auto& s : g->seqs) free_seq(*s);
    return g;
  }
  if (auto it = std::find_if(waiting_.begin(), waiting_.end(), match); it != waiting_.end()) {
    auto g = std::move(*it);
    waiting_.erase(it);
    for (auto& s : g->seqs) free_seq(*s);
    return g;
  }
  return nullptr;
}

int32_t Scheduler::blocks_needed(const Sequence& s, int32_t num_new) const {
  const int32_t bs = blocks_.block_size();
  int32_t total = s.num_computed + num_new;
  int32_t need = (total + bs - 1) / bs - static_cast<int32_t>(s.blocks.size());
  int32_t cow = 0;
  if (num_new > 0 && s.num_computed % bs != 0) {
    int32_t b = s.blocks[s.num_computed / bs];
    if (blocks_.ref_count(b) > 1) cow = 1;  // writing into a shared partial block
  }
  return std::max(need, 0) + cow;
}

void Scheduler::update_hashes(Sequence& s) {
  const int32_t bs = blocks_.block_size();
  size_t full = s.tokens.size() / bs;
  while (s.hashes.size() < full) {
    size_t k = s.hashes.size();
    BlockHash parent = k ? s.hashes[k - 1] : 0;
    s.hashes.push_back(hash_block(
        parent, std::span<const int32_t>(s.tokens.data() + k * bs, bs), s.group->adapter_id));
  }
}

bool Scheduler::schedule_group(SequenceGroup& g, int32_t& budget, SchedulerOutput& out,
                               bool admitting) {
  const int32_t bs = blocks_.block_size();
  struct Plan {
    Sequence* s;
    std::vector<int32_t> cached;
    int32_t n;
  };
  std::vector<Plan> plans;
  int32_t left = budget, fresh = 0;
  std::vector<int32_t> all_cached;
  auto live = g.live();
  for (Sequence* s : live) {
    Plan p{s, {}, 0};
    int32_t computed = s->num_computed;
    if (admitting && s->num_computed == 0 && s->blocks.empty()) {
      update_hashes(*s);
      // At least the last token must run (its logits are needed). Prompt logprobs need
      // every prompt token's logits, so such a request takes no cached prefix (as vLLM).
      if (!g.request.params.prompt_logprobs.has_value()) {
        size_t max_full = (s->tokens.size() - 1) / bs;
        p.cached = blocks_.lookup_prefix(
            std::span<const BlockHash>(s->hashes.data(), std::min(max_full, s->hashes.size())));
        computed = static_cast<int32_t>(p.cached.size()) * bs;
      }
    }
    int32_t remaining = static_cast<int32_t>(s->tokens.size()) - computed;
    p.n = std::min(remaining, left);
    if (p.n <= 0 && remaining > 0) {
      if (g.kind == GroupKind::beam) return admitting ? false : true;  // beams move together
      continue;
    }
    left -= p.n;
    if (p.cached.empty()) {
      fresh += blocks_needed(*s, p.n);
    } else {
      int32_t total = computed + p.n;
      fresh += (total + bs - 1) / bs - static_cast<int32_t>(p.cached.size());
      all_cached.insert(all_cached.end(), p.cached.begin(), p.cached.end());
    }
    plans.push_back(std::move(p));
  }
  if (g.kind == GroupKind::beam && plans.size() != live.size()) return admitting ? false : true;
  if (plans.empty()) return !admitting;
  if (!blocks_.can_allocate(fresh, all_cached)) return false;

  for (auto& p : plans) {
    Sequence& s = *p.s;
    if (!p.cached.empty()) {
      for (int32_t b : p.cached) blocks_.take(b);
      s.blocks = p.cached;
      s.num_computed = static_cast<int32_t>(p.cached.size()) * bs;
      s.num_hashed = static_cast<int32_t>(p.cached.size());
    }
    if (p.n > 0 && s.num_computed % bs != 0) {
      int32_t idx = s.num_computed / bs;
      int32_t old = s.blocks[idx];
      if (blocks_.ref_count(old) > 1) {  // copy-on-write
        int32_t nb = blocks_.allocate();
        out.copies.emplace_back(old, nb);
        blocks_.release(old);
        s.blocks[idx] = nb;
      }
    }
    int32_t total = s.num_computed + p.n;
    while (static_cast<int32_t>(s.blocks.size()) * bs < total) s.blocks.push_back(blocks_.allocate());
    out.seqs.push_back({&s, p.n, total == static_cast<int32_t>(s.tokens.size())});
    out.num_tokens += p.n;
  }
  budget = left;
  return true;
}

void Scheduler::preempt(SequenceGroup& g) {
  for (auto& s : g.seqs)
    if (!s->finished) free_seq(*s);
  ++preemptions_;
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int32_t budget = config_.max_num_batched_tokens;
  std::set<uint64_t> adapters;

  for (size_t i = 0; i < running_.size() && budget > 0;) {
    SequenceGroup& g = *running_[i];
    if (schedule_group(g, budget, out, false)) {
      if (g.adapter_id) adapters.insert(g.adapter_id);
      ++i;
      continue;
    }
    // Out of KV blocks: preempt the most recently admitted group.
    if (running_.size() == 1 || running_.back().get() == &g) {
      if (running_.size() == 1 && out.seqs.empty()) {
        // It cannot run even alone: fail it rather than loop forever.
        g.error = "the KV cache is too small for this request (" +
                  std::to_string(blocks_.num_blocks()) + " blocks of " +
                  std::to_string(blocks_.block_size()) + " tokens); lower n or max_tokens";
        g.aborted = true;
        ++i;
        continue;
      }
      auto victim = std::move(running_.back());
      running_.pop_back();
      preempt(*victim);
      out.preempted.push_back(victim.get());
      waiting_.push_front(std::move(victim));
      break;
    }
    auto victim = std::move(running_.back());
    running_.pop_back();
    preempt(*victim);
    out.preempted.push_back(victim.get());
    waiting_.push_front(std::move(victim));
  }

  if (!out.preempted.empty()) return out;
  int32_t seqs = 0;
  for (const auto& g : running_) seqs += static_cast<int32_t>(g->live().size());
  for (auto it = waiting_.begin(); it != waiting_.end() && budget > 0;) {
    SequenceGroup& g = **it;
    if (g.aborted) {
      ++it;
      continue;
    }
    int32_t n = static_cast<int32_t>(g.live().size());
    if (seqs + std::max(n, g.width) > config_.max_num_seqs) break;
    if (g.adapter_id && !adapters.count(g.adapter_id) &&
        static_cast<int32_t>(adapters.size()) >= config_.max_loras) {
      ++it;  // this adapter waits for a free slot; others may go ahead
      continue;
    }
    if (!schedule_group(g, budget, out, true)) break;
    if (g.adapter_id) adapters.insert(g.adapter_id);
    seqs += std::max(n, g.width);
    if (g.metrics.first_scheduled == Clock::time_point{}) g.metrics.first_scheduled = Clock::now();
    running_.push_back(std::move(*it));
    it = waiting_.erase(it);
  }
  return out;
}

void Scheduler::mark_computed(const SchedulerOutput& out) {
  const int32_t bs = blocks_.block_size();
  for (const auto& ss : out.seqs) {
    Sequence& s = *ss.seq;
    s.num_computed += ss.num_new;
    update_hashes(s);
    int32_t full = s.num_computed / bs;
    for (int32_t k = s.num_hashed; k < full && k < static_cast<int32_t>(s.hashes.size()); ++k)
      blocks_.set_hash(s.blocks[k], s.hashes[k]);
    s.num_hashed = std::max(s.num_hashed, std::min(full, static_cast<int32_t>(s.hashes.size())));
  }
}

std::vector<std::unique_ptr<SequenceGroup>> Scheduler::collect_finished() {
  std::vector<std::unique_ptr<SequenceGroup>> done;
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->all_finished() || (*it)->aborted) {
      for (auto& s : (*it)->seqs) free_seq(*s);
      done.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      // Free the blocks of sequences that finished while their group runs on.
      for (auto& s : (*it)->seqs)
        if (s->finished && !s->blocks.empty()) free_seq(*s);
      ++it;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->aborted) {
      for (auto& s : (*it)->seqs) free_seq(*s);
      done.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

std::unique_ptr<Sequence> Scheduler::fork(const Sequence& parent, int64_t id) {
  auto child = std::make_unique<Sequence>();
  child->id = id;
  child->group = parent.group;
  child->tokens = parent.tokens;
  child->prompt_len = parent.prompt_len;
  child->num_computed = parent.num_computed;
  child->blocks = parent.blocks;
  child->hashes = parent.hashes;
  child->num_hashed = parent.num_hashed;
  child->cumulative_logprob = parent.cumulative_logprob;
  child->logprobs = parent.logprobs;
  child->text = parent.text;
  if (parent.text_out) child->text_out = std::make_shared<TextOutput>(*parent.text_out);
  for (int32_t b : child->blocks) blocks_.take(b);
  return child;
}

}  // namespace banyan::core
