// WorkerFleet: attempts, backups for slow starters, restarts with backoff and
// policies, heartbeat timeouts, early stop, exhaustion; and the fleet as the
// JobCoordinator drives it. Time is explicit: no sleeps anywhere.
#include "aimaster/core/worker_fleet.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

// "launch 0/1 backup" or "stop 2/0": compact enough to compare whole lists.
std::string Describe(const FleetDecision& d) {
  return absl::StrCat(d.kind == FleetDecision::Kind::kLaunch ? "launch " : "stop ",
                      d.index, "/", d.attempt, d.backup ? " backup" : "");
}

std::vector<std::string> Describe(const std::vector<FleetDecision>& decisions) {
  std::vector<std::string> out;
  for (const FleetDecision& d : decisions) out.push_back(Describe(d));
  return out;
}

std::vector<SessionId> Sessions(const std::vector<SessionRelease>& releases) {
  std::vector<SessionId> out;
  for (const SessionRelease& r : releases) out.push_back(r.session);
  return out;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// FleetOptions built field by field (C++17 has no designated initializers).
struct Opts {
  FleetOptions o;
  Opts& workers(uint32_t v) {
    o.workers = v;
    return *this;
  }
  Opts& startup_timeout(absl::Duration v) {
    o.startup_timeout = v;
    return *this;
  }
  Opts& heartbeat_timeout(absl::Duration v) {
    o.heartbeat_timeout = v;
    return *this;
  }
  Opts& max_restarts(uint32_t v) {
    o.max_restarts = v;
    return *this;
  }
  Opts& restart_policy(RestartPolicy v) {
    o.restart_policy = v;
    return *this;
  }
  Opts& restart_backoff(absl::Duration v) {
    o.restart_backoff = v;
    return *this;
  }
  Opts& max_restart_backoff(absl::Duration v) {
    o.max_restart_backoff = v;
    return *this;
  }
  Opts& start_interval(absl::Duration v) {
    o.start_interval = v;
    return *this;
  }
  operator FleetOptions() const { return o; }  // NOLINT: implicit on purpose
};

// Every session heard from just now: no heartbeat timeouts.
absl::Time Fresh(SessionId) { return absl::InfiniteFuture(); }

// ---------------------------------------------------------------------------
// Policies

TEST(WorkerFleetPolicyTest, ParseRestartPolicyAcceptsTheThreeNames) {
  ASSERT_TRUE(ParseRestartPolicy("on-failure").ok());
  EXPECT_EQ(*ParseRestartPolicy("on-failure"), RestartPolicy::kOnFailure);
  ASSERT_TRUE(ParseRestartPolicy("exit-code").ok());
  EXPECT_EQ(*ParseRestartPolicy("exit-code"), RestartPolicy::kExitCode);
  ASSERT_TRUE(ParseRestartPolicy("never").ok());
  EXPECT_EQ(*ParseRestartPolicy("never"), RestartPolicy::kNever);
}

TEST(WorkerFleetPolicyTest, ParseRestartPolicyRejectsOthersNamingTheValue) {
  for (const char* bad : {"always", "", "Never", "on_failure", "exit-code "}) {
    absl::StatusOr<RestartPolicy> p = ParseRestartPolicy(bad);
    ASSERT_FALSE(p.ok()) << "'" << bad << "'";
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(p.status()), HasSubstr(absl::StrCat("'", bad, "'")));
  }
}

TEST(WorkerFleetPolicyTest, RetryableExitCodesAreKubeDLs) {
  for (int code : {130, 137, 138, 143}) EXPECT_TRUE(IsRetryableExitCode(code)) << code;
  for (int code : {0, 1, 2, 126, 127, 128, 139, 134, 255, -1}) {
    EXPECT_FALSE(IsRetryableExitCode(code)) << code;
  }
}

// ---------------------------------------------------------------------------
// Start

TEST(WorkerFleetTest, StartLaunchesEveryInstanceAtOnce) {
  WorkerFleet fleet(Opts().workers(3));
  std::vector<FleetDecision> d = fleet.Start(kT0);
  EXPECT_THAT(Describe(d), ElementsAre("launch 0/0", "launch 1/0", "launch 2/0"));
  for (const FleetDecision& x : d) {
    EXPECT_FALSE(x.backup);
    EXPECT_EQ(x.reason, "start");
  }
  EXPECT_EQ(fleet.starting(), 3u);
  EXPECT_EQ(fleet.running(), 0u);
  for (const InstanceInfo& i : fleet.Snapshot()) {
    EXPECT_EQ(i.state, InstanceState::kStarting);
    ASSERT_EQ(i.attempts.size(), 1u);
    EXPECT_EQ(i.attempts[0].launched_at, kT0);
    EXPECT_EQ(i.attempts[0].state, AttemptState::kStarting);
    EXPECT_FALSE(i.launch_at.has_value());
  }
  // Nothing more to launch.
  EXPECT_THAT(fleet.Tick(kT0 + absl::Seconds(1), Fresh).decisions, IsEmpty());
}

TEST(WorkerFleetTest, StartIntervalStaggersLaunchesThroughTick) {
  WorkerFleet fleet(Opts()
                        .workers(3)
                        .startup_timeout(absl::Hours(1))
                        .start_interval(absl::Seconds(10)));
  EXPECT_THAT(Describe(fleet.Start(kT0)), ElementsAre("launch 0/0"));
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[1].state, InstanceState::kPending);
  EXPECT_EQ(snap[1].launch_at, kT0 + absl::Seconds(10));
  EXPECT_EQ(snap[2].launch_at, kT0 + absl::Seconds(20));
  EXPECT_EQ(fleet.starting(), 1u);

  EXPECT_THAT(
      fleet.Tick(kT0 + absl::Seconds(10) - absl::Milliseconds(1), Fresh).decisions,
      IsEmpty());
  FleetOutcome o = fleet.Tick(kT0 + absl::Seconds(10), Fresh);
  EXPECT_THAT(Describe(o.decisions), ElementsAre("launch 1/0"));
  EXPECT_EQ(o.decisions[0].reason, "staggered start");
  EXPECT_FALSE(o.decisions[0].backup);
  EXPECT_THAT(fleet.Tick(kT0 + absl::Seconds(15), Fresh).decisions, IsEmpty());
  EXPECT_THAT(Describe(fleet.Tick(kT0 + absl::Seconds(25), Fresh).decisions),
              ElementsAre("launch 2/0"));
  EXPECT_THAT(fleet.Tick(kT0 + absl::Seconds(100), Fresh).decisions, IsEmpty());
  EXPECT_EQ(fleet.starting(), 3u);
}

TEST(WorkerFleetTest, LateTickLaunchesEveryDueInstanceInOrder) {
  WorkerFleet fleet(Opts()
                        .workers(4)
                        .startup_timeout(absl::Hours(1))
                        .start_interval(absl::Seconds(10)));
  fleet.Start(kT0);
  EXPECT_THAT(Describe(fleet.Tick(kT0 + absl::Seconds(30), Fresh).decisions),
              ElementsAre("launch 1/0", "launch 2/0", "launch 3/0"));
}

// ---------------------------------------------------------------------------
// Startup monitor

class WorkerFleetBackupTest : public ::testing::Test {
 protected:
  WorkerFleetBackupTest() : fleet_(Opts().workers(1).startup_timeout(absl::Seconds(60))) {
    fleet_.Start(kT0);
  }
  // Runs the monitor past the timeout; returns the backup decision.
  FleetDecision LaunchBackup() {
    EXPECT_THAT(fleet_.Tick(kT0 + absl::Seconds(60), Fresh).decisions, IsEmpty())
        << "exactly at the timeout is not yet too slow";
    FleetOutcome o = fleet_.Tick(kT0 + absl::Seconds(61), Fresh);
    EXPECT_THAT(Describe(o.decisions), ElementsAre("launch 0/1 backup"));
    if (o.decisions.size() != 1) return {};
    return o.decisions[0];
  }
  WorkerFleet fleet_;
};

TEST_F(WorkerFleetBackupTest, SlowStarterGetsExactlyOneBackup) {
  FleetDecision backup = LaunchBackup();
  EXPECT_TRUE(backup.backup);
  EXPECT_EQ(backup.attempt, 1u);
  EXPECT_THAT(backup.reason, HasSubstr("attempt 0 did not register within 1m"));
  std::vector<InstanceInfo> snap = fleet_.Snapshot();
  EXPECT_EQ(snap[0].backups, 1u);
  EXPECT_EQ(snap[0].restarts, 0u);
  ASSERT_EQ(snap[0].attempts.size(), 2u);
  EXPECT_TRUE(snap[0].attempts[1].backup);
  EXPECT_EQ(snap[0].attempts[1].launched_at, kT0 + absl::Seconds(61));
  // Both stay slow: no second backup, however long it takes.
  for (int s : {62, 200, 1000, 100000}) {
    EXPECT_THAT(fleet_.Tick(kT0 + absl::Seconds(s), Fresh).decisions, IsEmpty()) << s;
  }
  EXPECT_EQ(fleet_.Snapshot()[0].backups, 1u);
  EXPECT_EQ(fleet_.starting(), 1u);
}

TEST_F(WorkerFleetBackupTest, BackupWinsTheRaceAndTheOriginalIsStopped) {
  LaunchBackup();
  std::vector<FleetDecision> stops;
  ASSERT_TRUE(fleet_.OnRegistered(0, 1, 42, kT0 + absl::Seconds(70), &stops).ok());
  ASSERT_THAT(Describe(stops), ElementsAre("stop 0/0"));
  EXPECT_THAT(stops[0].reason, HasSubstr("lost the start race to attempt 1"));

  std::vector<InstanceInfo> snap = fleet_.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kRunning);
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kStopped);
  EXPECT_THAT(snap[0].attempts[0].detail, HasSubstr("lost the start race"));
  EXPECT_EQ(snap[0].attempts[0].ended_at, kT0 + absl::Seconds(70));
  EXPECT_EQ(snap[0].attempts[1].state, AttemptState::kRunning);
  EXPECT_EQ(snap[0].attempts[1].session, 42u);
  EXPECT_EQ(snap[0].attempts[1].registered_at, kT0 + absl::Seconds(70));
  EXPECT_EQ(fleet_.FindSession(42), std::make_pair(0u, 1u));

  // The loser registers late: refused, and not stopped twice.
  std::vector<FleetDecision> more;
  absl::Status late = fleet_.OnRegistered(0, 0, 43, kT0 + absl::Seconds(71), &more);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(late), HasSubstr("lost the start race"));
  EXPECT_THAT(more, IsEmpty());
  EXPECT_EQ(fleet_.running(), 1u);
  EXPECT_FALSE(fleet_.FindSession(43).has_value());

  // The stopped loser's exit is no failure of the instance.
  FleetOutcome exit = fleet_.OnExited(0, 0, 143, kT0 + absl::Seconds(72));
  EXPECT_THAT(exit.decisions, IsEmpty());
  EXPECT_THAT(exit.releases, IsEmpty());
  snap = fleet_.Snapshot();
  EXPECT_EQ(snap[0].restarts, 0u);
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kStopped);
  EXPECT_EQ(snap[0].attempts[0].exit_code, 143);
  EXPECT_EQ(snap[0].state, InstanceState::kRunning);
}

TEST_F(WorkerFleetBackupTest, OriginalWinsTheRaceAndTheBackupIsStopped) {
  LaunchBackup();
  std::vector<FleetDecision> stops;
  ASSERT_TRUE(fleet_.OnRegistered(0, 0, 7, kT0 + absl::Seconds(65), &stops).ok());
  ASSERT_THAT(Describe(stops), ElementsAre("stop 0/1"));
  EXPECT_THAT(stops[0].reason, HasSubstr("lost the start race to attempt 0"));
  std::vector<InstanceInfo> snap = fleet_.Snapshot();
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kRunning);
  EXPECT_EQ(snap[0].attempts[1].state, AttemptState::kStopped);

  std::vector<FleetDecision> more;
  absl::Status late = fleet_.OnRegistered(0, 1, 8, kT0 + absl::Seconds(66), &more);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(late), HasSubstr("lost the start race"));
  EXPECT_THAT(more, IsEmpty());
  EXPECT_EQ(fleet_.FindSession(7), std::make_pair(0u, 0u));
  // Running: no backup however long it runs.
  EXPECT_THAT(fleet_.Tick(kT0 + absl::Hours(5), Fresh).decisions, IsEmpty());
}

TEST_F(WorkerFleetBackupTest, OriginalDyingLeavesTheBackupToServeWithoutARestart) {
  LaunchBackup();
  FleetOutcome o = fleet_.OnExited(0, 0, 1, kT0 + absl::Seconds(70));
  EXPECT_THAT(o.decisions, IsEmpty());
  EXPECT_THAT(o.releases, IsEmpty());  // it never registered: no session
  std::vector<InstanceInfo> snap = fleet_.Snapshot();
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kFailed);
  EXPECT_EQ(snap[0].restarts, 0u);
  EXPECT_FALSE(snap[0].launch_at.has_value());
  EXPECT_EQ(snap[0].state, InstanceState::kStarting);
  EXPECT_FALSE(fleet_.Exhausted());

  std::vector<FleetDecision> stops;
  EXPECT_TRUE(fleet_.OnRegistered(0, 1, 5, kT0 + absl::Seconds(80), &stops).ok());
  EXPECT_THAT(stops, IsEmpty());
  EXPECT_EQ(fleet_.running(), 1u);
}

TEST_F(WorkerFleetBackupTest, CrashingBackupsDoNotRelaunchForeverPastTheRestartBudget) {
  // One backup per launch: when the backup dies and the original is still
  // hanging in its start, no further backup is launched for it.
  LaunchBackup();
  EXPECT_THAT(fleet_.OnExited(0, 1, 1, kT0 + absl::Seconds(62)).decisions, IsEmpty());
  EXPECT_THAT(fleet_.Tick(kT0 + absl::Seconds(200), Fresh).decisions, IsEmpty());
  EXPECT_THAT(fleet_.Tick(kT0 + absl::Seconds(2000), Fresh).decisions, IsEmpty());
  EXPECT_EQ(fleet_.Snapshot()[0].attempts.size(), 2u);
}

TEST(WorkerFleetStartupTest, SlowBackupAloneAfterTheOriginalDiedGetsNoBackupOfItsOwn) {
  // A worker that always hangs past the startup timeout and then crashes must
  // use up its restarts and fail, not be relaunched as backups forever.
  WorkerFleet fleet(Opts()
                        .workers(1)
                        .startup_timeout(absl::Seconds(60))
                        .max_restarts(1)
                        .restart_backoff(absl::Seconds(1)));
  fleet.Start(kT0);
  absl::Time t = kT0;
  std::vector<std::string> launches = {"launch 0/0"};
  for (int round = 0; round < 20 && !fleet.Exhausted(); ++round) {
    t += absl::Seconds(61);
    for (const std::string& d : Describe(fleet.Tick(t, Fresh).decisions)) {
      launches.push_back(d);
    }
    // The oldest attempt still starting crashes a little later, unregistered.
    t += absl::Seconds(30);
    const std::vector<InstanceInfo> snap = fleet.Snapshot();
    for (const AttemptInfo& a : snap[0].attempts) {
      if (a.state != AttemptState::kStarting) continue;
      fleet.OnExited(0, a.attempt, 137, t);
      break;
    }
    t += absl::Seconds(2);
    for (const std::string& d : Describe(fleet.Tick(t, Fresh).decisions)) {
      launches.push_back(d);
    }
  }
  EXPECT_TRUE(fleet.Exhausted());
  // The first launch and one restart, each with one backup.
  EXPECT_THAT(launches, ElementsAre("launch 0/0", "launch 0/1 backup", "launch 0/2",
                                    "launch 0/3 backup"));
  EXPECT_EQ(fleet.Snapshot()[0].state, InstanceState::kFailed);
  EXPECT_THAT(fleet.ExhaustedSummary(), HasSubstr("1 restart used"));
}

TEST(WorkerFleetStartupTest, RestartedAttemptGetsItsOwnBackup) {
  WorkerFleet fleet(Opts()
                        .workers(1)
                        .startup_timeout(absl::Seconds(60))
                        .restart_backoff(absl::Seconds(1)));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 1, kT0 + absl::Seconds(1));
  EXPECT_THAT(Describe(fleet.Tick(kT0 + absl::Seconds(2), Fresh).decisions),
              ElementsAre("launch 0/1"));
  EXPECT_THAT(fleet.Tick(kT0 + absl::Seconds(62), Fresh).decisions, IsEmpty());
  EXPECT_THAT(Describe(fleet.Tick(kT0 + absl::Seconds(63), Fresh).decisions),
              ElementsAre("launch 0/2 backup"));
}

// ---------------------------------------------------------------------------
// Registration

TEST(WorkerFleetRegisterTest, Errors) {
  WorkerFleet fleet(Opts().workers(2));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  absl::Status out_of_range = fleet.OnRegistered(2, 0, 1, kT0, &d);
  EXPECT_EQ(out_of_range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(out_of_range), HasSubstr("out of range"));
  EXPECT_EQ(fleet.OnRegistered(1000, 0, 1, kT0, &d).code(),
            absl::StatusCode::kInvalidArgument);

  absl::Status unknown = fleet.OnRegistered(1, 3, 1, kT0, &d);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(unknown), HasSubstr("was not launched"));
  EXPECT_THAT(d, IsEmpty());
  EXPECT_EQ(fleet.running(), 0u);
  EXPECT_EQ(fleet.starting(), 2u);
}

TEST(WorkerFleetRegisterTest, PendingInstanceMayNotRegister) {
  WorkerFleet fleet(Opts().workers(2).start_interval(absl::Seconds(10)));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  EXPECT_EQ(fleet.OnRegistered(1, 0, 1, kT0, &d).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerFleetRegisterTest, RegisteringAgainUpdatesTheSession) {
  WorkerFleet fleet(Opts().workers(1));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 10, kT0 + absl::Seconds(1), &d).ok());
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 11, kT0 + absl::Seconds(2), &d).ok());
  EXPECT_THAT(d, IsEmpty());
  EXPECT_EQ(fleet.FindSession(11), std::make_pair(0u, 0u));
  EXPECT_FALSE(fleet.FindSession(10).has_value());
  EXPECT_FALSE(fleet.FindSession(0).has_value());
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].attempts[0].session, 11u);
  EXPECT_EQ(snap[0].attempts[0].registered_at, kT0 + absl::Seconds(1));
  EXPECT_EQ(fleet.running(), 1u);
  // A failure now releases the current session.
  EXPECT_THAT(Sessions(fleet.OnExited(0, 0, 1, kT0 + absl::Seconds(3)).releases),
              ElementsAre(11u));
}

TEST(WorkerFleetRegisterTest, FailedAttemptMayNotRegister) {
  WorkerFleet fleet(Opts().workers(1));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 1, kT0);
  std::vector<FleetDecision> d;
  absl::Status s = fleet.OnRegistered(0, 0, 3, kT0, &d);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("exited with status 1"));
}

// ---------------------------------------------------------------------------
// Failures and restarts

TEST(WorkerFleetFailureTest, NonZeroExitReleasesTheSessionAndRestartsAfterBackoff) {
  WorkerFleet fleet(Opts().workers(1).restart_backoff(absl::Seconds(2)));
  fleet.Start(kT0);
  fleet.OnStarted(0, 0, 4321, kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 77, kT0 + absl::Seconds(1), &d).ok());

  const absl::Time died = kT0 + absl::Seconds(10);
  FleetOutcome o = fleet.OnExited(0, 0, 3, died);
  EXPECT_THAT(o.decisions, IsEmpty());
  ASSERT_EQ(o.releases.size(), 1u);
  EXPECT_EQ(o.releases[0].session, 77u);
  EXPECT_THAT(o.releases[0].reason, HasSubstr("exited with status 3"));
  EXPECT_THAT(o.releases[0].reason, HasSubstr("worker 0"));

  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kRestarting);
  EXPECT_EQ(snap[0].restarts, 1u);
  EXPECT_EQ(snap[0].launch_at, died + absl::Seconds(2));
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kFailed);
  EXPECT_EQ(snap[0].attempts[0].exit_code, 3);
  EXPECT_EQ(snap[0].attempts[0].pid, 4321);
  EXPECT_EQ(snap[0].attempts[0].ended_at, died);
  EXPECT_EQ(fleet.restarting(), 1u);
  EXPECT_EQ(fleet.running(), 0u);
  EXPECT_FALSE(fleet.Exhausted());
  EXPECT_FALSE(fleet.AllExited());

  EXPECT_THAT(
      fleet.Tick(died + absl::Seconds(2) - absl::Milliseconds(1), Fresh).decisions,
      IsEmpty());
  FleetOutcome t = fleet.Tick(died + absl::Seconds(2), Fresh);
  ASSERT_THAT(Describe(t.decisions), ElementsAre("launch 0/1"));
  EXPECT_EQ(t.decisions[0].reason, "restart");
  EXPECT_FALSE(fleet.Snapshot()[0].launch_at.has_value());
  EXPECT_EQ(fleet.Snapshot()[0].state, InstanceState::kStarting);
  // Launched once only.
  EXPECT_THAT(fleet.Tick(died + absl::Seconds(3), Fresh).decisions, IsEmpty());
}

TEST(WorkerFleetFailureTest, BackoffDoublesUpToTheCap) {
  WorkerFleet fleet(Opts()
                        .workers(1)
                        .startup_timeout(absl::Hours(10))
                        .max_restarts(10)
                        .restart_backoff(absl::Seconds(1))
                        .max_restart_backoff(absl::Seconds(5)));
  fleet.Start(kT0);
  absl::Time t = kT0;
  std::vector<absl::Duration> waits;
  for (uint32_t attempt = 0; attempt < 7; ++attempt) {
    t += absl::Seconds(100);
    fleet.OnExited(0, attempt, 1, t);
    std::optional<absl::Time> at = fleet.Snapshot()[0].launch_at;
    ASSERT_TRUE(at.has_value()) << attempt;
    waits.push_back(*at - t);
    EXPECT_THAT(fleet.Tick(*at - absl::Milliseconds(1), Fresh).decisions, IsEmpty());
    t = *at;
    ASSERT_THAT(Describe(fleet.Tick(t, Fresh).decisions),
                ElementsAre(absl::StrCat("launch 0/", attempt + 1)));
  }
  EXPECT_THAT(waits, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                 absl::Seconds(5), absl::Seconds(5), absl::Seconds(5),
                                 absl::Seconds(5)));
  EXPECT_EQ(fleet.Snapshot()[0].restarts, 7u);
}

TEST(WorkerFleetFailureTest, MaxRestartsEndsTheInstanceForGood) {
  WorkerFleet fleet(Opts().workers(1).max_restarts(2).restart_backoff(absl::Seconds(1)));
  fleet.Start(kT0);
  absl::Time t = kT0;
  for (uint32_t attempt = 0; attempt < 2; ++attempt) {
    t += absl::Seconds(10);
    fleet.OnExited(0, attempt, 1, t);
    ASSERT_EQ(fleet.Snapshot()[0].state, InstanceState::kRestarting);
    t += absl::Seconds(10);
    ASSERT_THAT(Describe(fleet.Tick(t, Fresh).decisions),
                ElementsAre(absl::StrCat("launch 0/", attempt + 1)));
  }
  t += absl::Seconds(10);
  FleetOutcome o = fleet.OnExited(0, 2, 1, t);
  EXPECT_THAT(o.decisions, IsEmpty());
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kFailed);
  EXPECT_EQ(snap[0].restarts, 2u);
  EXPECT_FALSE(snap[0].launch_at.has_value());
  EXPECT_THAT(snap[0].failure, HasSubstr("exited with status 1"));
  EXPECT_THAT(snap[0].failure, HasSubstr("2 restarts used"));
  EXPECT_THAT(fleet.Tick(t + absl::Hours(1), Fresh).decisions, IsEmpty());
  EXPECT_TRUE(fleet.Exhausted());
  EXPECT_EQ(fleet.restarting(), 0u);
}

TEST(WorkerFleetFailureTest, OneRestartIsSingular) {
  WorkerFleet fleet(Opts().workers(1).max_restarts(1));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 1, kT0);
  fleet.Tick(kT0 + absl::Minutes(1), Fresh);
  fleet.OnExited(0, 1, 1, kT0 + absl::Minutes(2));
  EXPECT_THAT(fleet.Snapshot()[0].failure, HasSubstr("(1 restart used)"));
}

TEST(WorkerFleetFailureTest, ZeroMaxRestartsFailsAtOnce) {
  WorkerFleet fleet(Opts().workers(1).max_restarts(0));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 2, kT0);
  EXPECT_EQ(fleet.Snapshot()[0].state, InstanceState::kFailed);
  EXPECT_THAT(fleet.Snapshot()[0].failure, HasSubstr("0 restarts used"));
}

TEST(WorkerFleetFailureTest, ExitCodePolicyRestartsOnlyRetryableCodes) {
  WorkerFleet fleet(Opts().workers(3).restart_policy(RestartPolicy::kExitCode));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 137, kT0);
  fleet.OnExited(1, 0, 1, kT0);
  fleet.OnExited(2, 0, 143, kT0);
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kRestarting);
  EXPECT_EQ(snap[0].restarts, 1u);
  EXPECT_EQ(snap[1].state, InstanceState::kFailed);
  EXPECT_EQ(snap[1].restarts, 0u);
  EXPECT_THAT(snap[1].failure, HasSubstr("exited with status 1"));
  EXPECT_THAT(snap[1].failure, HasSubstr("not retryable"));
  EXPECT_EQ(snap[2].state, InstanceState::kRestarting);
  EXPECT_THAT(Describe(fleet.Tick(kT0 + absl::Seconds(1), Fresh).decisions),
              ElementsAre("launch 0/1", "launch 2/1"));
}

TEST(WorkerFleetFailureTest, ExitCodePolicyRestartsAfterAMissedHeartbeat) {
  WorkerFleet fleet(Opts()
                        .workers(1)
                        .heartbeat_timeout(absl::Seconds(30))
                        .restart_policy(RestartPolicy::kExitCode));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 9, kT0, &d).ok());
  fleet.Tick(kT0 + absl::Seconds(31), [](SessionId) { return kT0; });
  EXPECT_EQ(fleet.Snapshot()[0].state, InstanceState::kRestarting);
}

TEST(WorkerFleetFailureTest, NeverPolicyDoesNotRestart) {
  WorkerFleet fleet(Opts().workers(1).restart_policy(RestartPolicy::kNever));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 5, kT0, &d).ok());
  FleetOutcome o = fleet.OnExited(0, 0, 137, kT0 + absl::Seconds(1));
  EXPECT_THAT(Sessions(o.releases), ElementsAre(5u));
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kFailed);
  EXPECT_EQ(snap[0].restarts, 0u);
  EXPECT_FALSE(snap[0].launch_at.has_value());
  EXPECT_THAT(snap[0].failure, HasSubstr("not retryable"));
  EXPECT_THAT(fleet.Tick(kT0 + absl::Hours(1), Fresh).decisions, IsEmpty());
  EXPECT_TRUE(fleet.Exhausted());
}

TEST(WorkerFleetFailureTest, HeartbeatTimeoutStopsReleasesAndRestarts) {
  WorkerFleet fleet(Opts()
                        .workers(2)
                        .heartbeat_timeout(absl::Seconds(30))
                        .restart_backoff(absl::Seconds(1)));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 100, kT0, &d).ok());
  ASSERT_TRUE(fleet.OnRegistered(1, 0, 200, kT0, &d).ok());
  absl::flat_hash_map<SessionId, absl::Time> seen = {{100, kT0 + absl::Seconds(10)},
                                                     {200, kT0 + absl::Seconds(10)}};
  auto last_seen = [&](SessionId id) { return seen.at(id); };

  // Silent exactly for the timeout: still fine.
  FleetOutcome at = fleet.Tick(kT0 + absl::Seconds(40), last_seen);
  EXPECT_THAT(at.decisions, IsEmpty());
  EXPECT_THAT(at.releases, IsEmpty());
  EXPECT_EQ(fleet.running(), 2u);

  // Worker 1 spoke; worker 0 stays silent a moment longer than allowed.
  seen[200] = kT0 + absl::Seconds(39);
  const absl::Time now = kT0 + absl::Seconds(40) + absl::Milliseconds(1);
  FleetOutcome o = fleet.Tick(now, last_seen);
  ASSERT_THAT(Describe(o.decisions), ElementsAre("stop 0/0"));
  EXPECT_THAT(o.decisions[0].reason, HasSubstr("no heartbeat for 30s"));
  ASSERT_THAT(Sessions(o.releases), ElementsAre(100u));
  EXPECT_THAT(o.releases[0].reason, HasSubstr("no heartbeat"));

  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kFailed);
  EXPECT_THAT(snap[0].attempts[0].detail, HasSubstr("no heartbeat"));
  EXPECT_EQ(snap[0].state, InstanceState::kRestarting);
  EXPECT_EQ(snap[0].restarts, 1u);
  EXPECT_EQ(snap[0].launch_at, now + absl::Seconds(1));
  EXPECT_EQ(snap[1].state, InstanceState::kRunning);

  // The killed process's exit is not a second failure.
  FleetOutcome exit = fleet.OnExited(0, 0, 137, now + absl::Milliseconds(500));
  EXPECT_THAT(exit.decisions, IsEmpty());
  EXPECT_THAT(exit.releases, IsEmpty());
  EXPECT_EQ(fleet.Snapshot()[0].restarts, 1u);
  EXPECT_EQ(fleet.Snapshot()[0].attempts[0].exit_code, 137);
  // Not failed twice by later ticks either; the restart comes when due.
  seen[200] = now + absl::Seconds(1);
  FleetOutcome later = fleet.Tick(now + absl::Seconds(1), last_seen);
  EXPECT_THAT(Describe(later.decisions), ElementsAre("launch 0/1"));
  EXPECT_THAT(later.releases, IsEmpty());
}

TEST(WorkerFleetFailureTest, StartingAttemptsHaveNoHeartbeatTimeout) {
  WorkerFleet fleet(Opts()
                        .workers(1)
                        .startup_timeout(absl::Hours(2))
                        .heartbeat_timeout(absl::Seconds(30)));
  fleet.Start(kT0);
  bool asked = false;
  FleetOutcome o = fleet.Tick(kT0 + absl::Hours(1), [&](SessionId) {
    asked = true;
    return absl::InfinitePast();
  });
  EXPECT_THAT(o.decisions, IsEmpty());
  EXPECT_FALSE(asked);
}

// ---------------------------------------------------------------------------
// Success, exhaustion

TEST(WorkerFleetExhaustionTest, ExitZeroSucceedsWithoutRestart) {
  WorkerFleet fleet(Opts().workers(2).startup_timeout(absl::Hours(2)));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 1, kT0, &d).ok());
  FleetOutcome o = fleet.OnExited(0, 0, 0, kT0 + absl::Seconds(5));
  EXPECT_THAT(o.decisions, IsEmpty());
  // Its leases go back at once, without counting as failures.
  ASSERT_EQ(o.releases.size(), 1u);
  EXPECT_EQ(o.releases[0].session, 1u);
  EXPECT_FALSE(o.releases[0].count_as_failure);
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kSucceeded);
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kSucceeded);
  EXPECT_EQ(snap[0].attempts[0].exit_code, 0);
  EXPECT_EQ(snap[0].restarts, 0u);
  EXPECT_FALSE(snap[0].launch_at.has_value());
  EXPECT_THAT(fleet.Tick(kT0 + absl::Hours(1), Fresh).decisions, IsEmpty());
  EXPECT_FALSE(fleet.Exhausted());  // worker 1 is still starting
}

TEST(WorkerFleetExhaustionTest, ExhaustedWhenEveryInstanceIsGoneNamingEach) {
  WorkerFleet fleet(Opts()
                        .workers(3)
                        .max_restarts(1)
                        .restart_policy(RestartPolicy::kExitCode)
                        .restart_backoff(absl::Seconds(1)));
  fleet.Start(kT0);
  EXPECT_FALSE(fleet.Exhausted());
  fleet.OnExited(0, 0, 0, kT0 + absl::Seconds(1));  // exited
  EXPECT_FALSE(fleet.Exhausted());
  fleet.OnExited(1, 0, 2, kT0 + absl::Seconds(1));  // permanent
  EXPECT_FALSE(fleet.Exhausted());
  fleet.OnExited(2, 0, 137, kT0 + absl::Seconds(1));  // retryable: restart pending
  EXPECT_FALSE(fleet.Exhausted()) << "a restart is pending";
  fleet.Tick(kT0 + absl::Seconds(2), Fresh);
  EXPECT_FALSE(fleet.Exhausted()) << "the restart is starting";
  fleet.OnExited(2, 1, 137, kT0 + absl::Seconds(3));
  EXPECT_TRUE(fleet.Exhausted());
  const std::string summary = fleet.ExhaustedSummary();
  EXPECT_THAT(summary, StartsWith("every worker is gone:"));
  EXPECT_THAT(summary, HasSubstr("worker 0: exited 0 before the job's end"));
  EXPECT_THAT(summary, HasSubstr("worker 1: exited with status 2 (not retryable"));
  EXPECT_THAT(summary, HasSubstr("worker 2: exited with status 137 (1 restart used)"));
  EXPECT_TRUE(fleet.AllExited());
}

TEST(WorkerFleetExhaustionTest, SummaryNamesTheWinnerNotTheStartRaceLoser) {
  WorkerFleet fleet(Opts().workers(1).startup_timeout(absl::Seconds(60)));
  fleet.Start(kT0);
  fleet.Tick(kT0 + absl::Seconds(61), Fresh);  // backup 0/1
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 1, kT0 + absl::Seconds(62), &d).ok());
  fleet.OnExited(0, 1, 143, kT0 + absl::Seconds(63));  // the stopped loser
  fleet.OnExited(0, 0, 0, kT0 + absl::Seconds(64));
  ASSERT_TRUE(fleet.Exhausted());
  EXPECT_THAT(fleet.ExhaustedSummary(), HasSubstr("exited 0 before the job's end"));
  EXPECT_THAT(fleet.ExhaustedSummary(), Not(HasSubstr("start race")));
}

TEST(WorkerFleetExhaustionTest, NotExhaustedBeforeStart) {
  // Journal replay and master ticks may run before the first launch.
  WorkerFleet fleet(Opts().workers(2));
  EXPECT_FALSE(fleet.Exhausted());
  fleet.Start(kT0);
  EXPECT_FALSE(fleet.Exhausted());
}

TEST(WorkerFleetExhaustionTest, NotExhaustedWhileStaggeredStartsWait) {
  WorkerFleet fleet(Opts().workers(2).max_restarts(0).start_interval(absl::Seconds(30)));
  fleet.Start(kT0);
  fleet.OnExited(0, 0, 1, kT0 + absl::Seconds(1));
  EXPECT_FALSE(fleet.Exhausted());
  fleet.Tick(kT0 + absl::Seconds(30), Fresh);
  fleet.OnExited(1, 0, 1, kT0 + absl::Seconds(31));
  EXPECT_TRUE(fleet.Exhausted());
}

// ---------------------------------------------------------------------------
// Early stop

TEST(WorkerFleetJobEndTest, StopsStartersCancelsRestartsAndStaggeredStarts) {
  WorkerFleet fleet(Opts()
                        .workers(4)
                        .startup_timeout(absl::Hours(1))
                        .restart_backoff(absl::Seconds(5))
                        .start_interval(absl::Seconds(10)));
  fleet.Start(kT0);
  fleet.Tick(kT0 + absl::Seconds(10), Fresh);  // 1/0
  fleet.Tick(kT0 + absl::Seconds(20), Fresh);  // 2/0
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 50, kT0 + absl::Seconds(20), &d).ok());
  fleet.OnExited(2, 0, 1, kT0 + absl::Seconds(21));  // restart due at 26
  std::vector<InstanceInfo> before = fleet.Snapshot();
  ASSERT_EQ(before[1].state, InstanceState::kStarting);
  ASSERT_EQ(before[2].state, InstanceState::kRestarting);
  ASSERT_EQ(before[3].state, InstanceState::kPending);

  const absl::Time end = kT0 + absl::Seconds(22);
  std::vector<FleetDecision> stops = fleet.OnJobEnded(end);
  ASSERT_THAT(Describe(stops), ElementsAre("stop 1/0"));
  EXPECT_EQ(stops[0].reason, "stopped: all data was done before it registered");

  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_EQ(snap[0].state, InstanceState::kRunning);  // hears END itself
  EXPECT_EQ(snap[0].attempts[0].state, AttemptState::kRunning);
  EXPECT_EQ(snap[1].attempts[0].state, AttemptState::kStopped);
  EXPECT_THAT(snap[1].attempts[0].detail, HasSubstr("all data was done"));
  EXPECT_EQ(snap[1].state, InstanceState::kStopped);
  EXPECT_EQ(snap[2].state, InstanceState::kStopped);
  EXPECT_EQ(snap[3].state, InstanceState::kStopped);
  for (const InstanceInfo& i : snap) EXPECT_FALSE(i.launch_at.has_value()) << i.index;
  EXPECT_EQ(fleet.restarting(), 0u);
  EXPECT_EQ(fleet.starting(), 0u);
  EXPECT_EQ(fleet.running(), 1u);

  // Nothing is ever launched afterwards, nor failed for silence.
  for (absl::Duration later : {absl::Seconds(5), absl::Seconds(60), absl::Hours(3)}) {
    FleetOutcome o =
        fleet.Tick(end + later, [](SessionId) { return absl::InfinitePast(); });
    EXPECT_THAT(o.decisions, IsEmpty());
    EXPECT_THAT(o.releases, IsEmpty());
  }
  EXPECT_EQ(fleet.Snapshot()[3].attempts.size(), 0u);
  EXPECT_FALSE(fleet.Exhausted());

  // The stopped starter may not register any more.
  absl::Status late = fleet.OnRegistered(1, 0, 51, end + absl::Seconds(1), &d);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(late), HasSubstr("all data was done"));

  // A second end changes nothing.
  EXPECT_THAT(fleet.OnJobEnded(end + absl::Seconds(2)), IsEmpty());
}

TEST(WorkerFleetJobEndTest, FailureAfterTheEndReleasesButNeverRestarts) {
  WorkerFleet fleet(Opts().workers(2));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 8, kT0, &d).ok());
  ASSERT_TRUE(fleet.OnRegistered(1, 0, 9, kT0, &d).ok());
  EXPECT_THAT(fleet.OnJobEnded(kT0 + absl::Seconds(1)), IsEmpty());

  FleetOutcome o = fleet.OnExited(0, 0, 1, kT0 + absl::Seconds(2));
  EXPECT_THAT(Sessions(o.releases), ElementsAre(8u));
  EXPECT_THAT(o.decisions, IsEmpty());
  fleet.OnExited(1, 0, 0, kT0 + absl::Seconds(2));
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  EXPECT_FALSE(snap[0].launch_at.has_value());
  EXPECT_EQ(snap[0].restarts, 0u);
  EXPECT_EQ(snap[1].state, InstanceState::kSucceeded);
  EXPECT_EQ(snap[1].attempts[0].detail, "exited after the job's end");
  EXPECT_THAT(fleet.Tick(kT0 + absl::Hours(1), Fresh).decisions, IsEmpty());
  EXPECT_FALSE(fleet.Exhausted());
  EXPECT_TRUE(fleet.AllExited());
}

// ---------------------------------------------------------------------------
// StopAll, AllExited, counts

TEST(WorkerFleetStopAllTest, StopsEverythingAliveAndWaitsForEveryExit) {
  WorkerFleet fleet(Opts().workers(4).startup_timeout(absl::Seconds(60)));
  fleet.Start(kT0);
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 1, kT0, &d).ok());  // running
  fleet.OnExited(2, 0, 0, kT0 + absl::Seconds(1));         // succeeded
  fleet.Tick(kT0 + absl::Seconds(61), Fresh);              // backups 1/1, 3/1
  ASSERT_TRUE(fleet.OnRegistered(3, 1, 2, kT0 + absl::Seconds(62), &d).ok());
  ASSERT_THAT(Describe(d), ElementsAre("stop 3/0"));  // lost, not exited yet
  EXPECT_FALSE(fleet.AllExited());

  const absl::Time at = kT0 + absl::Seconds(70);
  std::vector<FleetDecision> stops = fleet.StopAll("shutting down", at);
  EXPECT_THAT(Describe(stops),
              ElementsAre("stop 0/0", "stop 1/0", "stop 1/1", "stop 3/0", "stop 3/1"));
  for (const FleetDecision& s : stops) EXPECT_EQ(s.reason, "shutting down");
  for (const InstanceInfo& i : fleet.Snapshot()) {
    for (const AttemptInfo& a : i.attempts) {
      EXPECT_TRUE(a.state != AttemptState::kStarting && a.state != AttemptState::kRunning)
          << i.index << "/" << a.attempt;
    }
  }
  EXPECT_EQ(fleet.Snapshot()[0].attempts[0].detail, "shutting down");
  EXPECT_THAT(fleet.Snapshot()[3].attempts[0].detail, HasSubstr("lost the start race"));
  EXPECT_EQ(fleet.running(), 0u);
  EXPECT_EQ(fleet.starting(), 0u);
  EXPECT_THAT(fleet.Tick(at + absl::Hours(1), Fresh).decisions, IsEmpty());

  const std::vector<std::pair<uint32_t, uint32_t>> alive = {
      {0, 0}, {1, 0}, {1, 1}, {3, 0}, {3, 1}};
  for (auto [index, attempt] : alive) {
    EXPECT_FALSE(fleet.AllExited()) << index << "/" << attempt;
    FleetOutcome o = fleet.OnExited(index, attempt, 143, at + absl::Seconds(1));
    EXPECT_THAT(o.releases, IsEmpty());  // stopped, not failed
    EXPECT_THAT(o.decisions, IsEmpty());
  }
  EXPECT_TRUE(fleet.AllExited());
  // Nothing left to stop.
  EXPECT_THAT(fleet.StopAll("again", at + absl::Seconds(2)), IsEmpty());
}

TEST(WorkerFleetStopAllTest, AllExitedWaitsForPendingRestartsAndStarts) {
  WorkerFleet fleet(Opts().workers(2).start_interval(absl::Seconds(10)));
  EXPECT_TRUE(fleet.AllExited());  // nothing launched yet
  fleet.Start(kT0);
  EXPECT_FALSE(fleet.AllExited());
  fleet.OnExited(0, 0, 1, kT0 + absl::Seconds(1));  // restart pending
  EXPECT_FALSE(fleet.AllExited()) << "a restart and a staggered start wait";
  fleet.Tick(kT0 + absl::Seconds(10), Fresh);  // 0/1 and 1/0
  fleet.OnExited(0, 1, 0, kT0 + absl::Seconds(11));
  EXPECT_FALSE(fleet.AllExited());
  fleet.OnExited(1, 0, 0, kT0 + absl::Seconds(11));
  EXPECT_TRUE(fleet.AllExited());
}

TEST(WorkerFleetStopAllTest, AllExitedAfterTheEndIgnoresCancelledLaunches) {
  WorkerFleet fleet(Opts().workers(2).start_interval(absl::Seconds(10)));
  fleet.Start(kT0);
  fleet.OnJobEnded(kT0 + absl::Seconds(1));
  EXPECT_FALSE(fleet.AllExited());  // 0/0 was told to stop but has not exited
  fleet.OnExited(0, 0, 143, kT0 + absl::Seconds(2));
  EXPECT_TRUE(fleet.AllExited());
}

TEST(WorkerFleetSnapshotTest, StatesAndCounts) {
  WorkerFleet fleet(Opts()
                        .workers(6)
                        .startup_timeout(absl::Hours(1))
                        .restart_policy(RestartPolicy::kExitCode)
                        .restart_backoff(absl::Seconds(10))
                        .start_interval(absl::Seconds(100)));
  fleet.Start(kT0);
  const absl::Time t = kT0 + absl::Seconds(400);
  EXPECT_THAT(Describe(fleet.Tick(t, Fresh).decisions),
              ElementsAre("launch 1/0", "launch 2/0", "launch 3/0", "launch 4/0"));
  std::vector<FleetDecision> d;
  ASSERT_TRUE(fleet.OnRegistered(0, 0, 1, t, &d).ok());
  fleet.OnExited(2, 0, 137, t);  // restarting
  fleet.OnExited(3, 0, 0, t);    // succeeded
  fleet.OnExited(4, 0, 1, t);    // failed for good

  auto states = [&] {
    std::vector<InstanceState> out;
    for (const InstanceInfo& i : fleet.Snapshot()) out.push_back(i.state);
    return out;
  };
  EXPECT_THAT(states(), ElementsAre(InstanceState::kRunning, InstanceState::kStarting,
                                    InstanceState::kRestarting, InstanceState::kSucceeded,
                                    InstanceState::kFailed, InstanceState::kPending));
  EXPECT_EQ(fleet.running(), 1u);
  EXPECT_EQ(fleet.starting(), 1u);
  EXPECT_EQ(fleet.restarting(), 1u);
  std::vector<InstanceInfo> snap = fleet.Snapshot();
  for (uint32_t i = 0; i < snap.size(); ++i) EXPECT_EQ(snap[i].index, i);
  EXPECT_EQ(snap[5].launch_at, kT0 + absl::Seconds(500));

  fleet.OnJobEnded(t + absl::Seconds(1));
  EXPECT_THAT(states(), ElementsAre(InstanceState::kRunning, InstanceState::kStopped,
                                    InstanceState::kStopped, InstanceState::kSucceeded,
                                    InstanceState::kFailed, InstanceState::kStopped));
  EXPECT_EQ(fleet.running(), 1u);
  EXPECT_EQ(fleet.starting(), 0u);
  EXPECT_EQ(fleet.restarting(), 0u);
}

TEST(WorkerFleetSnapshotTest, UnknownAttemptsAreIgnored) {
  WorkerFleet fleet(Opts().workers(1));
  fleet.Start(kT0);
  fleet.OnStarted(3, 0, 1, kT0);
  fleet.OnStarted(0, 9, 1, kT0);
  FleetOutcome o = fleet.OnExited(0, 9, 1, kT0);
  EXPECT_THAT(o.decisions, IsEmpty());
  EXPECT_THAT(o.releases, IsEmpty());
  EXPECT_EQ(fleet.Snapshot()[0].state, InstanceState::kStarting);
  EXPECT_EQ(fleet.Snapshot()[0].attempts.size(), 1u);
}

// ---------------------------------------------------------------------------
// The fleet inside the JobCoordinator

constexpr uint64_t kUnits = 100;  // records per shard

class CoordinatorFleetTest : public ::testing::Test {
 protected:
  void Make(uint64_t shards, FleetOptions fleet) {
    coordinator_.reset();
    absl::StatusOr<ShardEnumerator> e =
        ShardEnumerator::ForRecords(shards * kUnits, kUnits);
    ASSERT_TRUE(e.ok()) << e.status();
    enumerator_.emplace(*std::move(e));
    CoordinatorOptions options;
    options.lease_timeout = absl::Hours(1);  // only the fleet releases here
    options.speculation = false;
    options.fleet = fleet;
    coordinator_ = std::make_unique<JobCoordinator>(&clock_, &*enumerator_,
                                                    /*journal=*/nullptr, options);
  }

  absl::StatusOr<Registration> TryRegister(uint32_t index, uint32_t attempt,
                                           int32_t pid = 100) {
    WorkerIdentity who;
    who.task_index = index;
    who.attempt = attempt;
    who.pid = pid;
    who.host = "host-a";
    return coordinator_->Register(who, {});
  }
  SessionId Register(uint32_t index, uint32_t attempt, int32_t pid = 100) {
    absl::StatusOr<Registration> reg = TryRegister(index, attempt, pid);
    EXPECT_TRUE(reg.ok()) << reg.status();
    return reg.ok() ? reg->session : 0;
  }
  std::vector<LeaseRef> AcquireShards(SessionId s, uint32_t n) {
    absl::StatusOr<AcquireResult> r = coordinator_->Acquire(s, n, {}, {});
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<LeaseRef> out;
    if (!r.ok()) return out;
    EXPECT_EQ(r->outcome, AcquireOutcome::kShards);
    for (const GrantedShard& g : r->shards) {
      out.push_back({g.leased.shard.id, g.leased.attempt});
    }
    return out;
  }
  void CommitAndPublish(SessionId s, LeaseRef lease) {
    absl::StatusOr<CommitCallResult> c = coordinator_->Commit(s, {{lease, kUnits}}, {});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->results.size(), 1u);
    ASSERT_EQ(c->results[0].decision, CommitDecision::kGranted) << c->results[0].reason;
    ASSERT_TRUE(coordinator_->Heartbeat(s, {}, {lease}).ok());
  }

  FakeClock clock_{kT0};
  std::optional<ShardEnumerator> enumerator_;
  std::unique_ptr<JobCoordinator> coordinator_;
};

TEST_F(CoordinatorFleetTest, StartWorkersLaunchesAndCountsProgress) {
  Make(4, Opts().workers(3));
  EXPECT_TRUE(coordinator_->has_fleet());
  EXPECT_THAT(Describe(coordinator_->StartWorkers()),
              ElementsAre("launch 0/0", "launch 1/0", "launch 2/0"));
  for (uint32_t i = 0; i < 3; ++i) coordinator_->WorkerStarted(i, 0, 1000 + i);
  EXPECT_EQ(coordinator_->Workers()[2].attempts[0].pid, 1002);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.workers_total, 3u);
  EXPECT_EQ(p.workers_starting, 3u);
  EXPECT_EQ(p.workers_running, 0u);
  EXPECT_EQ(p.workers_restarting, 0u);

  Register(0, 0);
  coordinator_->WorkerExited(1, 0, 137);
  p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kRunning);
  EXPECT_EQ(p.workers_running, 1u);
  EXPECT_EQ(p.workers_starting, 1u);
  EXPECT_EQ(p.workers_restarting, 1u);
  EXPECT_EQ(p.live_sessions, 1u);
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());

  clock_.Advance(absl::Seconds(1));
  coordinator_->Tick();
  EXPECT_THAT(Describe(coordinator_->TakeFleetDecisions()), ElementsAre("launch 1/1"));
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());  // taken once
  p = coordinator_->Progress();
  EXPECT_EQ(p.workers_starting, 2u);
  EXPECT_EQ(p.workers_restarting, 0u);
}

TEST_F(CoordinatorFleetTest, FailedWorkersLeasesGoBackAtOnce) {
  Make(4, Opts().workers(2).restart_backoff(absl::Seconds(5)));
  coordinator_->StartWorkers();
  const SessionId s0 = Register(0, 0);
  std::vector<LeaseRef> held = AcquireShards(s0, 3);
  ASSERT_EQ(held.size(), 3u);
  // Start one of them, so that its release counts a failure.
  ASSERT_TRUE(coordinator_->Heartbeat(s0, {{held[0], 10, 10, true}}, {}).ok());
  EXPECT_EQ(coordinator_->Progress().pending_shards, 1u);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 3u);
  const uint64_t epoch = coordinator_->work_epoch();

  clock_.Advance(absl::Seconds(1));
  coordinator_->WorkerExited(0, 0, 1);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.pending_shards, 4u) << "no wait for the lease timeout";
  EXPECT_EQ(p.leased_shards, 0u);
  EXPECT_EQ(p.state, JobState::kRunning);
  EXPECT_EQ(p.workers_restarting, 1u);
  EXPECT_EQ(p.live_sessions, 0u);
  EXPECT_GT(coordinator_->work_epoch(), epoch);

  // The failed session is over.
  absl::StatusOr<AcquireResult> dead = coordinator_->Acquire(s0, 1, {}, {});
  EXPECT_EQ(dead.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(dead.status()), HasSubstr("exited with status 1"));

  // Another worker gets every shard, the released ones included.
  const SessionId s1 = Register(1, 0);
  std::vector<LeaseRef> got = AcquireShards(s1, 10);
  std::set<uint64_t> ids;
  for (const LeaseRef& l : got) ids.insert(l.shard_id);
  EXPECT_EQ(ids, (std::set<uint64_t>{0, 1, 2, 3}));
  for (const LeaseRef& h : held) EXPECT_TRUE(ids.count(h.shard_id)) << h.shard_id;
  // The shard it had started counts a failure; the others do not.
  bool truncated = false;
  std::map<uint64_t, size_t> errors;
  for (const ShardSnapshot& s : coordinator_->Shards(false, 100, &truncated)) {
    errors[s.shard.id] = s.errors.size();
  }
  EXPECT_EQ(errors[held[0].shard_id], 1u);
  EXPECT_EQ(errors[held[1].shard_id], 0u);
}

TEST_F(CoordinatorFleetTest, SilentWorkerIsStoppedAndItsLeasesRequeued) {
  Make(2, Opts().workers(1).heartbeat_timeout(absl::Seconds(30)));
  coordinator_->StartWorkers();
  const SessionId s = Register(0, 0);
  ASSERT_EQ(AcquireShards(s, 2).size(), 2u);
  clock_.Advance(absl::Seconds(30));
  coordinator_->Tick();
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());
  EXPECT_EQ(coordinator_->Progress().leased_shards, 2u);

  clock_.Advance(absl::Seconds(1));
  coordinator_->Tick();
  std::vector<FleetDecision> d = coordinator_->TakeFleetDecisions();
  ASSERT_THAT(Describe(d), ElementsAre("stop 0/0"));
  EXPECT_THAT(d[0].reason, HasSubstr("no heartbeat"));
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.pending_shards, 2u);
  EXPECT_EQ(p.leased_shards, 0u);
  EXPECT_EQ(p.workers_restarting, 1u);
  EXPECT_EQ(p.state, JobState::kRunning);
  EXPECT_EQ(coordinator_->Heartbeat(s, {}, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorFleetTest, StartRaceLoserIsRefused) {
  Make(2, Opts().workers(1).startup_timeout(absl::Seconds(60)));
  coordinator_->StartWorkers();
  clock_.Advance(absl::Seconds(61));
  coordinator_->Tick();
  EXPECT_THAT(Describe(coordinator_->TakeFleetDecisions()),
              ElementsAre("launch 0/1 backup"));

  const SessionId backup = Register(0, 1, 200);
  std::vector<FleetDecision> d = coordinator_->TakeFleetDecisions();
  ASSERT_THAT(Describe(d), ElementsAre("stop 0/0"));
  EXPECT_THAT(d[0].reason, HasSubstr("lost the start race"));

  absl::StatusOr<Registration> loser = TryRegister(0, 0, 100);
  EXPECT_EQ(loser.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(loser.status()), HasSubstr("lost the start race"));
  // The winner's session is untouched by the refused registration.
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.live_sessions, 1u);
  EXPECT_EQ(p.workers_running, 1u);
  EXPECT_TRUE(coordinator_->Acquire(backup, 1, {}, {}).ok());
  ASSERT_EQ(coordinator_->Sessions().size(), 1u);
  EXPECT_EQ(coordinator_->Sessions()[0].session, backup);
}

TEST_F(CoordinatorFleetTest, RegistrationChecksTheFleet) {
  Make(2, Opts().workers(2));
  coordinator_->StartWorkers();
  EXPECT_EQ(TryRegister(2, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TryRegister(0, 5).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(coordinator_->Sessions().empty());
  // The running attempt registering again (a lost answer) gets a new session.
  const SessionId first = Register(0, 0, 100);
  const SessionId again = Register(0, 0, 100);
  EXPECT_NE(first, again);
  EXPECT_EQ(coordinator_->Progress().live_sessions, 1u);
  EXPECT_EQ(coordinator_->Workers()[0].attempts[0].session, again);
}

TEST_F(CoordinatorFleetTest, JobFailsWhenEveryWorkerIsGone) {
  Make(3, Opts().workers(2).max_restarts(0));
  coordinator_->StartWorkers();
  const SessionId s0 = Register(0, 0);
  ASSERT_EQ(AcquireShards(s0, 1).size(), 1u);
  coordinator_->WorkerExited(0, 0, 1);
  EXPECT_EQ(coordinator_->Progress().state, JobState::kRunning) << "worker 1 remains";
  EXPECT_FALSE(coordinator_->ended());
  coordinator_->WorkerExited(1, 0, 2);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kFailed);
  EXPECT_THAT(p.reason, StartsWith("every worker is gone"));
  EXPECT_THAT(p.reason, HasSubstr("worker 0: exited with status 1"));
  EXPECT_THAT(p.reason, HasSubstr("worker 1: exited with status 2"));
  EXPECT_TRUE(coordinator_->ended());
  EXPECT_TRUE(coordinator_->AllWorkersExited());
}

TEST_F(CoordinatorFleetTest, ReplayAndTicksBeforeTheFirstLaunchDoNotFailTheJob) {
  Make(3, Opts().workers(2));
  // `aimaster run` replays the journal, and the server ticks, before the
  // driver's first launch.
  CommitRecord replayed;
  replayed.shard_id = 0;
  replayed.records = kUnits;
  coordinator_->RestoreCommitted(replayed);
  coordinator_->Tick();
  EXPECT_EQ(coordinator_->Progress().state, JobState::kRunning)
      << coordinator_->Progress().reason;
  EXPECT_THAT(Describe(coordinator_->StartWorkers()),
              ElementsAre("launch 0/0", "launch 1/0"));
  EXPECT_EQ(coordinator_->Progress().state, JobState::kRunning);
  EXPECT_EQ(coordinator_->Progress().committed_shards, 1u);
}

TEST_F(CoordinatorFleetTest, FinishedJobStopsStartersAndNeverLaunchesMore) {
  Make(1, Opts()
              .workers(3)
              .startup_timeout(absl::Hours(1))
              .restart_backoff(absl::Seconds(5))
              .start_interval(absl::Seconds(10)));
  EXPECT_THAT(Describe(coordinator_->StartWorkers()), ElementsAre("launch 0/0"));
  clock_.Advance(absl::Seconds(10));
  coordinator_->Tick();
  EXPECT_THAT(Describe(coordinator_->TakeFleetDecisions()), ElementsAre("launch 1/0"));

  const SessionId s0 = Register(0, 0);
  std::vector<LeaseRef> got = AcquireShards(s0, 1);
  ASSERT_EQ(got.size(), 1u);
  CommitAndPublish(s0, got[0]);
  JobProgress p = coordinator_->Progress();
  ASSERT_EQ(p.state, JobState::kSucceeded) << p.reason;

  std::vector<FleetDecision> d = coordinator_->TakeFleetDecisions();
  ASSERT_THAT(Describe(d), ElementsAre("stop 1/0"));
  EXPECT_THAT(d[0].reason, HasSubstr("all data was done before it registered"));
  EXPECT_EQ(TryRegister(1, 0).status().code(), absl::StatusCode::kFailedPrecondition);

  // Worker 2's staggered start is cancelled; worker 0 hears END and exits 0.
  clock_.Advance(absl::Hours(1));
  coordinator_->Tick();
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());
  EXPECT_FALSE(coordinator_->AllWorkersExited());
  coordinator_->WorkerExited(0, 0, 0);
  coordinator_->WorkerExited(1, 0, 143);
  EXPECT_TRUE(coordinator_->AllWorkersExited());
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());
  p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kSucceeded);
  EXPECT_EQ(p.workers_running, 0u);
  EXPECT_EQ(p.workers_starting, 0u);
  EXPECT_EQ(p.workers_restarting, 0u);
  std::vector<InstanceInfo> workers = coordinator_->Workers();
  EXPECT_EQ(workers[0].state, InstanceState::kSucceeded);
  EXPECT_EQ(workers[1].state, InstanceState::kStopped);
  EXPECT_EQ(workers[2].state, InstanceState::kStopped);
  EXPECT_TRUE(workers[2].attempts.empty());
}

TEST_F(CoordinatorFleetTest, StoppedJobCancelsPendingRestarts) {
  Make(2, Opts().workers(1).restart_backoff(absl::Seconds(5)));
  coordinator_->StartWorkers();
  coordinator_->WorkerExited(0, 0, 1);
  EXPECT_EQ(coordinator_->Progress().workers_restarting, 1u);
  coordinator_->Stop("operator");
  EXPECT_EQ(coordinator_->Progress().state, JobState::kFailed);
  EXPECT_EQ(coordinator_->Progress().workers_restarting, 0u);
  clock_.Advance(absl::Minutes(1));
  coordinator_->Tick();
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());
  EXPECT_TRUE(coordinator_->AllWorkersExited());
}

TEST_F(CoordinatorFleetTest, StopAllWorkersHandsOverQueuedDecisionsFirst) {
  Make(2, Opts().workers(2));
  coordinator_->StartWorkers();
  Register(0, 0);
  coordinator_->WorkerExited(1, 0, 1);
  clock_.Advance(absl::Seconds(1));
  coordinator_->Tick();  // queues launch 1/1
  EXPECT_THAT(Describe(coordinator_->StopAllWorkers("bye")),
              ElementsAre("launch 1/1", "stop 0/0", "stop 1/1"));
  EXPECT_THAT(coordinator_->TakeFleetDecisions(), IsEmpty());
}

TEST(CoordinatorWithoutFleetTest, FleetCallsAreHarmless) {
  FakeClock clock(kT0);
  absl::StatusOr<ShardEnumerator> e = ShardEnumerator::ForRecords(kUnits, kUnits);
  ASSERT_TRUE(e.ok());
  JobCoordinator c(&clock, &*e, nullptr, {});
  EXPECT_FALSE(c.has_fleet());
  EXPECT_THAT(c.StartWorkers(), IsEmpty());
  c.WorkerStarted(0, 0, 1);
  c.WorkerExited(0, 0, 1);
  EXPECT_THAT(c.TakeFleetDecisions(), IsEmpty());
  EXPECT_THAT(c.StopAllWorkers("x"), IsEmpty());
  EXPECT_TRUE(c.AllWorkersExited());
  EXPECT_TRUE(c.Workers().empty());
  EXPECT_EQ(c.Progress().state, JobState::kRunning);
}

TEST(StateNameTest, EveryStateHasItsLowerCaseName) {
  EXPECT_EQ(InstanceStateName(InstanceState::kPending), "pending");
  EXPECT_EQ(InstanceStateName(InstanceState::kStarting), "starting");
  EXPECT_EQ(InstanceStateName(InstanceState::kRunning), "running");
  EXPECT_EQ(InstanceStateName(InstanceState::kRestarting), "restarting");
  EXPECT_EQ(InstanceStateName(InstanceState::kSucceeded), "succeeded");
  EXPECT_EQ(InstanceStateName(InstanceState::kFailed), "failed");
  EXPECT_EQ(InstanceStateName(InstanceState::kStopped), "stopped");
  EXPECT_EQ(AttemptStateName(AttemptState::kStarting), "starting");
  EXPECT_EQ(AttemptStateName(AttemptState::kRunning), "running");
  EXPECT_EQ(AttemptStateName(AttemptState::kSucceeded), "succeeded");
  EXPECT_EQ(AttemptStateName(AttemptState::kFailed), "failed");
  EXPECT_EQ(AttemptStateName(AttemptState::kStopped), "stopped");
}

}  // namespace
}  // namespace elasticbatch::aimaster
