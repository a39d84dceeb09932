#include "aimaster/core/worker_fleet.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace {

std::string Took(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(100)));
}

}  // namespace

absl::StatusOr<RestartPolicy> ParseRestartPolicy(absl::string_view text) {
  if (text == "on-failure") return RestartPolicy::kOnFailure;
  if (text == "exit-code") return RestartPolicy::kExitCode;
  if (text == "never") return RestartPolicy::kNever;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown restart policy '", text, "' (use on-failure, exit-code or never)"));
}

bool IsRetryableExitCode(int code) {
  return code == 130 || code == 137 || code == 138 || code == 143;
}

absl::string_view InstanceStateName(InstanceState state) {
  switch (state) {
    case InstanceState::kPending:
      return "pending";
    case InstanceState::kStarting:
      return "starting";
    case InstanceState::kRunning:
      return "running";
    case InstanceState::kRestarting:
      return "restarting";
    case InstanceState::kSucceeded:
      return "succeeded";
    case InstanceState::kFailed:
      return "failed";
    case InstanceState::kStopped:
      return "stopped";
  }
  return "?";
}

absl::string_view AttemptStateName(AttemptState state) {
  switch (state) {
    case AttemptState::kStarting:
      return "starting";
    case AttemptState::kRunning:
      return "running";
    case AttemptState::kSucceeded:
      return "succeeded";
    case AttemptState::kFailed:
      return "failed";
    case AttemptState::kStopped:
      return "stopped";
  }
  return "?";
}

WorkerFleet::WorkerFleet(FleetOptions options) : options_(options) {
  instances_.resize(options_.workers);
  for (uint32_t i = 0; i < options_.workers; ++i) instances_[i].index = i;
}

FleetDecision WorkerFleet::Launch(InstanceInfo& instance, bool backup, absl::Time now,
                                  const std::string& reason) {
  AttemptInfo a;
  a.attempt = static_cast<uint32_t>(instance.attempts.size());
  a.backup = backup;
  a.launched_at = now;
  instance.attempts.push_back(a);
  if (backup) ++instance.backups;
  instance.launch_at.reset();
  return {FleetDecision::Kind::kLaunch, instance.index, a.attempt, backup, reason};
}

std::vector<FleetDecision> WorkerFleet::Start(absl::Time now) {
  std::vector<FleetDecision> out;
  started_ = true;
  for (InstanceInfo& instance : instances_) {
    if (options_.start_interval <= absl::ZeroDuration() || instance.index == 0) {
      out.push_back(Launch(instance, false, now, "start"));
    } else {
      instance.launch_at =
          now + options_.start_interval * static_cast<int64_t>(instance.index);
    }
  }
  return out;
}

AttemptInfo* WorkerFleet::Find(uint32_t index, uint32_t attempt) {
  if (index >= instances_.size()) return nullptr;
  for (AttemptInfo& a : instances_[index].attempts) {
    if (a.attempt == attempt) return &a;
  }
  return nullptr;
}

void WorkerFleet::OnStarted(uint32_t index, uint32_t attempt, int32_t pid,
                            absl::Time now) {
  (void)now;
  if (AttemptInfo* a = Find(index, attempt)) a->pid = pid;
}

void WorkerFleet::FailAttempt(InstanceInfo& instance, AttemptInfo& attempt,
                              const std::string& why, std::optional<int> exit_code,
                              absl::Time now, FleetOutcome* out) {
  attempt.state = AttemptState::kFailed;
  attempt.detail = why;
  attempt.ended_at = now;
  if (attempt.session != 0) {
    out->releases.push_back(
        {attempt.session, absl::StrCat("worker ", instance.index, " attempt ",
                                       attempt.attempt, " failed: ", why)});
  }
  if (job_ended_) return;
  // Another attempt (a backup) still serves this instance.
  if (std::any_of(instance.attempts.begin(), instance.attempts.end(),
                  [&](const AttemptInfo& a) { return Alive(a); })) {
    return;
  }
  bool allowed = true;
  switch (options_.restart_policy) {
    case RestartPolicy::kNever:
      allowed = false;
      break;
    case RestartPolicy::kExitCode:
      // A missed heartbeat ends in our SIGKILL (137): retryable.
      allowed = !exit_code || IsRetryableExitCode(*exit_code);
      break;
    case RestartPolicy::kOnFailure:
      break;
  }
  if (!allowed) {
    instance.failure = absl::StrCat(why, " (not retryable under the restart policy)");
    return;
  }
  if (instance.restarts >= options_.max_restarts) {
    instance.failure = absl::StrCat(why, " (", instance.restarts, " restart",
                                    instance.restarts == 1 ? "" : "s", " used)");
    return;
  }
  absl::Duration backoff = options_.restart_backoff;
  for (uint32_t r = 0; r < instance.restarts && backoff < options_.max_restart_backoff;
       ++r) {
    backoff *= 2;
  }
  ++instance.restarts;
  instance.launch_at = now + std::min(backoff, options_.max_restart_backoff);
}

FleetOutcome WorkerFleet::OnExited(uint32_t index, uint32_t attempt, int code,
                                   absl::Time now) {
  FleetOutcome out;
  AttemptInfo* a = Find(index, attempt);
  if (a == nullptr) return out;
  a->exit_code = code;
  if (!Alive(*a)) return out;  // we had stopped or failed it already
  if (code == 0) {
    a->state = AttemptState::kSucceeded;
    a->ended_at = now;
    a->detail =
        job_ended_ ? "exited after the job's end" : "exited 0 before the job's end";
    // Whatever it still held goes back to the queue at once.
    if (a->session != 0) {
      out.releases.push_back(
          {a->session, absl::StrCat("worker ", index, " attempt ", attempt, " exited"),
           /*count_as_failure=*/false});
    }
    return out;
  }
  FailAttempt(instances_[index], *a, absl::StrCat("exited with status ", code), code, now,
              &out);
  return out;
}

absl::Status WorkerFleet::OnRegistered(uint32_t index, uint32_t attempt,
                                       SessionId session, absl::Time now,
                                       std::vector<FleetDecision>* decisions) {
  if (index >= instances_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("worker index ", index,
                                                   " is out of range: this job has ",
                                                   instances_.size(), " worker(s)"));
  }
  InstanceInfo& instance = instances_[index];
  AttemptInfo* a = Find(index, attempt);
  if (a == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "attempt ", attempt, " of worker ", index, " was not launched by this master"));
  }
  if (!Alive(*a)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "attempt ", attempt, " of worker ", index, " may not serve: ", a->detail));
  }
  if (a->state == AttemptState::kRunning) {  // registering again (a lost answer)
    a->session = session;
    return absl::OkStatus();
  }
  for (const AttemptInfo& other : instance.attempts) {
    if (other.state == AttemptState::kRunning) {
      a->state = AttemptState::kStopped;
      a->detail = absl::StrCat("lost the start race to attempt ", other.attempt);
      a->ended_at = now;
      decisions->push_back(
          {FleetDecision::Kind::kStop, index, attempt, false, a->detail});
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", index, " is already served by attempt ", other.attempt,
                       "; attempt ", attempt, " lost the start race"));
    }
  }
  a->state = AttemptState::kRunning;
  a->registered_at = now;
  a->session = session;
  for (AttemptInfo& other : instance.attempts) {
    if (other.attempt == attempt || other.state != AttemptState::kStarting) continue;
    other.state = AttemptState::kStopped;
    other.detail = absl::StrCat("lost the start race to attempt ", attempt);
    other.ended_at = now;
    decisions->push_back(
        {FleetDecision::Kind::kStop, index, other.attempt, false, other.detail});
  }
  return absl::OkStatus();
}

FleetOutcome WorkerFleet::Tick(absl::Time now,
                               const std::function<absl::Time(SessionId)>& last_seen) {
  FleetOutcome out;
  for (InstanceInfo& instance : instances_) {
    if (job_ended_) break;
    if (instance.launch_at && now >= *instance.launch_at) {
      out.decisions.push_back(
          Launch(instance, false, now,
                 instance.attempts.empty() ? "staggered start" : "restart"));
      continue;
    }
    int starting = 0;
    bool running = false;
    const AttemptInfo* slow = nullptr;
    for (const AttemptInfo& a : instance.attempts) {
      if (a.state == AttemptState::kRunning) running = true;
      if (a.state != AttemptState::kStarting) continue;
      ++starting;
      if (now - a.launched_at > options_.startup_timeout) slow = &a;
    }
    // One backup per launch: none when the newest attempt is a backup already
    // (else crashing backups of a hanging start would relaunch forever,
    // never using up max_restarts).
    if (!running && starting == 1 && slow != nullptr &&
        !instance.attempts.back().backup) {
      const std::string reason =
          absl::StrCat("attempt ", slow->attempt, " did not register within ",
                       Took(options_.startup_timeout));
      out.decisions.push_back(Launch(instance, true, now, reason));
      continue;
    }
    for (AttemptInfo& a : instance.attempts) {
      if (a.state != AttemptState::kRunning) continue;
      const absl::Duration silent = now - last_seen(a.session);
      if (silent <= options_.heartbeat_timeout) continue;
      const std::string why = absl::StrCat("no heartbeat for ", Took(silent));
      out.decisions.push_back(
          {FleetDecision::Kind::kStop, instance.index, a.attempt, false, why});
      FailAttempt(instance, a, why, std::nullopt, now, &out);
    }
  }
  return out;
}

std::vector<FleetDecision> WorkerFleet::OnJobEnded(absl::Time now) {
  std::vector<FleetDecision> out;
  job_ended_ = true;
  for (InstanceInfo& instance : instances_) {
    instance.launch_at.reset();
    for (AttemptInfo& a : instance.attempts) {
      if (a.state != AttemptState::kStarting) continue;
      a.state = AttemptState::kStopped;
      a.detail = "stopped: all data was done before it registered";
      a.ended_at = now;
      out.push_back(
          {FleetDecision::Kind::kStop, instance.index, a.attempt, false, a.detail});
    }
  }
  return out;
}

std::vector<FleetDecision> WorkerFleet::StopAll(const std::string& reason,
                                                absl::Time now) {
  std::vector<FleetDecision> out;
  job_ended_ = true;
  for (InstanceInfo& instance : instances_) {
    instance.launch_at.reset();
    for (AttemptInfo& a : instance.attempts) {
      if (a.exit_code.has_value()) continue;
      if (Alive(a)) {
        a.state = AttemptState::kStopped;
        a.detail = reason;
        a.ended_at = now;
      }
      out.push_back(
          {FleetDecision::Kind::kStop, instance.index, a.attempt, false, reason});
    }
  }
  return out;
}

bool WorkerFleet::Exhausted() const {
  // Before Start() nothing was launched yet (journal replay, early ticks).
  if (job_ended_ || !started_) return false;
  for (const InstanceInfo& instance : instances_) {
    if (instance.launch_at) return false;
    for (const AttemptInfo& a : instance.attempts) {
      if (Alive(a)) return false;
    }
  }
  return true;
}

std::string WorkerFleet::ExhaustedSummary() const {
  std::string out = "every worker is gone:";
  for (const InstanceInfo& instance : instances_) {
    std::string why = instance.failure;
    // Not failed for good: an attempt exited 0 (the newest attempt may be a
    // loser of the start race, which says nothing about the instance).
    for (auto a = instance.attempts.rbegin();
         why.empty() && a != instance.attempts.rend(); ++a) {
      if (a->state == AttemptState::kSucceeded) why = a->detail;
    }
    if (why.empty() && !instance.attempts.empty()) why = instance.attempts.back().detail;
    if (why.empty()) why = "never started";
    absl::StrAppend(&out, instance.index == 0 ? " " : "; ", "worker ", instance.index,
                    ": ", why);
  }
  return out;
}

bool WorkerFleet::AllExited() const {
  for (const InstanceInfo& instance : instances_) {
    if (instance.launch_at && !job_ended_) return false;
    for (const AttemptInfo& a : instance.attempts) {
      if (!a.exit_code.has_value()) return false;
    }
  }
  return true;
}

InstanceState WorkerFleet::StateOf(const InstanceInfo& instance) const {
  bool starting = false, succeeded = false;
  for (const AttemptInfo& a : instance.attempts) {
    if (a.state == AttemptState::kRunning) return InstanceState::kRunning;
    starting |= a.state == AttemptState::kStarting;
    succeeded |= a.state == AttemptState::kSucceeded;
  }
  if (starting) return InstanceState::kStarting;
  if (instance.launch_at) {
    return instance.attempts.empty() ? InstanceState::kPending
                                     : InstanceState::kRestarting;
  }
  if (succeeded) return InstanceState::kSucceeded;
  if (!instance.failure.empty()) return InstanceState::kFailed;
  if (instance.attempts.empty() && !job_ended_) return InstanceState::kPending;
  return InstanceState::kStopped;
}

uint32_t WorkerFleet::running() const {
  return static_cast<uint32_t>(
      std::count_if(instances_.begin(), instances_.end(),
                    [&](auto& i) { return StateOf(i) == InstanceState::kRunning; }));
}

uint32_t WorkerFleet::starting() const {
  return static_cast<uint32_t>(
      std::count_if(instances_.begin(), instances_.end(),
                    [&](auto& i) { return StateOf(i) == InstanceState::kStarting; }));
}

uint32_t WorkerFleet::restarting() const {
  return static_cast<uint32_t>(
      std::count_if(instances_.begin(), instances_.end(),
                    [&](auto& i) { return StateOf(i) == InstanceState::kRestarting; }));
}

std::vector<InstanceInfo> WorkerFleet::Snapshot() const {
  std::vector<InstanceInfo> out = instances_;
  for (InstanceInfo& i : out) i.state = StateOf(i);
  return out;
}

std::optional<std::pair<uint32_t, uint32_t>> WorkerFleet::FindSession(
    SessionId session) const {
  for (const InstanceInfo& instance : instances_) {
    for (const AttemptInfo& a : instance.attempts) {
      if (a.session == session && session != 0)
        return std::make_pair(instance.index, a.attempt);
    }
  }
  return std::nullopt;
}

}  // namespace elasticbatch::aimaster
