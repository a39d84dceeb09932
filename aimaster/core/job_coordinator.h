// JobCoordinator: the AIMaster's brain. It owns the ShardTable, the worker
// sessions and the journal, and answers every worker call; the gRPC layer only
// converts messages.
//
// Durability: a call that commits or quarantines shards appends to the journal
// and returns the journal sequence (`durable_seq`) to sync. Register and Fail
// must not be answered before it is durable. Confirmations of published shards
// are instead acknowledged in the `confirmed` list of a later answer once
// their commit is durable, so Acquire, Heartbeat and Commit never wait for the
// disk: the caller only asks for the sync (group commit in the background).
//
//   JobCoordinator coordinator(&clock, &shards, journal.get(), options);
//   WorkerIdentity who;
//   who.task_index = 3;
//   absl::StatusOr<Registration> reg = coordinator.Register(who, /*held=*/{});
//   absl::StatusOr<AcquireResult> got = coordinator.Acquire(reg->session, 16, {}, {});
//   absl::Status durable = journal->Sync(got->durable_seq);  // before answering
//
// Thread-safe: one mutex serialises all state; no call blocks on I/O.
#ifndef ELASTICBATCH_AIMASTER_CORE_JOB_COORDINATOR_H_
#define ELASTICBATCH_AIMASTER_CORE_JOB_COORDINATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/commit_acks.h"
#include "aimaster/core/job_state.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/rate_limiter.h"
#include "aimaster/core/request_limits.h"
#include "aimaster/core/shard_enumerator.h"
#include "aimaster/core/shard_table.h"
#include "aimaster/core/throughput.h"
#include "aimaster/core/worker_fleet.h"

namespace elasticbatch::aimaster {

struct CoordinatorOptions {
  // A lease not renewed (listed in a heartbeat) this long expires and its
  // shard is requeued. Default: 30s.
  absl::Duration lease_timeout = absl::Seconds(30);
  // How often workers should heartbeat. Default: 2s.
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // Failures after which a shard is quarantined. Default: 3.
  uint32_t max_attempts = 3;
  // Quarantined shards the job tolerates before it fails. Default: 0.
  uint64_t max_failed_shards = 0;
  // Duplicate a straggler's shard when it would take longer than this multiple
  // of the median shard time. Default: 3.
  double speculation_multiplier = 3.0;
  // Duplicate stragglers' shards at all. Default: true.
  bool speculation = true;
  // Identifies the job in status and registration answers. Default: "elasticbatch".
  std::string job_id = "elasticbatch";
  // This job instance (the journal's job_uid), told to workers at
  // registration: they believe only end markers that name it. Default: none.
  std::string job_uid;
  // The channels workers read shards from and publish outputs to, told to
  // them at registration. Default: "data" and "output".
  std::string input_channel = "data";
  std::string output_channel = "output";
  // Set when the master launches its workers itself (`aimaster run`).
  // Default: none (workers are launched by someone else).
  std::optional<FleetOptions> fleet;
  // Bounds on requests, sessions and answers. Default: RequestLimits's.
  RequestLimits limits;
};

struct WorkerIdentity {
  std::string task_type = "worker";
  uint32_t task_index = 0;
  uint32_t attempt = 0;
  std::string host;
  int32_t pid = 0;
};

struct HeldLease {
  LeaseRef lease;
  bool published = false;
  uint64_t records = 0;
  // The worker began processing it (false: only prefetched).
  bool started = false;
};

// --max-attempts at most: a quarantine record holds one error per attempt.
inline constexpr uint32_t kMaxAttemptsLimit = 1000;

struct Registration {
  SessionId session = 0;
  std::vector<LeaseRef> reclaimed;
  std::vector<LeaseRef> refused;
  uint64_t durable_seq = 0;
};

// One lease a worker holds; reporting it renews it.
struct ProgressReport {
  LeaseRef lease;
  uint64_t records_done = 0;
  uint64_t units_done = 0;
  // False while the shard is only prefetched.
  bool started = true;
};

// A shard as handed to a worker.
struct GrantedShard {
  LeasedShard leased;
  std::string output_name;
};

enum class AcquireOutcome { kShards, kWait, kEnd };

struct CommitRequest {
  LeaseRef lease;
  uint64_t records = 0;
};

// The decision on one commit request (v1::CommitResult on the wire).
struct CommitResult {
  LeaseRef lease;
  CommitDecision decision = CommitDecision::kLeaseLost;
  std::string reason;
};

struct WorkerCommand {
  enum class Kind { kCancelShard, kStop };
  Kind kind = Kind::kCancelShard;
  LeaseRef lease;
  std::string reason;
  bool job_finished = false;
};

struct AcquireResult {
  AcquireOutcome outcome = AcquireOutcome::kWait;
  std::vector<GrantedShard> shards;
  absl::Duration retry_after;
  bool job_succeeded = false;
  std::string end_reason;
  // Decisions on the commit requests the call carried.
  std::vector<CommitResult> commit_results;
  // Confirmations now durable.
  std::vector<LeaseRef> confirmed;
  // Cancellations queued for this worker (a prefetched shard given away).
  std::vector<WorkerCommand> commands;
  uint64_t durable_seq = 0;
};

struct HeartbeatResult {
  std::vector<WorkerCommand> commands;
  std::vector<LeaseRef> confirmed;
  uint64_t durable_seq = 0;
};

// The answer to a Commit call: a CommitResult per request, and more.
struct CommitCallResult {
  std::vector<CommitResult> results;
  std::vector<LeaseRef> confirmed;
  std::vector<WorkerCommand> commands;
  uint64_t durable_seq = 0;
};

struct FailResult {
  bool quarantined = false;
  uint32_t failures = 0;
  std::vector<WorkerCommand> commands;
  uint64_t durable_seq = 0;
};

struct JobProgress {
  JobState state = JobState::kRunning;
  std::string reason;
  uint64_t total_shards = 0;
  uint64_t committed_shards = 0;
  uint64_t quarantined_shards = 0;
  uint64_t leased_shards = 0;
  uint64_t pending_shards = 0;
  uint64_t speculative_leases = 0;
  uint64_t committed_records = 0;
  double records_per_second = 0;
  double shards_per_second = 0;
  std::optional<absl::Duration> eta;
  absl::Duration elapsed;
  uint32_t live_sessions = 0;
  // With a fleet: instances by state.
  uint32_t workers_running = 0;
  uint32_t workers_starting = 0;
  uint32_t workers_restarting = 0;
  uint32_t workers_total = 0;
};

struct SessionInfo {
  SessionId session = 0;
  WorkerIdentity who;
  bool live = false;
  std::string ended_reason;
  absl::Time registered_at;
  absl::Duration last_seen;
  uint32_t leases_held = 0;
  uint64_t shards_committed = 0;
  uint64_t records_committed = 0;
  double records_per_second = 0;
  double shards_per_second = 0;
};

class JobCoordinator {
 public:
  // `shards`, `journal` and `clock` must outlive the coordinator. Replays
  // nothing itself: restore the table with Restore*() before serving.
  JobCoordinator(const Clock* clock, const ShardEnumerator* shards, Journal* journal,
                 CoordinatorOptions options);

  // Replay of the journal (before serving).
  void RestoreCommitted(const CommitRecord& record);
  void RestoreQuarantined(const QuarantineRecord& record);

  // INVALID_ARGUMENT: unknown task type, host longer than kMaxHostBytes, more
  // held leases than a session may hold. RESOURCE_EXHAUSTED: `peer` (the
  // caller's host, as the service sees it; empty: not limited) registers
  // faster than limits.registrations_per_second, or too many sessions are
  // remembered (in total, or for this task index).
  // Session ids are random (never reused by a restarted master, unguessable).
  absl::StatusOr<Registration> Register(const WorkerIdentity& who,
                                        const std::vector<HeldLease>& held,
                                        absl::string_view peer = {});
  // NOT_FOUND: unknown session; FAILED_PRECONDITION: session ended;
  // INVALID_ARGUMENT: max_shards == 0, lists longer than CheckLeaseLists allows.
  // Hands out at most limits.max_shards_per_call shards, fewer when the
  // session would hold more than limits.max_leases_per_session or the
  // shards' encoded size would pass limits.max_answer_bytes.
  absl::StatusOr<AcquireResult> Acquire(SessionId session, uint32_t max_shards,
                                        const std::vector<LeaseRef>& published,
                                        const std::vector<ProgressReport>& progress,
                                        const std::vector<CommitRequest>& commits = {});
  absl::StatusOr<HeartbeatResult> Heartbeat(SessionId session,
                                            const std::vector<ProgressReport>& progress,
                                            const std::vector<LeaseRef>& published);
  absl::StatusOr<CommitCallResult> Commit(SessionId session,
                                          const std::vector<CommitRequest>& commits,
                                          const std::vector<LeaseRef>& published);
  // FAILED_PRECONDITION: the lease is not current (the message says why).
  absl::StatusOr<FailResult> Fail(SessionId session, LeaseRef lease,
                                  const std::string& error);

  // Periodic work: lease expiry, rate sampling, forgetting sessions past
  // limits.session_retention. Returns the journal sequence
  // to sync (0 when nothing was journalled).
  uint64_t Tick();

  // Ends the job now (idempotent): failed with `reason` unless all data is done.
  void Stop(const std::string& reason);

  JobProgress Progress() const;
  // Every session, live or ended, in registration order.
  std::vector<SessionInfo> Sessions() const;
  std::vector<ShardSnapshot> Shards(bool quarantined_only, size_t limit,
                                    bool* truncated) const;
  // Session -> task index and attempt, for naming leases in snapshots.
  std::optional<WorkerIdentity> SessionIdentity(SessionId session) const;

  // Fleet (when the master launches its workers). The decisions returned or
  // queued here are for the launch driver to carry out.
  bool has_fleet() const { return options_.fleet.has_value(); }
  std::vector<FleetDecision> StartWorkers();
  void WorkerStarted(uint32_t index, uint32_t attempt, int32_t pid);
  void WorkerExited(uint32_t index, uint32_t attempt, int exit_code);
  std::vector<FleetDecision> TakeFleetDecisions();
  std::vector<FleetDecision> StopAllWorkers(const std::string& reason);
  bool AllWorkersExited() const;
  std::vector<InstanceInfo> Workers() const;

  bool ended() const;
  // Increases whenever shards may have become available or the job ended;
  // long-polling acquires retry when it changes.
  uint64_t work_epoch() const;
  // True once every live session has been told the job ended (END or STOP).
  bool AllSessionsToldEnd() const;
  const CoordinatorOptions& options() const { return options_; }
  const ShardEnumerator& enumerator() const { return *shards_; }

 private:
  struct Session {
    WorkerIdentity who;
    // Registration order (session ids are random).
    uint64_t sequence = 0;
    absl::Time registered_at;
    absl::Time last_seen;
    // Non-empty once the session is over (superseded); its calls then fail.
    std::string ended_reason;
    absl::Time ended_at;
    bool leases_expired = false;
    bool told_end = false;
    std::vector<WorkerCommand> pending;
    WorkerThroughput throughput{absl::InfinitePast()};  // reset at registration
  };

  absl::StatusOr<Session*> LiveSession(SessionId id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Confirms published leases; returns the journal sequence to sync.
  uint64_t ConfirmLocked(SessionId id, const std::vector<LeaseRef>& published,
                         absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t JournalCommit(SessionId id, const PublishedShard& published, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How far the journal is durable (everything, without a journal).
  uint64_t DurableSeqLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The session's confirmations whose commits are durable by now.
  std::vector<LeaseRef> TakeDurableAcks(SessionId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the session's queued commands into `out`, skipping ones already there.
  void TakePendingCommands(Session& s, std::vector<WorkerCommand>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<CommitResult> DecideCommits(SessionId id,
                                          const std::vector<CommitRequest>& commits,
                                          absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t JournalFailures(const FailOutcome& outcome) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueRevocations(const std::vector<RevokedLease>& revoked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordProgressLocked(SessionId id, const std::vector<ProgressReport>& progress,
                            absl::Time now, std::vector<WorkerCommand>* cancels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeEndLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked(JobState state, const std::string& reason, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration RetryHintLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases failed attempts' sessions and queues the fleet's decisions.
  uint64_t ApplyFleetOutcome(FleetOutcome outcome, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndSessionLocked(SessionId id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Erases sessions past limits.session_retention.
  void ForgetSessionsLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or RESOURCE_EXHAUSTED when `who` from `peer` may not register now.
  absl::Status AdmitRegistrationLocked(const WorkerIdentity& who, absl::string_view peer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Leases up to `n` shards within the answer's byte budget.
  std::vector<LeasedShard> LeaseWithinBudgetLocked(SessionId session, uint32_t n,
                                                   absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string WorkerName(const WorkerIdentity& who) const;

  const Clock* const clock_;
  const ShardEnumerator* const shards_;
  Journal* const journal_;
  const CoordinatorOptions options_;
  const absl::Time started_at_;

  mutable absl::Mutex mu_;
  ShardTable table_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<SessionId, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, SessionId> live_by_index_ ABSL_GUARDED_BY(mu_);
  // Sessions remembered per task index (live and ended).
  absl::flat_hash_map<uint32_t, uint32_t> sessions_per_index_ ABSL_GUARDED_BY(mu_);
  KeyedRateLimiter registrations_by_peer_ ABSL_GUARDED_BY(mu_);
  uint64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  JobState state_ ABSL_GUARDED_BY(mu_) = JobState::kRunning;
  std::string end_reason_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> ended_at_ ABSL_GUARDED_BY(mu_);
  uint64_t committed_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t work_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  JobThroughput throughput_ ABSL_GUARDED_BY(mu_);
  std::optional<WorkerFleet> fleet_ ABSL_GUARDED_BY(mu_);
  CommitAcks acks_ ABSL_GUARDED_BY(mu_);
  std::vector<FleetDecision> fleet_decisions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_JOB_COORDINATOR_H_
