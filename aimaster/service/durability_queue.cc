#include "aimaster/service/durability_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace {

// How long requested syncs gather before one fsync covers them all.
constexpr absl::Duration kGatherWindow = absl::Milliseconds(2);

}  // namespace

DurabilityQueue::DurabilityQueue(Journal* journal,
                                 std::function<void(const absl::Status&)> on_failure)
    : journal_(journal), on_failure_(std::move(on_failure)), thread_([this] { Run(); }) {}

DurabilityQueue::~DurabilityQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void DurabilityQueue::AfterDurable(uint64_t seq, std::function<void(absl::Status)> done) {
  absl::Status answer;
  {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) {
      // The master is stopping: nothing it answers may suggest progress.
      answer = failure_;
    } else if (seq != 0 && seq > durable_ && journal_ != nullptr) {
      waiters_.push_back({seq, std::move(done)});
      return;
    }
  }
  done(answer);
}

void DurabilityQueue::RequestSync(uint64_t seq) {
  if (journal_ == nullptr || seq == 0) return;
  absl::MutexLock lock(&mu_);
  requested_ = std::max(requested_, seq);
}

void DurabilityQueue::Run() {
  while (true) {
    std::vector<Waiter> batch;
    uint64_t upto = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !waiters_.empty() || requested_ > durable_ || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (waiters_.empty() && requested_ <= durable_ && stopping_) return;
      // Nobody blocks on a requested sync (its acknowledgement rides on a later
      // answer), so gather a little more before paying for an fsync; a waiter
      // (registration, failure) cuts the window short.
      if (waiters_.empty() && !stopping_) {
        auto waiter = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !waiters_.empty() || stopping_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&waiter), kGatherWindow);
      }
      batch.swap(waiters_);
      upto = requested_;
    }
    for (const Waiter& w : batch) upto = std::max(upto, w.seq);
    const absl::Status s = journal_->Sync(upto);
    if (s.ok()) {
      {
        absl::MutexLock lock(&mu_);
        durable_ = std::max(durable_, upto);
      }
      for (Waiter& w : batch) w.done(s);
      continue;
    }
    // The journal's failure is for good (after a failed fsync the kernel may
    // have dropped the dirty pages): fail every call from now on, and stop
    // syncing although syncs stay requested. The failure is in place before
    // on_failure runs, so whoever it wakes sees every call refused.
    const absl::Status answer = absl::UnavailableError(
        absl::StrCat("master cannot persist progress: ", s.message()));
    {
      absl::MutexLock lock(&mu_);
      failure_ = answer;
      for (Waiter& w : waiters_) batch.push_back(std::move(w));
      waiters_.clear();
    }
    if (on_failure_) on_failure_(s);
    for (Waiter& w : batch) w.done(answer);
    return;  // later calls are answered at once, by AfterDurable
  }
}

}  // namespace elasticbatch::aimaster
