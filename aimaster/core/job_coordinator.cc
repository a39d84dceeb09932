#include "aimaster/core/job_coordinator.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aimaster/core/random_id.h"

namespace elasticbatch::aimaster {
namespace {

// What a granted shard adds to an AcquireShards answer, give or take the
// framing of its small fields.
size_t EncodedSize(const ShardDescriptor& shard, const std::string& output_name,
                   const std::string& channel) {
  return shard.source->size() + output_name.size() + channel.size() + 64;
}

}  // namespace

JobCoordinator::JobCoordinator(const Clock* clock, const ShardEnumerator* shards,
                               Journal* journal, CoordinatorOptions options)
    : clock_(clock),
      shards_(shards),
      journal_(journal),
      options_(std::move(options)),
      started_at_(clock->Now()),
      table_(shards,
             ShardTableOptions{std::min(options_.max_attempts, kMaxAttemptsLimit)}),
      registrations_by_peer_(clock, {options_.limits.registrations_per_second,
                                     options_.limits.registration_burst,
                                     options_.limits.max_tracked_peers}) {
  if (options_.fleet) fleet_.emplace(*options_.fleet);
}

void JobCoordinator::RestoreCommitted(const CommitRecord& record) {
  absl::MutexLock lock(&mu_);
  if (record.shard_id < table_.total() && !table_.IsCommitted(record.shard_id)) {
    table_.RestoreCommitted(record.shard_id);
    committed_records_ += record.records;
  }
  MaybeEndLocked(clock_->Now());
}

void JobCoordinator::RestoreQuarantined(const QuarantineRecord& record) {
  absl::MutexLock lock(&mu_);
  table_.RestoreQuarantined(record.shard_id, record.errors);
  MaybeEndLocked(clock_->Now());
}

std::string JobCoordinator::WorkerName(const WorkerIdentity& who) const {
  return absl::StrCat("worker ", who.task_index, " (attempt ", who.attempt, ", pid ",
                      who.pid, who.host.empty() ? "" : " on ", who.host, ")");
}

absl::StatusOr<JobCoordinator::Session*> JobCoordinator::LiveSession(SessionId id,
                                                                     absl::Time now) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown worker session ", id, ": register again"));
  }
  Session& s = it->second;
  if (!s.ended_reason.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("session of ", WorkerName(s.who), " is over: ", s.ended_reason));
  }
  s.last_seen = now;
  s.leases_expired = false;
  return &s;
}

uint64_t JobCoordinator::JournalCommit(SessionId id, const PublishedShard& published,
                                       absl::Time now) {
  QueueRevocations(published.revoked);
  if (!published.newly_committed) return 0;
  Session& s = sessions_.at(id);
  CommitRecord record = published.record;
  record.task_index = s.who.task_index;
  committed_records_ += record.records;
  s.throughput.OnCommit(record.records, now);
  if (journal_ == nullptr) return 0;
  const uint64_t seq = journal_->AppendCommit(record);
  acks_.Journalled(record.shard_id, seq);
  return seq;
}

uint64_t JobCoordinator::DurableSeqLocked() const {
  return journal_ != nullptr ? journal_->durable_seq() : UINT64_MAX;
}

std::vector<LeaseRef> JobCoordinator::TakeDurableAcks(SessionId id) {
  if (!acks_.Awaiting(id)) return {};
  return acks_.Take(id, DurableSeqLocked());
}

std::vector<CommitResult> JobCoordinator::DecideCommits(
    SessionId id, const std::vector<CommitRequest>& commits, absl::Time now) {
  std::vector<CommitResult> out;
  out.reserve(commits.size());
  for (const CommitRequest& c : commits) {
    CommitOutcome o = table_.RequestCommit(id, c.lease, c.records, now);
    out.push_back({c.lease, o.decision, std::move(o.reason)});
  }
  return out;
}

uint64_t JobCoordinator::JournalFailures(const FailOutcome& outcome) {
  QueueRevocations(outcome.revoked);
  uint64_t seq = 0;
  for (const QuarantineRecord& q : outcome.quarantined) {
    if (journal_ != nullptr) seq = journal_->AppendQuarantine(q);
  }
  return seq;
}

void JobCoordinator::TakePendingCommands(Session& s, std::vector<WorkerCommand>* out) {
  for (WorkerCommand& c : s.pending) {
    const bool duplicate = std::any_of(
        out->begin(), out->end(),
        [&](const WorkerCommand& x) { return x.kind == c.kind && x.lease == c.lease; });
    if (!duplicate) out->push_back(std::move(c));
  }
  s.pending.clear();
}

void JobCoordinator::QueueRevocations(const std::vector<RevokedLease>& revoked) {
  for (const RevokedLease& r : revoked) {
    auto it = sessions_.find(r.session);
    if (it == sessions_.end() || !it->second.ended_reason.empty()) continue;
    it->second.pending.push_back(
        {WorkerCommand::Kind::kCancelShard, r.lease, r.reason, false});
  }
}

uint64_t JobCoordinator::ConfirmLocked(SessionId id,
                                       const std::vector<LeaseRef>& published,
                                       absl::Time now) {
  uint64_t seq = 0;
  if (!published.empty()) acks_.Prune(DurableSeqLocked());
  for (const LeaseRef& lease : published) {
    absl::StatusOr<PublishedShard> p = table_.ConfirmPublished(id, lease, now);
    // A confirmation for a lease that is gone is harmless: the shard was
    // requeued and its redo overwrites the published file atomically. Every
    // confirmation is acknowledged, a commit's once it is durable.
    uint64_t commit_seq = 0;
    if (p.ok() && p->newly_committed) {
      commit_seq = JournalCommit(id, *p, now);
    } else {
      if (p.ok()) QueueRevocations(p->revoked);
      // A re-sent confirmation waits for the record its first sending made.
      commit_seq = acks_.UndurableSeq(lease.shard_id);
    }
    seq = std::max(seq, commit_seq);
    acks_.Await(id, lease, commit_seq);
  }
  return seq;
}

void JobCoordinator::RecordProgressLocked(SessionId id,
                                          const std::vector<ProgressReport>& progress,
                                          absl::Time now,
                                          std::vector<WorkerCommand>* cancels) {
  for (const ProgressReport& p : progress) {
    absl::Status st =
        p.started ? table_.RecordProgress(id, p.lease, p.records_done, p.units_done, now)
                  : table_.Renew(id, p.lease, now);
    if (!st.ok() && cancels != nullptr) {
      cancels->push_back(
          {WorkerCommand::Kind::kCancelShard, p.lease, std::string(st.message()), false});
    }
  }
}

absl::Status JobCoordinator::AdmitRegistrationLocked(const WorkerIdentity& who,
                                                     absl::string_view peer) {
  const RequestLimits& limits = options_.limits;
  if (!peer.empty() && !registrations_by_peer_.TryTake(peer)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many registrations from ", peer.substr(0, 128), " (at most ",
                     limits.registrations_per_second, "/s, bursts of ",
                     limits.registration_burst, "): retry in ",
                     absl::FormatDuration(registrations_by_peer_.TimeToNextToken(peer))));
  }
  // Sessions past their retention are forgotten by Tick, not here: a refused
  // registration costs O(1).
  if (sessions_.size() >= limits.max_sessions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the master already keeps ", sessions_.size(),
                     " worker sessions (--max-sessions); retry later"));
  }
  auto per_index = sessions_per_index_.find(who.task_index);
  if (per_index != sessions_per_index_.end() &&
      per_index->second >= limits.max_sessions_per_index) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker index ", who.task_index, " already has ", per_index->second,
        " sessions within the last ", absl::FormatDuration(limits.session_retention),
        " (--max-sessions-per-index); retry later"));
  }
  return absl::OkStatus();
}

void JobCoordinator::ForgetSessionsLocked(absl::Time now) {
  const absl::Duration retention = options_.limits.session_retention;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const SessionId id = it->first;
    const Session& s = it->second;
    const bool ended = !s.ended_reason.empty();
    // A silent live session holding nothing is as good as gone: its worker,
    // should it come back, hears NOT_FOUND and registers again.
    const bool forget =
        ended ? now - s.ended_at >= retention
              : now - s.last_seen >= retention && table_.LeaseCount(id) == 0;
    if (!forget) {
      ++it;
      continue;
    }
    auto live = live_by_index_.find(s.who.task_index);
    if (live != live_by_index_.end() && live->second == id) live_by_index_.erase(live);
    auto count = sessions_per_index_.find(s.who.task_index);
    if (count != sessions_per_index_.end() && --count->second == 0) {
      sessions_per_index_.erase(count);
    }
    acks_.Forget(id);
    sessions_.erase(it++);
  }
}

absl::StatusOr<Registration> JobCoordinator::Register(const WorkerIdentity& who,
                                                      const std::vector<HeldLease>& held,
                                                      absl::string_view peer) {
  if (who.task_type != "worker") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown task type '", who.task_type.substr(0, 64), "' (expected 'worker')"));
  }
  if (who.host.size() > kMaxHostBytes) {
    return absl::InvalidArgumentError(absl::StrCat("host name of ", who.host.size(),
                                                   " bytes (at most ", kMaxHostBytes,
                                                   " are accepted)"));
  }
  if (held.size() > options_.limits.max_leases_per_session) {
    return absl::InvalidArgumentError(absl::StrCat(
        held.size(), " held leases, more than a session may hold (",
        options_.limits.max_leases_per_session, ", --max-leases-per-session)"));
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (absl::Status admitted = AdmitRegistrationLocked(who, peer); !admitted.ok()) {
    return admitted;
  }
  Registration reg;
  uint64_t seq = 0;
  SessionId id = RandomId64();
  while (sessions_.contains(id)) id = RandomId64();
  if (fleet_) {
    std::vector<FleetDecision> stops;
    absl::Status admitted =
        fleet_->OnRegistered(who.task_index, who.attempt, id, now, &stops);
    fleet_decisions_.insert(fleet_decisions_.end(), stops.begin(), stops.end());
    if (!admitted.ok()) return admitted;
  }
  if (auto old = live_by_index_.find(who.task_index); old != live_by_index_.end()) {
    Session& prev = sessions_.at(old->second);
    const bool same_process = prev.who.pid == who.pid && prev.who.host == who.host;
    prev.ended_reason = absl::StrCat("superseded by a restart of ", WorkerName(who));
    prev.ended_at = now;
    // A different process taking over means the old one died holding its shards.
    FailOutcome released = table_.ReleaseSession(old->second, prev.ended_reason,
                                                 /*count_as_failure=*/!same_process, now);
    seq = std::max(seq, JournalFailures(released));
    ++work_epoch_;
  }
  Session& s = sessions_[id];
  s.sequence = ++registrations_;
  s.who = who;
  s.registered_at = now;
  s.last_seen = now;
  s.throughput = WorkerThroughput(now);
  live_by_index_[who.task_index] = id;
  ++sessions_per_index_[who.task_index];
  reg.session = id;
  for (const HeldLease& h : held) {
    if (h.published) {
      std::optional<PublishedShard> p =
          table_.AdoptPublished(id, h.lease, h.records, now);
      if (p) {
        seq = std::max(seq, JournalCommit(id, *p, now));
      } else if (!table_.IsCommitted(h.lease.shard_id)) {
        reg.refused.push_back(h.lease);
      }
    } else if (table_.Reclaim(id, h.lease, h.started, now)) {
      reg.reclaimed.push_back(h.lease);
    } else {
      reg.refused.push_back(h.lease);
    }
  }
  MaybeEndLocked(now);
  reg.durable_seq = seq;
  return reg;
}

absl::Duration JobCoordinator::RetryHintLocked() const {
  std::optional<absl::Duration> median = table_.MedianShardTime();
  if (!median) return absl::Milliseconds(250);
  return std::clamp(*median / 4, absl::Milliseconds(50), absl::Seconds(2));
}

absl::StatusOr<AcquireResult> JobCoordinator::Acquire(
    SessionId session, uint32_t max_shards, const std::vector<LeaseRef>& published,
    const std::vector<ProgressReport>& progress,
    const std::vector<CommitRequest>& commits) {
  if (max_shards == 0) return absl::InvalidArgumentError("max_shards must be at least 1");
  if (absl::Status s = CheckLeaseLists(options_.limits, {progress.size(), commits.size()},
                                       published.size());
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  absl::StatusOr<Session*> s = LiveSession(session, now);
  if (!s.ok()) return s.status();
  AcquireResult result;
  // Like a heartbeat, an acquire listing a lease that is gone is told to drop it.
  RecordProgressLocked(session, progress, now, &result.commands);
  result.durable_seq = ConfirmLocked(session, published, now);
  result.commit_results = DecideCommits(session, commits, now);
  result.confirmed = TakeDurableAcks(session);
  TakePendingCommands(**s, &result.commands);
  MaybeEndLocked(now);
  if (state_ != JobState::kRunning) {
    result.outcome = AcquireOutcome::kEnd;
    result.job_succeeded = state_ == JobState::kSucceeded;
    result.end_reason = end_reason_;
    (*s)->told_end = true;
    return result;
  }
  std::vector<LeasedShard> leased = LeaseWithinBudgetLocked(session, max_shards, now);
  if (leased.empty() && table_.LeaseCount(session) == 0) {
    // Idle with nothing left to hand out: take a shard another worker has
    // prefetched but will not start for a while (no work is lost). The holder
    // hears of it in the answer to its next call (usually the commit of the
    // shard it is running, before it starts the next one); should it start
    // the shard anyway, the first commit wins.
    if (std::optional<absl::Duration> median = table_.MedianShardTime()) {
      if (std::optional<uint64_t> id = table_.PickStealable(session, *median, now)) {
        RevokedLease revoked;
        leased.push_back(table_.Steal(*id, session, now, &revoked));
        QueueRevocations({revoked});
      }
    }
  }
  if (leased.empty() && options_.speculation && table_.LeaseCount(session) == 0) {
    if (std::optional<uint64_t> straggler =
            table_.PickStraggler(session, options_.speculation_multiplier, now)) {
      leased.push_back(table_.LeaseDuplicate(*straggler, session, now));
    }
  }
  if (leased.empty()) {
    result.outcome = AcquireOutcome::kWait;
    result.retry_after = RetryHintLocked();
    return result;
  }
  result.outcome = AcquireOutcome::kShards;
  for (LeasedShard& l : leased) {
    const uint64_t id = l.shard.id;
    result.shards.push_back({std::move(l), shards_->OutputName(id)});
  }
  return result;
}

std::vector<LeasedShard> JobCoordinator::LeaseWithinBudgetLocked(SessionId session,
                                                                 uint32_t n,
                                                                 absl::Time now) {
  const RequestLimits& limits = options_.limits;
  const size_t held = table_.LeaseCount(session);
  size_t room = std::min<size_t>(n, std::max<uint32_t>(limits.max_shards_per_call, 1));
  room = std::min(room, limits.max_leases_per_session > held
                            ? limits.max_leases_per_session - held
                            : 0);
  std::vector<LeasedShard> out;
  size_t bytes = 0;
  while (out.size() < room && bytes < limits.max_answer_bytes) {
    std::vector<LeasedShard> one = table_.Acquire(session, 1, now);
    if (one.empty()) break;
    bytes += EncodedSize(one[0].shard, shards_->OutputName(one[0].shard.id),
                         options_.input_channel);
    out.push_back(std::move(one[0]));
  }
  return out;
}

absl::StatusOr<HeartbeatResult> JobCoordinator::Heartbeat(
    SessionId session, const std::vector<ProgressReport>& progress,
    const std::vector<LeaseRef>& published) {
  if (absl::Status s =
          CheckLeaseLists(options_.limits, {progress.size()}, published.size());
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  absl::StatusOr<Session*> s = LiveSession(session, now);
  if (!s.ok()) return s.status();
  HeartbeatResult result;
  // Progress first: a lease confirmed in this very call is current until then
  // and must not be answered with CANCEL_SHARD.
  RecordProgressLocked(session, progress, now, &result.commands);
  result.durable_seq = ConfirmLocked(session, published, now);
  Session& me = **s;
  // After ConfirmLocked, which may queue commands for this very session.
  TakePendingCommands(me, &result.commands);
  result.confirmed = TakeDurableAcks(session);
  MaybeEndLocked(now);
  if (state_ != JobState::kRunning) {
    result.commands.push_back(
        {WorkerCommand::Kind::kStop, {}, end_reason_, state_ == JobState::kSucceeded});
    me.told_end = true;
  }
  return result;
}

absl::StatusOr<CommitCallResult> JobCoordinator::Commit(
    SessionId session, const std::vector<CommitRequest>& commits,
    const std::vector<LeaseRef>& published) {
  if (absl::Status s =
          CheckLeaseLists(options_.limits, {commits.size()}, published.size());
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  absl::StatusOr<Session*> s = LiveSession(session, now);
  if (!s.ok()) return s.status();
  CommitCallResult out;
  out.durable_seq = ConfirmLocked(session, published, now);
  out.results = DecideCommits(session, commits, now);
  out.confirmed = TakeDurableAcks(session);
  TakePendingCommands(**s, &out.commands);
  MaybeEndLocked(now);
  return out;
}

absl::StatusOr<FailResult> JobCoordinator::Fail(SessionId session, LeaseRef lease,
                                                const std::string& error) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  absl::StatusOr<Session*> s = LiveSession(session, now);
  if (!s.ok()) return s.status();
  const std::string attributed = CapText(absl::StrCat(WorkerName((*s)->who), ": ", error),
                                         options_.limits.max_error_bytes);
  absl::StatusOr<FailOutcome> outcome = table_.Fail(session, lease, attributed, now);
  if (!outcome.ok()) return outcome.status();
  FailResult result;
  result.quarantined = !outcome->quarantined.empty();
  result.failures = outcome->failures;
  result.durable_seq = JournalFailures(*outcome);
  TakePendingCommands(**s, &result.commands);
  ++work_epoch_;
  MaybeEndLocked(now);
  return result;
}

uint64_t JobCoordinator::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  uint64_t seq = 0;
  for (auto& [id, s] : sessions_) {
    // Silent sessions no longer count as waiting to hear the job's end.
    if (s.ended_reason.empty() && now - s.last_seen > options_.lease_timeout) {
      s.leases_expired = true;
    }
  }
  const uint64_t pending_before = table_.pending();
  FailOutcome expired = table_.ExpireLeases(now, options_.lease_timeout);
  if (table_.pending() != pending_before || !expired.quarantined.empty()) ++work_epoch_;
  seq = std::max(seq, JournalFailures(expired));
  if (fleet_) {
    // Called by Tick before it returns, so still under mu_.
    FleetOutcome outcome =
        fleet_->Tick(now, [this](SessionId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          auto it = sessions_.find(id);
          return it == sessions_.end() ? absl::InfinitePast() : it->second.last_seen;
        });
    seq = std::max(seq, ApplyFleetOutcome(std::move(outcome), now));
  }
  throughput_.Sample(now, table_.committed(), committed_records_);
  MaybeEndLocked(now);
  ForgetSessionsLocked(now);
  return seq;
}

void JobCoordinator::Stop(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  MaybeEndLocked(now);
  if (state_ == JobState::kRunning) {
    EndLocked(JobState::kFailed,
              "stopped: " + CapText(reason, options_.limits.max_error_bytes), now);
  }
}

void JobCoordinator::MaybeEndLocked(absl::Time now) {
  if (state_ != JobState::kRunning) return;
  if (table_.quarantined() > options_.max_failed_shards) {
    EndLocked(JobState::kFailed,
              absl::StrCat(table_.quarantined(),
                           " shard(s) quarantined, more than --max-failed-shards=",
                           options_.max_failed_shards),
              now);
  } else if (fleet_ && !table_.finished() && fleet_->Exhausted()) {
    EndLocked(JobState::kFailed, fleet_->ExhaustedSummary(), now);
  } else if (table_.finished()) {
    EndLocked(JobState::kSucceeded,
              table_.quarantined() == 0
                  ? "all shards committed"
                  : absl::StrCat("all shards done, ", table_.quarantined(),
                                 " quarantined (within --max-failed-shards)"),
              now);
  }
}

void JobCoordinator::EndLocked(JobState state, const std::string& reason,
                               absl::Time now) {
  state_ = state;
  end_reason_ = reason;
  ended_at_ = now;
  ++work_epoch_;
  if (fleet_) {
    std::vector<FleetDecision> stops = fleet_->OnJobEnded(now);
    fleet_decisions_.insert(fleet_decisions_.end(), stops.begin(), stops.end());
  }
}

void JobCoordinator::EndSessionLocked(SessionId id, const std::string& reason) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  if (it->second.ended_reason.empty()) {
    it->second.ended_reason = reason;
    it->second.ended_at = clock_->Now();
  }
  auto live = live_by_index_.find(it->second.who.task_index);
  if (live != live_by_index_.end() && live->second == id) live_by_index_.erase(live);
}

}  // namespace elasticbatch::aimaster
