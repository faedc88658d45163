#include "core/server/admission.h"

namespace banyan::core::server {

Admission::Result Admission::acquire(std::function<void()> on_grant, uint64_t& ticket) {
  std::lock_guard lock(mu_);
  ticket = 0;
  if (active_ < max_active_ && queue_.empty()) {
    ++active_;
    return Result::admitted;
  }
  if (static_cast<int>(queue_.size()) >= max_waiting_) return Result::rejected;
  ticket = next_ticket_++;
  queue_.push_back({ticket, std::move(on_grant)});
  return Result::queued;
}

bool Admission::cancel(uint64_t ticket) {
  std::lock_guard lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->ticket == ticket) {
      queue_.erase(it);
      return true;
    }
  }
  return false;
}

void Admission::release() {
  std::function<void()> grant;
  {
    std::lock_guard lock(mu_);
    if (!queue_.empty()) {
      grant = std::move(queue_.front().on_grant);  // the slot passes to the waiter
      queue_.pop_front();
    } else if (active_ > 0) {
      --active_;
    }
  }
  if (grant) grant();
}

int Admission::active() const {
  std::lock_guard lock(mu_);
  return active_;
}

int Admission::waiting() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace banyan::core::server
