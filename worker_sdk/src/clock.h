// Internal: the worker's time, injected so that tests drive heartbeats, lease
// renewals and backoff with fake time instead of real sleeps.
//
//   FakeClock clock;
//   clock.Advance(absl::Milliseconds(100));   // the next heartbeat is due
//
// (The master's Clock in aimaster/core is not reused: the SDK does not depend
// on the master's code, and the worker also needs to wait on its own clock.)
// Both clocks are thread-safe.
#ifndef ELASTICBATCH_WORKER_SDK_SRC_CLOCK_H_
#define ELASTICBATCH_WORKER_SDK_SRC_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace elasticbatch::internal {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // With `*mu` held: waits until `condition` holds or Now() reaches
  // `deadline`; returns whether the condition holds.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                                 absl::Time deadline) const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                         absl::Time deadline) const override {
    return mu->AwaitWithDeadline(condition, deadline);
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'000'000))
      : nanos_(absl::ToUnixNanos(start)) {}
  // Atomic, not a mutex: Now() runs inside the worker's mutex conditions.
  absl::Time Now() const override { return absl::FromUnixNanos(nanos_.load()); }
  void Advance(absl::Duration d) { nanos_ += absl::ToInt64Nanoseconds(d); }
  // Advance() cannot reach the waiter's mutex to wake it, so the waiter
  // re-checks fake time every millisecond of real time.
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                         absl::Time deadline) const override {
    const char token = 0;  // its address names this wait
    while (true) {
      const absl::Time now = Now();
      if (condition.Eval() || now >= deadline) break;
      Saw(&token, now);
      mu->AwaitWithTimeout(condition, absl::Milliseconds(1));
    }
    Forget(&token);
    return condition.Eval();
  }
  // Blocks until `n` threads wait for fake time to pass and have seen the
  // current time (so a test advances time only once the worker is idle at
  // the time it last set); false after `patience` of real time.
  bool BlockUntilWaiting(int n, absl::Duration patience = absl::Seconds(10)) const {
    absl::MutexLock lock(&waiting_mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiting_mu_) {
      int current = 0;
      for (const auto& [wait, seen] : waiting_) current += seen == nanos_.load();
      return current >= n;
    };
    return waiting_mu_.AwaitWithTimeout(absl::Condition(&reached), patience);
  }

 private:
  void Saw(const void* wait, absl::Time now) const {
    absl::MutexLock lock(&waiting_mu_);
    waiting_[wait] = absl::ToUnixNanos(now);
  }
  void Forget(const void* wait) const {
    absl::MutexLock lock(&waiting_mu_);
    waiting_.erase(wait);
  }

  std::atomic<int64_t> nanos_;
  mutable absl::Mutex waiting_mu_;
  // Each wait in progress -> the fake time it last saw.
  mutable std::map<const void*, int64_t> waiting_ ABSL_GUARDED_BY(waiting_mu_);
};

}  // namespace elasticbatch::internal

#endif  // ELASTICBATCH_WORKER_SDK_SRC_CLOCK_H_
