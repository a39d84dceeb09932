// JobCoordinator: the bridge to the WorkerFleet (run mode's instances).
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/job_coordinator.h"

namespace elasticbatch::aimaster {

uint64_t JobCoordinator::ApplyFleetOutcome(FleetOutcome outcome, absl::Time now) {
  uint64_t seq = 0;
  for (const SessionRelease& r : outcome.releases) {
    // The worker failed: its leases go back to the queue at once, and the
    // shards it had started count a failure.
    FailOutcome released =
        table_.ReleaseSession(r.session, r.reason, r.count_as_failure, now);
    seq = std::max(seq, JournalFailures(released));
    EndSessionLocked(r.session, r.reason);
    ++work_epoch_;
  }
  fleet_decisions_.insert(fleet_decisions_.end(), outcome.decisions.begin(),
                          outcome.decisions.end());
  MaybeEndLocked(now);
  return seq;
}

std::vector<FleetDecision> JobCoordinator::StartWorkers() {
  absl::MutexLock lock(&mu_);
  if (!fleet_) return {};
  return fleet_->Start(clock_->Now());
}

void JobCoordinator::WorkerStarted(uint32_t index, uint32_t attempt, int32_t pid) {
  absl::MutexLock lock(&mu_);
  if (fleet_) fleet_->OnStarted(index, attempt, pid, clock_->Now());
}

void JobCoordinator::WorkerExited(uint32_t index, uint32_t attempt, int exit_code) {
  absl::MutexLock lock(&mu_);
  if (!fleet_) return;
  const absl::Time now = clock_->Now();
  // Quarantines from the release are synced by the next tick's journal sync.
  (void)ApplyFleetOutcome(fleet_->OnExited(index, attempt, exit_code, now), now);
}

std::vector<FleetDecision> JobCoordinator::TakeFleetDecisions() {
  absl::MutexLock lock(&mu_);
  std::vector<FleetDecision> out;
  out.swap(fleet_decisions_);
  return out;
}

std::vector<FleetDecision> JobCoordinator::StopAllWorkers(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (!fleet_) return {};
  std::vector<FleetDecision> out;
  out.swap(fleet_decisions_);
  std::vector<FleetDecision> stops = fleet_->StopAll(reason, clock_->Now());
  out.insert(out.end(), stops.begin(), stops.end());
  return out;
}

bool JobCoordinator::AllWorkersExited() const {
  absl::MutexLock lock(&mu_);
  return !fleet_ || fleet_->AllExited();
}

std::vector<InstanceInfo> JobCoordinator::Workers() const {
  absl::MutexLock lock(&mu_);
  if (!fleet_) return {};
  return fleet_->Snapshot();
}

}  // namespace elasticbatch::aimaster
