// Waiting for something another process or thread will do, bounded.
//
//   ASSERT_TRUE(testing::WaitUntil(absl::Now() + absl::Seconds(60),
//                                  [&] { return server.parked_acquires() == 1; }));
//
// Tests wait for a condition, never for a time tuned to one machine: the
// deadline is generous and only bounds a test that is failing anyway.
#ifndef ELASTICBATCH_TESTS_TESTING_WAIT_H_
#define ELASTICBATCH_TESTS_TESTING_WAIT_H_

#include <functional>

#include "absl/time/time.h"

namespace elasticbatch::testing {

// Polls `done` until it returns true (then returns true) or `deadline`
// passes (then returns false). The poll interval starts at 1 ms and doubles up to 50 ms,
// so a quick condition is seen quickly and a slow one costs little CPU on a busy machine.
bool WaitUntil(absl::Time deadline, const std::function<bool()>& done);

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_WAIT_H_
