#include "core/server/outbox.h"

#include <unordered_map>

namespace banyan::core::server {

void Outbox::push(const std::shared_ptr<JobChannel>& ch, size_t prompt, RequestOutput&& out) {
  auto at = Clock::now();
  bool post = false;
  {
    std::lock_guard lock(mu_);
    items_.push_back({ch, JobChannel::Item{prompt, std::move(out), at}});
    post = !scheduled_;
    scheduled_ = true;
  }
  if (post) asio::post(ioc_, [self = shared_from_this()] { self->drain(); });
}

RequestSink Outbox::sink(std::shared_ptr<JobChannel> ch, size_t prompt) {
  return [self = shared_from_this(), ch = std::move(ch), prompt](RequestOutput&& out) {
    self->push(ch, prompt, std::move(out));
  };
}

// Only one drain runs at a time (scheduled_ stays set until it finds the queue
// empty), so the messages of a channel are posted to its strand in order.
void Outbox::drain() {
  for (;;) {
    std::vector<Item> items;
    {
      std::lock_guard lock(mu_);
      if (items_.empty()) {
        scheduled_ = false;
        return;
      }
      items.swap(items_);
    }
    // One post per channel and batch; messages keep their order within a channel.
    std::unordered_map<JobChannel*, size_t> slot;
    std::vector<std::pair<std::shared_ptr<JobChannel>, std::vector<JobChannel::Item>>> groups;
    slot.reserve(items.size());
    for (auto& it : items) {
      auto [pos, fresh] = slot.try_emplace(it.ch.get(), groups.size());
      if (fresh) groups.emplace_back(std::move(it.ch), std::vector<JobChannel::Item>{});
      groups[pos->second].second.push_back(std::move(it.item));
    }
    for (auto& [ch, mine] : groups) {
      asio::post(ch->strand, [ch = ch, mine = std::move(mine)]() mutable {
        for (auto& m : mine) ch->queue.push_back(std::move(m));
        ch->notify();
      });
    }
  }
}

}  // namespace banyan::core::server
