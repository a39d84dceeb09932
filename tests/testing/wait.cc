#include "tests/testing/wait.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace elasticbatch::testing {

bool WaitUntil(absl::Time deadline, const std::function<bool()>& done) {
  absl::Duration pause = absl::Milliseconds(1);
  while (!done()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
  return true;
}

}  // namespace elasticbatch::testing
