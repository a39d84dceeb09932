// Answers calls only once what they changed is durable, without blocking a
// gRPC reaction: callbacks wait here while one thread group-commits the
// journal (every call that arrives during an fsync rides on the next one).
//
//   queue.AfterDurable(result.durable_seq, [reactor](absl::Status s) {
//     reactor->Finish(ToGrpcStatus(s));
//   });
//
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_DURABILITY_QUEUE_H_
#define ELASTICBATCH_AIMASTER_SERVICE_DURABILITY_QUEUE_H_

#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/core/journal.h"

namespace elasticbatch::aimaster {

class DurabilityQueue {
 public:
  // `journal` may be null (nothing is ever journalled then). `on_failure` runs
  // once, from the syncing thread, if the journal cannot be written.
  DurabilityQueue(Journal* journal, std::function<void(const absl::Status&)> on_failure);
  // Syncs and runs every callback still waiting.
  ~DurabilityQueue();

  // Runs `done` once records up to `seq` are durable: at once (on this thread)
  // when seq is 0 or already durable, else from the syncing thread.
  //
  // A journal failure is final: every callback waiting then, and every later
  // one (whatever its `seq`), gets UNAVAILABLE, and no sync is tried again,
  // even if the disk recovers (after a failed fsync the kernel may have
  // dropped the pages, so carrying on could acknowledge lost records).
  void AfterDurable(uint64_t seq, std::function<void(absl::Status)> done);
  // Asks for records up to `seq` to be synced soon; returns at once.
  void RequestSync(uint64_t seq);

 private:
  struct Waiter {
    uint64_t seq;
    std::function<void(absl::Status)> done;
  };
  void Run();

  Journal* const journal_;
  std::function<void(const absl::Status&)> on_failure_;
  absl::Mutex mu_;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Set once the journal failed: the answer to every call from then on.
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_DURABILITY_QUEUE_H_
