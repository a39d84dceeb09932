// Time for the core: every time-dependent decision takes `now` from a Clock so
// that tests drive hours of job life in microseconds.
//
//   FakeClock clock(absl::FromUnixSeconds(1000));
//   clock.Advance(absl::Seconds(31));
//
// Both clocks are thread-safe.
#ifndef ELASTICBATCH_AIMASTER_CORE_CLOCK_H_
#define ELASTICBATCH_AIMASTER_CORE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace elasticbatch::aimaster {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'000'000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_CLOCK_H_
