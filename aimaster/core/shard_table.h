// ShardTable: the life of every shard.
//
//   PENDING -> LEASED(session, attempt) -> COMMITTED
//                 |  lease lost / failure          (attempt = fencing token)
//                 v
//              PENDING (requeued, handed out before fresh shards)
//                 |  failed max_attempts times
//                 v
//              QUARANTINED (every error kept)
//
// Memory: one bit per shard plus O(in-flight + requeued + quarantined) entries;
// fresh shards are the range [cursor, total) and are never materialised.
//
// A lease is (shard_id, attempt) held by one session. Every call naming a lease
// is checked against the current leases of the shard; a stale one is rejected
// with FAILED_PRECONDITION saying why (expired, reassigned, superseded, ...).
// Exactly one lease of a shard can hold the commit grant; the shard is committed
// when that lease confirms it published its output.
//
//   ShardTableOptions options;
//   options.max_attempts = 3;
//   ShardTable table(&shards, options);
//   std::vector<LeasedShard> leased = table.Acquire(session, 16, now);
//   LeaseRef lease{leased[0].shard.id, leased[0].attempt};
//   CommitOutcome c = table.RequestCommit(session, lease, records, now);  // kGranted
//   absl::StatusOr<PublishedShard> published =
//       table.ConfirmPublished(session, lease, now);  // journal it
//
// Not thread-safe: the JobCoordinator serialises all calls under its mutex.
#ifndef ELASTICBATCH_AIMASTER_CORE_SHARD_TABLE_H_
#define ELASTICBATCH_AIMASTER_CORE_SHARD_TABLE_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "aimaster/core/ids.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "aimaster/core/speculation_policy.h"

namespace elasticbatch::aimaster {

struct LeasedShard {
  ShardDescriptor shard;
  uint32_t attempt = 0;
  bool speculative = false;
};

enum class CommitDecision { kGranted, kAlreadyCommitted, kLeaseLost };

struct CommitOutcome {
  CommitDecision decision = CommitDecision::kLeaseLost;
  std::string reason;
};

// A lease taken away from a session that should stop working on it.
struct RevokedLease {
  SessionId session = 0;
  LeaseRef lease;
  std::string reason;
};

// Result of a confirmed publish.
struct PublishedShard {
  // False when the shard was already committed (an idempotent retry or a
  // duplicate); nothing needs journalling then.
  bool newly_committed = false;
  CommitRecord record;  // task_index is left 0: the coordinator fills it in
  std::vector<RevokedLease> revoked;
};

struct FailOutcome {
  // Failures recorded for the shard (the largest, for several shards).
  uint32_t failures = 0;
  // Shards this call quarantined; each must be journalled.
  std::vector<QuarantineRecord> quarantined;
  std::vector<RevokedLease> revoked;
};

struct ShardTableOptions {
  // Failures after which a shard is quarantined. Default: 3.
  uint32_t max_attempts = 3;
};

// A read-only view of one non-pending shard, for the Admin service.
struct ShardSnapshot {
  struct LeaseView {
    LeaseRef lease;
    SessionId session = 0;
    uint64_t records_done = 0;
    absl::Duration age;
    bool speculative = false;
    bool commit_granted = false;
    // Since the holder began processing it; unset while only prefetched.
    std::optional<absl::Duration> running_for;
    uint64_t units_done = 0;
  };
  ShardDescriptor shard;
  bool quarantined = false;
  bool queued = false;
  std::vector<LeaseView> leases;
  std::vector<std::string> errors;
};

class ShardTable {
 public:
  ShardTable(const ShardEnumerator* shards, ShardTableOptions options);

  // Replay, before any lease is handed out.
  void RestoreCommitted(uint64_t shard_id);
  void RestoreQuarantined(uint64_t shard_id, std::vector<std::string> errors);

  // Leases up to `max_n` pending shards to `session`, requeued ones first.
  std::vector<LeasedShard> Acquire(SessionId session, uint32_t max_n, absl::Time now);

  // The in-flight shard with the largest estimated remaining time, if that
  // time exceeds `multiplier` x the median shard time; never one of
  // `for_session`'s own shards, never one already duplicated or granted.
  // Decided by the SpeculationPolicy (as is PickStealable).
  std::optional<uint64_t> PickStraggler(SessionId for_session, double multiplier,
                                        absl::Time now) const;
  // Leases an in-flight shard a second time (speculative duplicate).
  LeasedShard LeaseDuplicate(uint64_t shard_id, SessionId session, absl::Time now);

  // A shard prefetched by another session that has not started it and would
  // not start it for longer than `min_wait` (it is busy with others): handing
  // it to an idle session loses no work.
  std::optional<uint64_t> PickStealable(SessionId for_session, absl::Duration min_wait,
                                        absl::Time now) const;
  // Moves that unstarted lease to `session` under a new attempt; the old
  // holder's lease is revoked (it must be told to drop the shard).
  LeasedShard Steal(uint64_t shard_id, SessionId session, absl::Time now,
                    RevokedLease* revoked);

  // OK when `lease` is current and held by `session`; FAILED_PRECONDITION
  // saying why not otherwise.
  absl::Status CheckLease(SessionId session, LeaseRef lease) const;

  // Records progress on a lease the worker has started; renews it.
  absl::Status RecordProgress(SessionId session, LeaseRef lease, uint64_t records_done,
                              uint64_t units_done, absl::Time now);
  // Renews a lease the worker holds but has not started (prefetched).
  absl::Status Renew(SessionId session, LeaseRef lease, absl::Time now);
  // Drops every lease not renewed within `timeout`; its shard is requeued, and
  // counts a failure when the lease had been started.
  FailOutcome ExpireLeases(absl::Time now, absl::Duration timeout);
  CommitOutcome RequestCommit(SessionId session, LeaseRef lease, uint64_t records,
                              absl::Time now);
  absl::StatusOr<PublishedShard> ConfirmPublished(SessionId session, LeaseRef lease,
                                                  absl::Time now);
  absl::StatusOr<FailOutcome> Fail(SessionId session, LeaseRef lease,
                                   const std::string& error, absl::Time now);

  // After a master restart: `session` still holds `lease` (`started`: it began
  // processing it; false while only prefetched). Accepted (true) when the
  // shard is neither done nor leased to anyone. A reclaimed lease counts as a
  // failure of its shard (when its holder dies or it expires) only once its
  // holder reported progress on it to this master: a claim alone proves nothing.
  bool Reclaim(SessionId session, LeaseRef lease, bool started, absl::Time now);
  // After a master restart: `session` published `lease` under a grant of the
  // previous master. Commits the shard unless it is done or another lease
  // holds a grant (nullopt then: refused).
  std::optional<PublishedShard> AdoptPublished(SessionId session, LeaseRef lease,
                                               uint64_t records, absl::Time now);

  // Drops every lease of `session` with `reason` (kept for fencing messages).
  // When `count_as_failure`, each lease the session had started counts as a
  // failure of its shard with `reason` as the error, which may quarantine it.
  FailOutcome ReleaseSession(SessionId session, const std::string& reason,
                             bool count_as_failure, absl::Time now);

  std::vector<LeaseRef> LeasesOf(SessionId session) const;
  size_t LeaseCount(SessionId session) const;

  uint64_t total() const { return shards_->shard_count(); }
  uint64_t committed() const { return done_count_ - quarantined_.size(); }
  uint64_t quarantined() const { return quarantined_.size(); }
  uint64_t leased_shards() const { return leased_shards_; }
  uint64_t pending() const { return total() - done_count_ - leased_shards_; }
  uint64_t speculative_leases() const { return speculative_leases_; }
  bool finished() const { return done_count_ == total(); }
  bool IsCommitted(uint64_t shard_id) const {
    return IsDone(shard_id) && !quarantined_.contains(shard_id);
  }
  // Median time from a shard's start to its commit request, over recent shards.
  std::optional<absl::Duration> MedianShardTime() const;

  std::vector<ShardSnapshot> Snapshot(bool quarantined_only, size_t limit, absl::Time now,
                                      bool* truncated) const;

 private:
  struct Lease {
    uint32_t attempt = 0;
    SessionId session = 0;
    absl::Time granted_at;
    absl::Time renewed_at;
    std::optional<absl::Time> started_at;
    // This master saw the attempt work on the shard (a started progress report
    // or a commit request): only then does losing the lease count a failure.
    bool progress_seen = false;
    uint64_t records_done = 0;
    uint64_t units_done = 0;
    bool speculative = false;
    bool commit_granted = false;
    uint64_t commit_records = 0;
  };
  struct Tombstone {
    uint32_t attempt = 0;
    std::string reason;
  };
  struct ActiveShard {
    uint32_t last_attempt = 0;
    absl::InlinedVector<Lease, 1> leases;
    std::vector<std::string> errors;
    std::vector<Tombstone> gone;
    bool queued = false;
  };

  bool IsDone(uint64_t id) const { return (done_bits_[id >> 6] >> (id & 63)) & 1; }
  void MarkDone(uint64_t id);
  LeasedShard GrantLease(uint64_t id, ActiveShard& shard, SessionId session,
                         absl::Time now, bool speculative);
  // Removes `id` from the shards `session` holds (by_session_).
  void ForgetHeld(SessionId session, uint64_t id);
  // Removes leases[index], remembering `reason`; requeues the shard when no
  // lease is left.
  void DropLease(uint64_t id, ActiveShard& shard, size_t index,
                 const std::string& reason);
  void Enqueue(uint64_t id, ActiveShard& shard);
  // Tells the policy the current leases of shard `id`; called after every
  // change to them.
  void UpdatePolicy(uint64_t id);
  // Returns the index of `lease` among the shard's current leases held by
  // `session`, or an error saying why it is not current.
  absl::StatusOr<size_t> FindLease(SessionId session, LeaseRef lease) const;
  PublishedShard CommitShard(uint64_t id, size_t winner, absl::Time now);
  // Records a failure; quarantines the shard after max_attempts of them.
  void CountFailure(uint64_t id, const std::string& error, FailOutcome* outcome);
  void Quarantine(uint64_t id, FailOutcome* outcome);

  const ShardEnumerator* shards_;
  ShardTableOptions options_;
  std::vector<uint64_t> done_bits_;  // committed or quarantined
  uint64_t done_count_ = 0;
  absl::flat_hash_map<uint64_t, std::vector<std::string>> quarantined_;
  absl::flat_hash_map<uint64_t, ActiveShard> active_;
  std::deque<uint64_t> requeue_;  // may hold stale ids; ActiveShard::queued rules
  uint64_t cursor_ = 0;           // fresh shards are [cursor_, total) minus active/done
  absl::flat_hash_map<SessionId, absl::flat_hash_set<uint64_t>> by_session_;
  uint64_t leased_shards_ = 0;
  uint64_t speculative_leases_ = 0;
  std::deque<absl::Duration> recent_shard_times_;
  SpeculationPolicy policy_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_SHARD_TABLE_H_
