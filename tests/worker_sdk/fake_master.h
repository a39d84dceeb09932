// FakeMaster: a hand-written, in-memory AIMaster behind the SDK's MasterClient
// seam, so worker tests need no server, no port and no real sleeps.
//
//   auto master = std::make_unique<FakeMaster>(FakeMaster::LineShards(path, size, 100));
//   FakeMaster* fake = master.get();
//   auto worker = internal::WorkerFactory::Create(options, std::move(master), clock);
//
// It hands out shards in order, renews the leases a call lists, expires those
// not renewed within lease_timeout (by the injected clock), grants a commit
// only to a current lease, answers END once every shard is committed or
// failed (a failed shard is quarantined at once) and can be told to fail calls.
// Thread-safe.
#ifndef ELASTICBATCH_TESTS_WORKER_SDK_FAKE_MASTER_H_
#define ELASTICBATCH_TESTS_WORKER_SDK_FAKE_MASTER_H_

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "worker_sdk/src/clock.h"
#include "worker_sdk/src/master_client.h"

namespace elasticbatch::testing {

// (Outside FakeMaster: a nested struct's defaults cannot serve as a default
// argument of its enclosing class.)
struct FakeMasterOptions {
  // Default: 100ms.
  absl::Duration heartbeat_interval = absl::Milliseconds(100);
  // Default: 600ms.
  absl::Duration lease_timeout = absl::Milliseconds(600);
  // Time of lease renewals and expiry. Default: real time.
  const internal::Clock* clock = nullptr;
};

class FakeMaster final : public internal::MasterClient {
 public:
  using LeaseKey = std::pair<uint64_t, uint32_t>;

  using Options = FakeMasterOptions;

  // BYTES shards of `size` bytes of source `source` ("a.jsonl" in channel
  // "data"), `shard_bytes` each.
  static std::vector<v1::Shard> ByteShards(const std::string& source, uint64_t size,
                                           uint64_t shard_bytes) {
    std::vector<v1::Shard> shards;
    for (uint64_t begin = 0; begin < size; begin += shard_bytes) {
      v1::Shard s;
      s.set_shard_id(shards.size());
      s.set_channel("data");
      s.set_source(source);
      s.set_begin(begin);
      s.set_end(std::min(size, begin + shard_bytes));
      s.set_unit(v1::SHARD_UNIT_BYTES);
      s.set_output_name(absl::StrFormat("part-%05d", shards.size()));
      shards.push_back(s);
    }
    return shards;
  }

  explicit FakeMaster(std::vector<v1::Shard> shards, Options options = Options())
      : options_(options), total_(shards.size()) {
    if (options_.clock == nullptr) options_.clock = &real_clock_;
    for (v1::Shard& s : shards) todo_.push_back(std::move(s));
  }

  // The next `n` calls (any RPC) return `status` without effect.
  void FailNextCalls(int n, absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_calls_ = n;
    fail_status_ = std::move(status);
  }
  // As a master restarted from its journal: sessions are forgotten (calls get
  // NOT_FOUND until the worker registers again), leases are kept.
  void ForgetSessions() {
    absl::MutexLock lock(&mu_);
    session_ += 1000;
  }
  int registrations() const {
    absl::MutexLock lock(&mu_);
    return registrations_;
  }
  // Tells the holder of `shard_id` to cancel it with the next answer.
  void Cancel(uint64_t shard_id) {
    absl::MutexLock lock(&mu_);
    for (auto it = leases_.begin(); it != leases_.end(); ++it) {
      if (it->first.first != shard_id) continue;
      cancels_.push_back(it->first);
      leases_.erase(it);
      break;
    }
  }

  std::map<uint64_t, int> commits() const {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  std::map<uint64_t, std::string> failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  std::vector<LeaseKey> expired() const {
    absl::MutexLock lock(&mu_);
    return expired_;
  }
  int heartbeats() const {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  size_t leased() const {
    absl::MutexLock lock(&mu_);
    return leases_.size();
  }
  // Progress (records, units) last reported for `shard_id`.
  std::pair<uint64_t, uint64_t> progress(uint64_t shard_id) const {
    absl::MutexLock lock(&mu_);
    auto it = progress_.find(shard_id);
    return it == progress_.end() ? std::pair<uint64_t, uint64_t>{0, 0} : it->second;
  }
  // Blocks (real time, bounded) until `n` leases are held.
  bool AwaitLeased(size_t n, absl::Duration patience = absl::Seconds(10)) const {
    absl::MutexLock lock(&mu_);
    auto held = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return leases_.size() == n; };
    return mu_.AwaitWithTimeout(absl::Condition(&held), patience);
  }
  // Blocks (real time, bounded) until a heartbeat or acquire arrived at or
  // after `t` on the master's clock; false on time-out.
  bool AwaitCallAt(absl::Time t, absl::Duration patience = absl::Seconds(10)) const {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return last_call_ >= t; };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), patience);
  }

  absl::Status RegisterWorker(const v1::RegisterWorkerRequest& request,
                              v1::RegisterWorkerResponse* response,
                              absl::Duration) override {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Injected(); !s.ok()) return s;
    Expire();
    ++registrations_;
    response->set_session_id(++session_);
    SetDuration(options_.heartbeat_interval, response->mutable_heartbeat_interval());
    SetDuration(options_.lease_timeout, response->mutable_lease_timeout());
    v1::JobInfo* job = response->mutable_job();
    job->set_job_id("fake");
    job->set_job_uid("fake-job-uid");
    job->set_input_channel("data");
    job->set_output_channel("out");
    job->set_total_shards(total_);
    for (const v1::HeldLease& h : request.held_leases()) Renew(h.lease());
    return absl::OkStatus();
  }

  absl::Status AcquireShards(const v1::AcquireShardsRequest& request,
                             v1::AcquireShardsResponse* response,
                             absl::Duration) override {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Injected(); !s.ok()) return s;
    if (request.session_id() != session_) return absl::NotFoundError("unknown session");
    last_call_ = options_.clock->Now();
    Expire();
    for (const v1::ShardProgress& p : request.progress()) Report(p);
    Confirm(request.published(), response->mutable_confirmed());
    TakeCommands(response->mutable_commands());
    if (todo_.empty() && leases_.empty()) {
      response->set_outcome(v1::AcquireShardsResponse::END);
      response->set_job_succeeded(failed_.empty());
      response->set_end_reason(failed_.empty() ? "all shards committed"
                                               : "shards quarantined");
      return absl::OkStatus();
    }
    if (todo_.empty()) {
      response->set_outcome(v1::AcquireShardsResponse::WAIT);
      SetDuration(absl::Milliseconds(10), response->mutable_retry_after());
      return absl::OkStatus();
    }
    response->set_outcome(v1::AcquireShardsResponse::SHARDS);
    for (uint32_t i = 0; i < std::max(1u, request.max_shards()) && !todo_.empty(); ++i) {
      v1::Shard s = std::move(todo_.front());
      todo_.pop_front();
      s.set_attempt(++attempts_[s.shard_id()]);
      leases_[{s.shard_id(), s.attempt()}] = options_.clock->Now();
      *response->add_shards() = std::move(s);
    }
    return absl::OkStatus();
  }

  absl::Status Heartbeat(const v1::HeartbeatRequest& request,
                         v1::HeartbeatResponse* response, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Injected(); !s.ok()) return s;
    if (request.session_id() != session_) return absl::NotFoundError("unknown session");
    ++heartbeats_;
    last_call_ = options_.clock->Now();
    Expire();
    for (const v1::ShardProgress& p : request.progress()) Report(p);
    Confirm(request.published(), response->mutable_confirmed());
    TakeCommands(response->mutable_commands());
    return absl::OkStatus();
  }

  absl::Status CommitShard(const v1::CommitShardRequest& request,
                           v1::CommitShardResponse* response, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Injected(); !s.ok()) return s;
    if (request.session_id() != session_) return absl::NotFoundError("unknown session");
    Expire();
    Confirm(request.published(), response->mutable_confirmed());
    for (const v1::ShardCompletion& c : request.commits()) {
      v1::CommitResult* r = response->add_results();
      *r->mutable_lease() = c.lease();
      const LeaseKey key{c.lease().shard_id(), c.lease().attempt()};
      if (leases_.erase(key) == 0) {
        r->set_decision(v1::CommitResult::LEASE_LOST);
        r->set_reason("the lease is not current");
        continue;
      }
      r->set_decision(v1::CommitResult::GRANTED);
      ++commits_[key.first];
    }
    TakeCommands(response->mutable_commands());
    return absl::OkStatus();
  }

  absl::Status FailShard(const v1::FailShardRequest& request,
                         v1::FailShardResponse* response, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Injected(); !s.ok()) return s;
    if (request.session_id() != session_) return absl::NotFoundError("unknown session");
    Expire();
    const LeaseKey key{request.lease().shard_id(), request.lease().attempt()};
    if (leases_.erase(key) == 0) return absl::FailedPreconditionError("lease lost");
    failed_[key.first] = request.error();
    response->set_outcome(v1::FailShardResponse::QUARANTINED);
    response->set_failures(1);
    return absl::OkStatus();
  }

 private:
  static void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
    out->set_seconds(absl::ToInt64Seconds(d));
    out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d) % 1'000'000'000));
  }
  absl::Status Injected() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fail_calls_ == 0) return absl::OkStatus();
    --fail_calls_;
    return fail_status_;
  }
  void Renew(const v1::LeaseRef& l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = leases_.find({l.shard_id(), l.attempt()});
    if (it != leases_.end()) it->second = options_.clock->Now();
  }
  void Report(const v1::ShardProgress& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Renew(p.lease());
    progress_[p.lease().shard_id()] = {p.records_done(), p.units_done()};
  }
  // A lease not renewed in time goes back to the queue, as the master's would.
  void Expire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = options_.clock->Now();
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (now - it->second <= options_.lease_timeout) {
        ++it;
        continue;
      }
      expired_.push_back(it->first);
      it = leases_.erase(it);
    }
  }
  void Confirm(const google::protobuf::RepeatedPtrField<v1::LeaseRef>& published,
               google::protobuf::RepeatedPtrField<v1::LeaseRef>* confirmed) {
    for (const v1::LeaseRef& l : published) *confirmed->Add() = l;
  }
  void TakeCommands(google::protobuf::RepeatedPtrField<v1::WorkerCommand>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const LeaseKey& key : cancels_) {
      v1::WorkerCommand* c = out->Add();
      c->set_kind(v1::WorkerCommand::CANCEL_SHARD);
      c->mutable_lease()->set_shard_id(key.first);
      c->mutable_lease()->set_attempt(key.second);
    }
    cancels_.clear();
  }

  Options options_;
  internal::RealClock real_clock_;
  const uint64_t total_;
  mutable absl::Mutex mu_;
  std::deque<v1::Shard> todo_ ABSL_GUARDED_BY(mu_);
  std::map<LeaseKey, absl::Time> leases_ ABSL_GUARDED_BY(mu_);  // -> last renewal
  std::map<uint64_t, uint32_t> attempts_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int> commits_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> failed_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> progress_ ABSL_GUARDED_BY(mu_);
  std::vector<LeaseKey> expired_ ABSL_GUARDED_BY(mu_);
  std::vector<LeaseKey> cancels_ ABSL_GUARDED_BY(mu_);
  uint64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int registrations_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_call_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int fail_calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_WORKER_SDK_FAKE_MASTER_H_
