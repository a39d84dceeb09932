// Internal: the machinery behind Worker and Shard. One background thread
// prefetches shards, renews leases with heartbeats and sends publish
// confirmations; user threads call NextShard, Commit and Fail.
//
// The master is reached through a MasterClient and time read from a Clock,
// both injected (WorkerFactory), so tests run it against a fake master on
// fake time. Every call to the master goes through CallMaster(): it retries UNAVAILABLE
// (and CANCELLED / DEADLINE_EXCEEDED) with jittered exponential backoff, and on
// NOT_FOUND (the master restarted) re-registers with every lease this process
// holds, then retries. Thread-safe.
#ifndef ELASTICBATCH_WORKER_SDK_SRC_WORKER_CORE_H_
#define ELASTICBATCH_WORKER_SDK_SRC_WORKER_CORE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "elasticbatch/shard.h"
#include "elasticbatch/v1/elasticbatch.pb.h"
#include "elasticbatch/worker.h"
#include "worker_sdk/src/clock.h"
#include "worker_sdk/src/master_client.h"

namespace elasticbatch::internal {

using LeaseKey = std::pair<uint64_t, uint32_t>;  // (shard id, attempt)

// One lease held by this process.
struct ShardState {
  v1::Shard shard;
  std::string input_path;
  ShardUnit unit = ShardUnit::kBytes;
  std::atomic<bool> cancelled{false};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> units{0};
  // Handed to the user (started) / committed, failed or dropped (finished).
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  LeaseKey key() const { return {shard.shard_id(), shard.attempt()}; }
};

class WorkerCore : public std::enable_shared_from_this<WorkerCore> {
 public:
  // Connects (gRPC, real time), registers and starts the background thread.
  static absl::StatusOr<std::shared_ptr<WorkerCore>> Start(const WorkerOptions& options);
  // Start() through `master` on `clock`.
  static absl::StatusOr<std::shared_ptr<WorkerCore>> Start(
      const WorkerOptions& options, std::unique_ptr<MasterClient> master,
      std::shared_ptr<const Clock> clock);
  ~WorkerCore();
  // Sends outstanding confirmations (briefly) and stops the background thread.
  void Stop();

  absl::StatusOr<std::optional<Shard>> NextShard();
  absl::Status Commit(const std::shared_ptr<ShardState>& state,
                      const std::function<absl::Status()>& publish);
  absl::Status Fail(const std::shared_ptr<ShardState>& state, const absl::Status& error);
  // A Shard was destroyed unfinished: stop renewing its lease.
  void Abandon(const std::shared_ptr<ShardState>& state);

  bool ended() const;
  bool job_succeeded() const;
  std::string end_reason() const;
  const std::string& input_channel() const { return input_channel_; }
  const std::string& output_channel() const { return output_channel_; }
  const std::string& input_root() const { return input_root_; }
  const std::string& output_dir() const { return output_dir_; }
  uint64_t total_shards() const { return total_shards_; }
  uint32_t task_index() const { return options_.task_index; }

 private:
  // INVALID_ARGUMENT for options no worker can run with.
  static absl::Status CheckOptions(const WorkerOptions& options);
  WorkerCore(const WorkerOptions& options, std::unique_ptr<MasterClient> master,
             std::shared_ptr<const Clock> clock);

  // Runs `rpc(timeout, session)` until it is not a transient failure; see above.
  absl::Status CallMaster(
      const std::function<absl::Status(absl::Duration timeout, uint64_t session)>& rpc);
  // Registers (again). `stale_session`: only if the session is still this one.
  absl::Status Register(uint64_t stale_session);
  // Waits a random time up to `*backoff` unless Stop() is called, and doubles
  // `*backoff` up to max_backoff; false when stopping.
  bool BackOffUnlessStopped(absl::Duration* backoff);
  // _SUCCESS or _FAILED in the output channel that names this worker's job
  // instance: the job is over (the master may be gone for good).
  bool JobEndedOnDisk();
  // The status a call returns once JobEndedOnDisk() said the job is over.
  absl::Status JobOverStatus() const;
  // OK when a shard from the master stays within this worker's input and
  // output roots and is well-formed; else why not (the shard is failed, never
  // processed: a rogue or confused master must not steer the worker).
  absl::Status ValidateShard(const v1::Shard& shard) const;

  void Run();
  bool AcquireOnce(uint32_t max_shards);
  void HeartbeatOnce();
  // Commands arrive with heartbeats, and cancellations also with acquire and
  // commit answers.
  void HandleCommands(
      const google::protobuf::RepeatedPtrField<v1::WorkerCommand>& commands);
  // Tells the master the attempt failed with `error` and drops the lease here.
  absl::Status ReportFailure(const LeaseKey& key, const absl::Status& error,
                             bool cancelled);
  void MarkEnded(bool succeeded, const std::string& reason);
  void MarkFatal(const absl::Status& status);
  void FatalLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Progress entries for every live lease and the confirmations to send.
  void FillProgress(google::protobuf::RepeatedPtrField<v1::ShardProgress>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds every unacknowledged confirmation to `out`.
  void TakeConfirmations(google::protobuf::RepeatedPtrField<v1::LeaseRef>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The master made these confirmations durable: stop sending them.
  void Acknowledge(const google::protobuf::RepeatedPtrField<v1::LeaseRef>& confirmed)
      ABSL_LOCKS_EXCLUDED(mu_);
  void DropLocked(const LeaseKey& key, bool cancelled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ResolveInput(const std::string& source) const;

  const WorkerOptions options_;
  const std::unique_ptr<MasterClient> master_;
  const std::shared_ptr<const Clock> clock_;
  std::string host_;

  // Facts from the first registration; constant afterwards.
  std::string input_channel_;
  std::string output_channel_;
  std::string job_uid_;
  std::string input_root_;
  std::string output_dir_;
  uint64_t total_shards_ = 0;
  absl::Duration heartbeat_interval_ = absl::Seconds(2);
  absl::Duration lease_timeout_ = absl::Seconds(30);

  mutable absl::Mutex mu_;
  uint64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<ShardState>> queue_ ABSL_GUARDED_BY(mu_);
  std::map<LeaseKey, std::shared_ptr<ShardState>> held_ ABSL_GUARDED_BY(mu_);
  // Published under a grant, awaiting acknowledgement: key -> (records, last sent).
  std::map<LeaseKey, std::pair<uint64_t, absl::Time>> published_ ABSL_GUARDED_BY(mu_);
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool succeeded_ ABSL_GUARDED_BY(mu_) = false;
  std::string end_reason_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_acquire_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  absl::Mutex register_mu_;  // one (re-)registration at a time
  std::thread thread_;
};

// How a Worker is made around an injected master client and clock (a friend
// of Worker): the seam for tests with a fake master and fake time.
class WorkerFactory {
 public:
  static absl::StatusOr<std::unique_ptr<Worker>> Create(
      const WorkerOptions& options, std::unique_ptr<MasterClient> master,
      std::shared_ptr<const Clock> clock);
};

}  // namespace elasticbatch::internal

#endif  // ELASTICBATCH_WORKER_SDK_SRC_WORKER_CORE_H_
