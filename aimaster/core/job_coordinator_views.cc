// JobCoordinator: read-only views of the job (progress, sessions, shards).
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/job_coordinator.h"

namespace elasticbatch::aimaster {

JobProgress JobCoordinator::Progress() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  JobProgress p;
  p.state = state_;
  p.reason = end_reason_;
  p.total_shards = table_.total();
  p.committed_shards = table_.committed();
  p.quarantined_shards = table_.quarantined();
  p.leased_shards = table_.leased_shards();
  p.pending_shards = table_.pending();
  p.speculative_leases = table_.speculative_leases();
  p.committed_records = committed_records_;
  p.elapsed = ended_at_.value_or(now) - started_at_;
  if (std::optional<JobThroughput::Rates> rates = throughput_.Current()) {
    p.shards_per_second = rates->shards_per_second;
    p.records_per_second = rates->records_per_second;
  }
  const uint64_t left = p.total_shards - p.committed_shards - p.quarantined_shards;
  if (left == 0) {
    p.eta = absl::ZeroDuration();
  } else if (p.shards_per_second > 0) {
    p.eta = absl::Seconds(static_cast<double>(left) / p.shards_per_second);
  }
  p.live_sessions = static_cast<uint32_t>(live_by_index_.size());
  if (fleet_) {
    p.workers_running = fleet_->running();
    p.workers_starting = fleet_->starting();
    p.workers_restarting = fleet_->restarting();
    p.workers_total = options_.fleet->workers;
  } else {
    p.workers_running = p.live_sessions;
    p.workers_total = p.live_sessions;
  }
  return p;
}

std::vector<SessionInfo> JobCoordinator::Sessions() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::vector<std::pair<uint64_t, SessionInfo>> ordered;
  for (const auto& [id, s] : sessions_) {
    SessionInfo info;
    info.session = id;
    info.who = s.who;
    info.live = s.ended_reason.empty();
    info.ended_reason = s.ended_reason;
    info.registered_at = s.registered_at;
    info.last_seen = now - s.last_seen;
    info.leases_held = static_cast<uint32_t>(table_.LeaseCount(id));
    info.shards_committed = s.throughput.shards();
    info.records_committed = s.throughput.records();
    info.records_per_second = s.throughput.records_per_second();
    info.shards_per_second = s.throughput.shards_per_second();
    ordered.push_back({s.sequence, std::move(info)});
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<SessionInfo> out;
  out.reserve(ordered.size());
  for (auto& [sequence, info] : ordered) out.push_back(std::move(info));
  return out;
}

std::vector<ShardSnapshot> JobCoordinator::Shards(bool quarantined_only, size_t limit,
                                                  bool* truncated) const {
  absl::MutexLock lock(&mu_);
  return table_.Snapshot(quarantined_only, limit, clock_->Now(), truncated);
}

std::optional<WorkerIdentity> JobCoordinator::SessionIdentity(SessionId session) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.who;
}

bool JobCoordinator::ended() const {
  absl::MutexLock lock(&mu_);
  return state_ != JobState::kRunning;
}

uint64_t JobCoordinator::work_epoch() const {
  absl::MutexLock lock(&mu_);
  return work_epoch_;
}

bool JobCoordinator::AllSessionsToldEnd() const {
  absl::MutexLock lock(&mu_);
  for (const auto& [index, id] : live_by_index_) {
    const Session& s = sessions_.at(id);
    if (!s.told_end && !s.leases_expired) return false;
  }
  return true;
}

}  // namespace elasticbatch::aimaster
