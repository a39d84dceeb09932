// WorkerFleet: the lifecycle of N worker instances when the master launches
// them itself (`aimaster run`). Core decides, launch/ does: every method
// returns decisions (launch attempt k of instance i, stop attempt j) for a
// driver to carry out on a Launcher, which reports Started/Exited back.
//
// Instance i's launches are its attempts 0, 1, 2, ... (restarts and backups).
//   * No gang start: every instance is launched at once (or one per
//     start_interval), and gets work the moment it registers.
//   * Startup monitor: an attempt not registered within startup_timeout gets
//     a backup attempt; the first of them to register wins, the other is stopped.
//   * Failures: a non-zero exit (reported at once) or heartbeats missing for
//     heartbeat_timeout fail the attempt; the instance restarts after an
//     exponential backoff, up to max_restarts, as the restart policy allows.
//   * Early stop: once the job ended, instances not started are never
//     started, starting attempts are stopped, running ones get END and exit.
//
// Not thread-safe: the JobCoordinator serialises all calls under its mutex.
#ifndef ELASTICBATCH_AIMASTER_CORE_WORKER_FLEET_H_
#define ELASTICBATCH_AIMASTER_CORE_WORKER_FLEET_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace elasticbatch::aimaster {

using SessionId = uint64_t;

enum class RestartPolicy {
  kOnFailure,  // restart on any failure
  kExitCode,   // KubeDL's rule: 130, 137, 138, 143 retryable; anything else permanent
  kNever,
};

// "on-failure", "exit-code" or "never"; INVALID_ARGUMENT otherwise.
absl::StatusOr<RestartPolicy> ParseRestartPolicy(absl::string_view text);
// KubeDL's retryable exit codes (SIGINT, SIGKILL, SIGUSR1, SIGTERM).
bool IsRetryableExitCode(int code);

struct FleetOptions {
  // Worker instances. Default: 1.
  uint32_t workers = 1;
  // An attempt not registered this long after its launch gets a backup. Default: 60s.
  absl::Duration startup_timeout = absl::Seconds(60);
  // A registered attempt silent this long has failed. Default: 30s.
  absl::Duration heartbeat_timeout = absl::Seconds(30);
  // Restarts per instance. Default: 3.
  uint32_t max_restarts = 3;
  RestartPolicy restart_policy = RestartPolicy::kOnFailure;
  // Wait before the first restart; doubles with each further one. Default: 1s.
  absl::Duration restart_backoff = absl::Seconds(1);
  // Cap of the restart backoff. Default: 30s.
  absl::Duration max_restart_backoff = absl::Seconds(30);
  // Launch the instances this far apart (0: all at once). Default: 0.
  absl::Duration start_interval = absl::ZeroDuration();
};

struct FleetDecision {
  enum class Kind { kLaunch, kStop };
  Kind kind = Kind::kLaunch;
  uint32_t index = 0;
  uint32_t attempt = 0;
  bool backup = false;
  std::string reason;
};

enum class AttemptState { kStarting, kRunning, kSucceeded, kFailed, kStopped };
enum class InstanceState {
  kPending,
  kStarting,
  kRunning,
  kRestarting,
  kSucceeded,
  kFailed,
  kStopped
};

// Lower-case names, as the command line and summary.json spell the states
// ("pending", "running", ...).
absl::string_view InstanceStateName(InstanceState state);
absl::string_view AttemptStateName(AttemptState state);

struct AttemptInfo {
  uint32_t attempt = 0;
  bool backup = false;
  AttemptState state = AttemptState::kStarting;
  absl::Time launched_at;
  std::optional<absl::Time> registered_at;
  std::optional<absl::Time> ended_at;
  int32_t pid = 0;
  std::optional<int> exit_code;
  SessionId session = 0;
  // Why it ended (failure, lost start race, early stop, ...).
  std::string detail;
};

struct InstanceInfo {
  uint32_t index = 0;
  InstanceState state = InstanceState::kPending;
  std::vector<AttemptInfo> attempts;
  uint32_t restarts = 0;
  uint32_t backups = 0;
  // Set while a restart (or a staggered first launch) waits.
  std::optional<absl::Time> launch_at;
  // The failure that ended it for good.
  std::string failure;
};

// What a release of leases needs: the session and why.
struct SessionRelease {
  SessionId session = 0;
  std::string reason;
  // False when the attempt left cleanly (exit 0): its started shards do not
  // count as failed.
  bool count_as_failure = true;
};

struct FleetOutcome {
  std::vector<FleetDecision> decisions;
  std::vector<SessionRelease> releases;
};

class WorkerFleet {
 public:
  explicit WorkerFleet(FleetOptions options);

  // First launches: every instance, or the first one with start_interval.
  std::vector<FleetDecision> Start(absl::Time now);

  // The launcher started attempt `attempt` of `index` as process `pid`.
  void OnStarted(uint32_t index, uint32_t attempt, int32_t pid, absl::Time now);
  // The attempt's process exited with `code` (128+N for signal N).
  FleetOutcome OnExited(uint32_t index, uint32_t attempt, int code, absl::Time now);
  // Admission of a registering attempt. FAILED_PRECONDITION when it may not
  // serve (stopped, superseded, lost its start race: the message says which);
  // INVALID_ARGUMENT for an index out of range. On OK, `decisions` stop the
  // attempts that lost the start race.
  absl::Status OnRegistered(uint32_t index, uint32_t attempt, SessionId session,
                            absl::Time now, std::vector<FleetDecision>* decisions);
  // Staggered launches, backups for slow starters, due restarts, and failures
  // of attempts whose session (per `last_seen`) is silent.
  FleetOutcome Tick(absl::Time now,
                    const std::function<absl::Time(SessionId)>& last_seen);
  // Early stop: pending instances are never started, starting attempts stop.
  std::vector<FleetDecision> OnJobEnded(absl::Time now);
  // Stops every attempt still alive (the end of `aimaster run`).
  std::vector<FleetDecision> StopAll(const std::string& reason, absl::Time now);

  // True when no instance can serve any more (all failed for good or exited)
  // although the job is not over; the summary says why, instance by instance.
  bool Exhausted() const;
  std::string ExhaustedSummary() const;
  // True when no attempt's process is alive or about to be launched.
  bool AllExited() const;

  uint32_t running() const;
  uint32_t starting() const;
  uint32_t restarting() const;
  std::vector<InstanceInfo> Snapshot() const;
  // The instance and attempt a session belongs to.
  std::optional<std::pair<uint32_t, uint32_t>> FindSession(SessionId session) const;

 private:
  InstanceState StateOf(const InstanceInfo& instance) const;
  FleetDecision Launch(InstanceInfo& instance, bool backup, absl::Time now,
                       const std::string& reason);
  AttemptInfo* Find(uint32_t index, uint32_t attempt);
  // The attempt failed: release its session, and restart the instance if the
  // policy and the budget allow (and nothing else serves it).
  void FailAttempt(InstanceInfo& instance, AttemptInfo& attempt, const std::string& why,
                   std::optional<int> exit_code, absl::Time now, FleetOutcome* out);
  bool Alive(const AttemptInfo& a) const {
    return a.state == AttemptState::kStarting || a.state == AttemptState::kRunning;
  }

  FleetOptions options_;
  std::vector<InstanceInfo> instances_;
  bool job_ended_ = false;
  // Start() was called: before it, no instance is gone.
  bool started_ = false;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_WORKER_FLEET_H_
