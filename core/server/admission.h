// Admission of generation requests: at most max_active in the engine at once, at
// most max_waiting queued behind them (FIFO); beyond that a request is refused
// (429). A queued request is granted a slot when one frees.
//
// Thread-safety: every method may be called from any thread. Grant callbacks run on
// the releasing thread, outside the lock; they must only post work elsewhere.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace banyan::core::server {

class Admission {
 public:
  enum class Result { admitted, queued, rejected };

  Admission(int max_active, int max_waiting) : max_active_(max_active), max_waiting_(max_waiting) {}

  /// Takes a slot now, or queues `on_grant` (then `ticket` identifies the waiter).
  Result acquire(std::function<void()> on_grant, uint64_t& ticket);
  /// Removes a queued waiter. False when it was already granted (the caller then
  /// holds a slot and must release it).
  bool cancel(uint64_t ticket);
  /// Frees a slot; the oldest waiter, if any, gets it.
  void release();

  int active() const;
  int waiting() const;

 private:
  struct Waiter {
    uint64_t ticket;
    std::function<void()> on_grant;
  };
  const int max_active_, max_waiting_;
  mutable std::mutex mu_;
  int active_ = 0;
  uint64_t next_ticket_ = 1;
  std::deque<Waiter> queue_;
};

}  // namespace banyan::core::server
