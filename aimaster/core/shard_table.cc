#include "aimaster/core/shard_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace {

constexpr size_t kMaxTombstones = 8;
// Attempt numbers a restarted master accepts from held leases; far above any
// real count, and far below the point where ++last_attempt would wrap.
constexpr uint32_t kMaxClaimedAttempt = 1u << 30;
constexpr size_t kShardTimeSamples = 255;

std::string LeaseName(LeaseRef l) { return absl::StrCat(l.shard_id, "#", l.attempt); }

}  // namespace

ShardTable::ShardTable(const ShardEnumerator* shards, ShardTableOptions options)
    : shards_(shards),
      options_(options),
      done_bits_((shards->shard_count() + 63) / 64, 0) {
  if (options_.max_attempts == 0) options_.max_attempts = 1;
}

void ShardTable::MarkDone(uint64_t id) {
  if (!IsDone(id)) {
    done_bits_[id >> 6] |= uint64_t{1} << (id & 63);
    ++done_count_;
  }
}

void ShardTable::RestoreCommitted(uint64_t shard_id) {
  if (shard_id < total()) MarkDone(shard_id);
}

void ShardTable::RestoreQuarantined(uint64_t shard_id, std::vector<std::string> errors) {
  if (shard_id >= total() || IsDone(shard_id)) return;
  MarkDone(shard_id);
  quarantined_[shard_id] = std::move(errors);
}

LeasedShard ShardTable::GrantLease(uint64_t id, ActiveShard& shard, SessionId session,
                                   absl::Time now, bool speculative) {
  Lease lease;
  lease.attempt = ++shard.last_attempt;
  lease.session = session;
  lease.granted_at = now;
  lease.renewed_at = now;
  lease.speculative = speculative;
  if (shard.leases.empty()) ++leased_shards_;
  if (speculative) ++speculative_leases_;
  shard.leases.push_back(lease);
  by_session_[session].insert(id);
  UpdatePolicy(id);
  return LeasedShard{shards_->Describe(id), lease.attempt, speculative};
}

std::vector<LeasedShard> ShardTable::Acquire(SessionId session, uint32_t max_n,
                                             absl::Time now) {
  std::vector<LeasedShard> out;
  while (out.size() < max_n && !requeue_.empty()) {
    const uint64_t id = requeue_.front();
    requeue_.pop_front();
    auto it = active_.find(id);
    if (it == active_.end() || !it->second.queued) continue;  // stale entry
    it->second.queued = false;
    out.push_back(GrantLease(id, it->second, session, now, false));
  }
  while (out.size() < max_n && cursor_ < total()) {
    const uint64_t id = cursor_++;
    if (IsDone(id) || active_.contains(id)) continue;
    out.push_back(GrantLease(id, active_[id], session, now, false));
  }
  return out;
}

void ShardTable::Enqueue(uint64_t id, ActiveShard& shard) {
  if (shard.queued || IsDone(id)) return;
  shard.queued = true;
  requeue_.push_back(id);
}

void ShardTable::ForgetHeld(SessionId session, uint64_t id) {
  auto s = by_session_.find(session);
  if (s == by_session_.end()) return;
  s->second.erase(id);
  if (s->second.empty()) by_session_.erase(s);
}

void ShardTable::DropLease(uint64_t id, ActiveShard& shard, size_t index,
                           const std::string& reason) {
  const Lease lease = shard.leases[index];
  shard.leases.erase(shard.leases.begin() + static_cast<std::ptrdiff_t>(index));
  if (lease.speculative) --speculative_leases_;
  if (shard.gone.size() >= kMaxTombstones) shard.gone.erase(shard.gone.begin());
  shard.gone.push_back({lease.attempt, reason});
  ForgetHeld(lease.session, id);
  if (shard.leases.empty()) {
    --leased_shards_;
    Enqueue(id, shard);
  }
  UpdatePolicy(id);
}

void ShardTable::UpdatePolicy(uint64_t id) {
  absl::InlinedVector<LeaseState, 2> leases;
  bool running = false;
  if (auto it = active_.find(id); it != active_.end()) {
    for (const Lease& l : it->second.leases) {
      leases.push_back(
          {l.session, l.granted_at, l.started_at, l.units_done, l.commit_granted});
      running = running || (l.started_at && !l.commit_granted);
    }
  }
  // Only a running lease's estimate needs the shard's size.
  policy_.Update(id, running ? shards_->ShardUnits(id) : 0, leases);
}

absl::StatusOr<size_t> ShardTable::FindLease(SessionId session, LeaseRef lease) const {
  if (lease.shard_id >= total()) {
    return absl::FailedPreconditionError(absl::StrCat("lease ", LeaseName(lease),
                                                      " names no shard of this job (",
                                                      total(), " shards)"));
  }
  if (IsDone(lease.shard_id)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease ", LeaseName(lease), " is not current: shard ", lease.shard_id,
        quarantined_.contains(lease.shard_id) ? " is quarantined"
                                              : " is already committed"));
  }
  auto it = active_.find(lease.shard_id);
  if (it == active_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", LeaseName(lease),
                     " is not current: this master never leased shard ", lease.shard_id));
  }
  const ActiveShard& shard = it->second;
  for (size_t i = 0; i < shard.leases.size(); ++i) {
    if (shard.leases[i].attempt != lease.attempt) continue;
    if (shard.leases[i].session != session) {
      return absl::FailedPreconditionError(
          absl::StrCat("lease ", LeaseName(lease), " belongs to another worker"));
    }
    return i;
  }
  std::string why = "it is unknown";
  for (const Tombstone& t : shard.gone) {
    if (t.attempt == lease.attempt) why = t.reason;
  }
  std::string now_held;
  if (!shard.leases.empty()) {
    now_held = absl::StrCat("; shard ", lease.shard_id, " is now leased as attempt ",
                            shard.leases.back().attempt);
  } else if (shard.queued) {
    now_held = absl::StrCat("; shard ", lease.shard_id, " is queued for another attempt");
  }
  return absl::FailedPreconditionError(
      absl::StrCat("lease ", LeaseName(lease), " is not current: ", why, now_held));
}

absl::Status ShardTable::CheckLease(SessionId session, LeaseRef lease) const {
  return FindLease(session, lease).status();
}

absl::Status ShardTable::RecordProgress(SessionId session, LeaseRef lease,
                                        uint64_t records_done, uint64_t units_done,
                                        absl::Time now) {
  absl::StatusOr<size_t> index = FindLease(session, lease);
  if (!index.ok()) return index.status();
  Lease& l = active_.at(lease.shard_id).leases[*index];
  if (!l.started_at) l.started_at = now;
  l.progress_seen = true;
  l.renewed_at = now;
  l.records_done = std::max(l.records_done, records_done);
  l.units_done = std::max(l.units_done, units_done);
  UpdatePolicy(lease.shard_id);
  return absl::OkStatus();
}

absl::Status ShardTable::Renew(SessionId session, LeaseRef lease, absl::Time now) {
  absl::StatusOr<size_t> index = FindLease(session, lease);
  if (!index.ok()) return index.status();
  active_.at(lease.shard_id).leases[*index].renewed_at = now;
  return absl::OkStatus();
}

FailOutcome ShardTable::ExpireLeases(absl::Time now, absl::Duration timeout) {
  FailOutcome outcome;
  std::vector<std::pair<uint64_t, uint32_t>> expired;
  for (const auto& [id, shard] : active_) {
    for (const Lease& l : shard.leases) {
      if (now - l.renewed_at > timeout) expired.push_back({id, l.attempt});
    }
  }
  std::sort(expired.begin(), expired.end());  // deterministic requeue order
  for (const auto& [id, attempt] : expired) {
    auto it = active_.find(id);
    if (it == active_.end()) continue;  // quarantined by an earlier expiry
    ActiveShard& shard = it->second;
    for (size_t i = 0; i < shard.leases.size(); ++i) {
      const Lease& l = shard.leases[i];
      if (l.attempt != attempt) continue;
      const bool started = l.progress_seen || l.commit_granted;
      const std::string reason = absl::StrCat(
          "expired: not renewed for ",
          absl::FormatDuration(absl::Trunc(now - l.renewed_at, absl::Milliseconds(1))),
          " (lease timeout ", absl::FormatDuration(timeout), ")");
      DropLease(id, shard, i, reason);
      if (started) {
        const uint32_t before = outcome.failures;
        CountFailure(id, reason, &outcome);
        outcome.failures = std::max(before, outcome.failures);
      }
      break;
    }
  }
  return outcome;
}

CommitOutcome ShardTable::RequestCommit(SessionId session, LeaseRef lease,
                                        uint64_t records, absl::Time now) {
  if (lease.shard_id < total() && IsDone(lease.shard_id) &&
      !quarantined_.contains(lease.shard_id)) {
    return {CommitDecision::kAlreadyCommitted,
            absl::StrCat("shard ", lease.shard_id, " was already committed")};
  }
  absl::StatusOr<size_t> index = FindLease(session, lease);
  if (!index.ok())
    return {CommitDecision::kLeaseLost, std::string(index.status().message())};
  ActiveShard& shard = active_.at(lease.shard_id);
  Lease& mine = shard.leases[*index];
  if (mine.commit_granted) return {CommitDecision::kGranted, ""};  // a retried request
  for (const Lease& other : shard.leases) {
    if (other.commit_granted) {
      const std::string reason = absl::StrCat("attempt ", other.attempt, " of shard ",
                                              lease.shard_id, " holds the commit grant");
      DropLease(lease.shard_id, shard, *index,
                absl::StrCat("lost the commit race: ", reason));
      return {CommitDecision::kAlreadyCommitted, reason};
    }
  }
  if (!mine.started_at) mine.started_at = mine.granted_at;
  mine.progress_seen = true;
  mine.renewed_at = now;
  mine.commit_granted = true;
  mine.commit_records = records;
  recent_shard_times_.push_back(now - *mine.started_at);
  if (recent_shard_times_.size() > kShardTimeSamples) recent_shard_times_.pop_front();
  UpdatePolicy(lease.shard_id);
  return {CommitDecision::kGranted, ""};
}

PublishedShard ShardTable::CommitShard(uint64_t id, size_t winner, absl::Time /*now*/) {
  ActiveShard& shard = active_.at(id);
  const Lease& w = shard.leases[winner];
  PublishedShard out;
  out.newly_committed = true;
  out.record.shard_id = id;
  out.record.attempt = w.attempt;
  out.record.records = w.commit_records;
  const std::string reason =
      absl::StrCat("attempt ", w.attempt, " of shard ", id, " committed first");
  for (const Lease& l : shard.leases) {
    if (l.speculative) --speculative_leases_;
    ForgetHeld(l.session, id);
    if (l.attempt != w.attempt)
      out.revoked.push_back({l.session, {id, l.attempt}, reason});
  }
  --leased_shards_;
  active_.erase(id);
  MarkDone(id);
  UpdatePolicy(id);
  return out;
}

absl::StatusOr<PublishedShard> ShardTable::ConfirmPublished(SessionId session,
                                                            LeaseRef lease,
                                                            absl::Time now) {
  if (lease.shard_id < total() && IsDone(lease.shard_id) &&
      !quarantined_.contains(lease.shard_id)) {
    return PublishedShard{};  // already committed: a retry or a duplicate
  }
  absl::StatusOr<size_t> index = FindLease(session, lease);
  if (!index.ok()) return index.status();
  if (!active_.at(lease.shard_id).leases[*index].commit_granted) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", LeaseName(lease), " published without a commit grant"));
  }
  return CommitShard(lease.shard_id, *index, now);
}

void ShardTable::Quarantine(uint64_t id, FailOutcome* outcome) {
  ActiveShard& shard = active_.at(id);
  const std::string reason = absl::StrCat("shard ", id, " was quarantined");
  for (const Lease& l : shard.leases) {
    if (l.speculative) --speculative_leases_;
    ForgetHeld(l.session, id);
    outcome->revoked.push_back({l.session, {id, l.attempt}, reason});
  }
  if (!shard.leases.empty()) --leased_shards_;
  outcome->quarantined.push_back(QuarantineRecord{id, shard.errors});
  quarantined_[id] = std::move(shard.errors);
  active_.erase(id);
  MarkDone(id);
  UpdatePolicy(id);
}

void ShardTable::CountFailure(uint64_t id, const std::string& error,
                              FailOutcome* outcome) {
  ActiveShard& shard = active_.at(id);
  shard.errors.push_back(error);
  outcome->failures = static_cast<uint32_t>(shard.errors.size());
  // Never while another attempt holds the commit grant: its output may be
  // published already, and its confirmation commits the shard.
  const bool granted = std::any_of(shard.leases.begin(), shard.leases.end(),
                                   [](const Lease& l) { return l.commit_granted; });
  if (shard.errors.size() >= options_.max_attempts && !granted) Quarantine(id, outcome);
}

absl::StatusOr<FailOutcome> ShardTable::Fail(SessionId session, LeaseRef lease,
                                             const std::string& error,
                                             absl::Time /*now*/) {
  absl::StatusOr<size_t> index = FindLease(session, lease);
  if (!index.ok()) return index.status();
  ActiveShard& shard = active_.at(lease.shard_id);
  FailOutcome outcome;
  DropLease(lease.shard_id, shard, *index, absl::StrCat("the attempt failed: ", error));
  CountFailure(lease.shard_id, error, &outcome);
  return outcome;
}

bool ShardTable::Reclaim(SessionId session, LeaseRef lease, bool started,
                         absl::Time now) {
  if (lease.shard_id >= total() || IsDone(lease.shard_id) || lease.attempt == 0 ||
      lease.attempt > kMaxClaimedAttempt) {
    return false;
  }
  ActiveShard& shard = active_[lease.shard_id];
  for (const Lease& l : shard.leases) {
    // Reclaiming twice (a retried registration) is fine; anyone else's lease is not.
    if (l.attempt == lease.attempt && l.session == session) return true;
  }
  if (!shard.leases.empty()) return false;
  shard.queued = false;  // its entry in requeue_ (if any) goes stale
  shard.last_attempt = std::max(shard.last_attempt, lease.attempt);
  Lease l;
  l.attempt = lease.attempt;
  l.session = session;
  l.granted_at = now;
  l.renewed_at = now;
  if (started) l.started_at = now;
  shard.leases.push_back(l);
  ++leased_shards_;
  by_session_[session].insert(lease.shard_id);
  UpdatePolicy(lease.shard_id);
  return true;
}

std::optional<PublishedShard> ShardTable::AdoptPublished(SessionId session,
                                                         LeaseRef lease, uint64_t records,
                                                         absl::Time now) {
  if (lease.shard_id >= total() || IsDone(lease.shard_id) || lease.attempt == 0 ||
      lease.attempt > kMaxClaimedAttempt) {
    return std::nullopt;
  }
  ActiveShard& shard = active_[lease.shard_id];
  for (const Lease& l : shard.leases) {
    if (l.commit_granted && !(l.attempt == lease.attempt && l.session == session)) {
      return std::nullopt;
    }
  }
  size_t winner = shard.leases.size();
  for (size_t i = 0; i < shard.leases.size(); ++i) {
    if (shard.leases[i].attempt == lease.attempt && shard.leases[i].session == session) {
      winner = i;
    }
  }
  if (winner == shard.leases.size()) {
    if (shard.leases.empty()) ++leased_shards_;
    shard.queued = false;
    shard.last_attempt = std::max(shard.last_attempt, lease.attempt);
    Lease l;
    l.attempt = lease.attempt;
    l.session = session;
    l.granted_at = now;
    l.renewed_at = now;
    shard.leases.push_back(l);
  }
  shard.leases[winner].commit_granted = true;
  shard.leases[winner].commit_records = records;
  return CommitShard(lease.shard_id, winner, now);
}

FailOutcome ShardTable::ReleaseSession(SessionId session, const std::string& reason,
                                       bool count_as_failure, absl::Time /*now*/) {
  FailOutcome outcome;
  auto s = by_session_.find(session);
  if (s == by_session_.end()) return outcome;
  std::vector<uint64_t> ids(s->second.begin(), s->second.end());
  std::sort(ids.begin(), ids.end());  // deterministic requeue order
  for (uint64_t id : ids) {
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    ActiveShard& shard = it->second;
    for (size_t i = 0; i < shard.leases.size(); ++i) {
      if (shard.leases[i].session != session) continue;
      const bool started =
          shard.leases[i].progress_seen || shard.leases[i].commit_granted;
      DropLease(id, shard, i, reason);
      if (count_as_failure && started) {
        const uint32_t before = outcome.failures;
        CountFailure(id, reason, &outcome);
        outcome.failures = std::max(before, outcome.failures);
      }
      break;
    }
  }
  return outcome;
}

std::vector<LeaseRef> ShardTable::LeasesOf(SessionId session) const {
  std::vector<LeaseRef> out;
  auto s = by_session_.find(session);
  if (s == by_session_.end()) return out;
  for (uint64_t id : s->second) {
    for (const Lease& l : active_.at(id).leases) {
      if (l.session == session) out.push_back({id, l.attempt});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LeaseRef& a, const LeaseRef& b) { return a.shard_id < b.shard_id; });
  return out;
}

size_t ShardTable::LeaseCount(SessionId session) const {
  auto s = by_session_.find(session);
  return s == by_session_.end() ? 0 : s->second.size();
}

std::optional<absl::Duration> ShardTable::MedianShardTime() const {
  if (recent_shard_times_.empty()) return std::nullopt;
  std::vector<absl::Duration> v(recent_shard_times_.begin(), recent_shard_times_.end());
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

std::optional<uint64_t> ShardTable::PickStraggler(SessionId for_session,
                                                  double multiplier,
                                                  absl::Time now) const {
  const std::optional<absl::Duration> median = MedianShardTime();
  if (!median) return std::nullopt;
  return policy_.PickStraggler(for_session, *median, multiplier, now);
}

std::optional<uint64_t> ShardTable::PickStealable(SessionId for_session,
                                                  absl::Duration min_wait,
                                                  absl::Time now) const {
  const std::optional<absl::Duration> median = MedianShardTime();
  if (!median) return std::nullopt;
  return policy_.PickStealable(for_session, *median, min_wait, now);
}

LeasedShard ShardTable::Steal(uint64_t shard_id, SessionId session, absl::Time now,
                              RevokedLease* revoked) {
  ActiveShard& shard = active_.at(shard_id);
  const Lease old = shard.leases[0];
  *revoked = {old.session,
              {shard_id, old.attempt},
              absl::StrCat("shard ", shard_id,
                           " was handed to an idle worker before it started here")};
  DropLease(shard_id, shard, 0, revoked->reason);
  // DropLease queued the shard; take it straight back for `session`.
  shard.queued = false;
  return GrantLease(shard_id, shard, session, now, false);
}

LeasedShard ShardTable::LeaseDuplicate(uint64_t shard_id, SessionId session,
                                       absl::Time now) {
  return GrantLease(shard_id, active_.at(shard_id), session, now, true);
}

std::vector<ShardSnapshot> ShardTable::Snapshot(bool quarantined_only, size_t limit,
                                                absl::Time now, bool* truncated) const {
  std::vector<ShardSnapshot> out;
  *truncated = false;
  auto add = [&](ShardSnapshot s) {
    if (out.size() >= limit) {
      *truncated = true;
      return false;
    }
    out.push_back(std::move(s));
    return true;
  };
  std::vector<uint64_t> ids;
  if (quarantined_only) {
    for (const auto& [id, errors] : quarantined_) ids.push_back(id);
  } else {
    for (const auto& [id, shard] : active_) {
      if (!shard.leases.empty() || !shard.errors.empty()) ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    ShardSnapshot s;
    s.shard = shards_->Describe(id);
    if (quarantined_only) {
      s.quarantined = true;
      s.errors = quarantined_.at(id);
    } else {
      const ActiveShard& shard = active_.at(id);
      s.queued = shard.queued;
      s.errors = shard.errors;
      for (const Lease& l : shard.leases) {
        s.leases.push_back(
            {{id, l.attempt},
             l.session,
             l.records_done,
             now - l.granted_at,
             l.speculative,
             l.commit_granted,
             l.started_at ? std::optional(now - *l.started_at) : std::nullopt,
             l.units_done});
      }
    }
    if (!add(std::move(s))) break;
  }
  return out;
}

}  // namespace elasticbatch::aimaster
