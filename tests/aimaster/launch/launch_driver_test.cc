// LaunchDriver between a real JobCoordinator (on a fake clock) and a
// FakeLauncher: first launches, events fed back, restarts and backups carried
// out on Tick, stops, and launches that fail. No processes, no sleeps.
#include "aimaster/launch/launch_driver.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/fake_launcher.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Attempt = testing::FakeLauncher::Attempt;

class LaunchDriverTest : public ::testing::Test {
 protected:
  // A job of 10 record shards run by `fleet.workers` instances (no journal:
  // the driver never touches it).
  void Make(FleetOptions fleet) {
    absl::StatusOr<ShardEnumerator> e = ShardEnumerator::ForRecords(100, 10);
    ASSERT_TRUE(e.ok()) << e.status();
    shards_.emplace(*std::move(e));
    CoordinatorOptions options;
    options.fleet = fleet;
    coordinator_ = std::make_unique<JobCoordinator>(&clock_, &*shards_,
                                                    /*journal=*/nullptr, options);
    driver_ = std::make_unique<LaunchDriver>(
        coordinator_.get(), &launcher_, [](uint32_t index, uint32_t attempt) {
          LaunchSpec s;
          s.index = index;
          s.attempt = attempt;
          s.command = absl::StrCat("work ", index, " ", attempt);
          return s;
        });
  }
  FleetOptions Fleet(uint32_t workers) {
    FleetOptions f;
    f.workers = workers;
    f.startup_timeout = absl::Seconds(60);
    f.restart_backoff = absl::Seconds(1);
    return f;
  }
  // What the master's tick thread does: the coordinator's tick queues fleet
  // decisions, the driver's carries them out.
  void TickAfter(absl::Duration d) {
    clock_.Advance(d);
    coordinator_->Tick();
    driver_->Tick();
  }
  InstanceInfo Worker(uint32_t index) const { return coordinator_->Workers()[index]; }

  FakeClock clock_;
  std::optional<ShardEnumerator> shards_;
  std::unique_ptr<JobCoordinator> coordinator_;
  testing::FakeLauncher launcher_;
  std::unique_ptr<LaunchDriver> driver_;
};

TEST_F(LaunchDriverTest, StartLaunchesTheFirstAttemptOfEveryInstanceFromTheFactory) {
  Make(Fleet(3));
  driver_->Start();
  EXPECT_THAT(launcher_.launched(),
              ElementsAre(Attempt{0, 0}, Attempt{1, 0}, Attempt{2, 0}));
  EXPECT_EQ(launcher_.launches()[2].command, "work 2 0");
  EXPECT_THAT(launcher_.stops(), IsEmpty());
}

TEST_F(LaunchDriverTest, StartedEventsReachTheCoordinator) {
  Make(Fleet(1));
  driver_->Start();
  launcher_.ReportStarted(0, 0, /*pid=*/4242);
  const InstanceInfo w = Worker(0);
  ASSERT_EQ(w.attempts.size(), 1u);
  EXPECT_EQ(w.attempts[0].pid, 4242);
  EXPECT_EQ(w.state, InstanceState::kStarting);
}

TEST_F(LaunchDriverTest, AFailedAttemptIsRestartedOnceTheBackoffPassed) {
  Make(Fleet(1));
  driver_->Start();
  launcher_.ReportStarted(0, 0);
  launcher_.ReportExited(0, 0, 137);
  EXPECT_EQ(Worker(0).attempts[0].exit_code, std::optional<int>(137));
  EXPECT_EQ(Worker(0).state, InstanceState::kRestarting);

  TickAfter(absl::Milliseconds(500));  // still backing off
  EXPECT_THAT(launcher_.launched(), ElementsAre(Attempt{0, 0}));
  TickAfter(absl::Milliseconds(600));
  EXPECT_THAT(launcher_.launched(), ElementsAre(Attempt{0, 0}, Attempt{0, 1}));
  EXPECT_EQ(launcher_.launches()[1].command, "work 0 1");
  EXPECT_EQ(Worker(0).restarts, 1u);
}

TEST_F(LaunchDriverTest, ASlowStarterGetsABackupOnTheStartupTimeout) {
  Make(Fleet(2));
  driver_->Start();
  launcher_.ReportStarted(0, 0);
  launcher_.ReportStarted(1, 0);
  TickAfter(absl::Seconds(59));
  EXPECT_EQ(launcher_.launched().size(), 2u);
  TickAfter(absl::Seconds(2));
  EXPECT_THAT(launcher_.launched(),
              ElementsAre(Attempt{0, 0}, Attempt{1, 0}, Attempt{0, 1}, Attempt{1, 1}));
  EXPECT_TRUE(Worker(0).attempts[1].backup);
  EXPECT_EQ(Worker(0).backups, 1u);
}

TEST_F(LaunchDriverTest, ALaunchThatFailsCountsAsExit127) {
  FleetOptions fleet = Fleet(1);
  fleet.max_restarts = 0;
  Make(fleet);
  launcher_.FailLaunches(absl::UnavailableError("no such shell"));
  driver_->Start();
  EXPECT_THAT(launcher_.launched(), IsEmpty());
  const InstanceInfo w = Worker(0);
  ASSERT_EQ(w.attempts.size(), 1u);
  EXPECT_EQ(w.attempts[0].exit_code, std::optional<int>(127));
  EXPECT_EQ(w.state, InstanceState::kFailed);
  EXPECT_TRUE(coordinator_->AllWorkersExited());
}

TEST_F(LaunchDriverTest, StopAllStopsEveryLiveAttemptAndLaunchesNoMore) {
  Make(Fleet(2));
  driver_->Start();
  launcher_.ReportStarted(0, 0);
  launcher_.ReportStarted(1, 0);
  launcher_.ReportExited(1, 0, 1);  // a restart is now pending
  driver_->StopAll("the job is over");
  EXPECT_THAT(launcher_.stops(), ElementsAre(Attempt{0, 0}));
  launcher_.ReportExited(0, 0, 143);
  TickAfter(absl::Minutes(5));
  EXPECT_THAT(launcher_.launched(), ElementsAre(Attempt{0, 0}, Attempt{1, 0}));
  EXPECT_TRUE(coordinator_->AllWorkersExited());
}

TEST_F(LaunchDriverTest, AfterEventRunsOnceEachEventReachedTheCoordinator) {
  Make(Fleet(1));
  int events = 0;
  bool exit_seen = false;
  driver_ = std::make_unique<LaunchDriver>(
      coordinator_.get(), &launcher_, [](uint32_t, uint32_t) { return LaunchSpec(); },
      [&] {
        ++events;
        exit_seen = coordinator_->Workers()[0].attempts[0].exit_code.has_value();
      });
  driver_->Start();
  launcher_.ReportStarted(0, 0);
  EXPECT_EQ(events, 1);
  EXPECT_FALSE(exit_seen);
  launcher_.ReportExited(0, 0, 0);
  EXPECT_EQ(events, 2);
  EXPECT_TRUE(exit_seen);
}

TEST_F(LaunchDriverTest, EarlyStopStopsAttemptsThatHaveNotRegistered) {
  Make(Fleet(2));
  driver_->Start();
  launcher_.ReportStarted(0, 0);
  launcher_.ReportStarted(1, 0);
  coordinator_->Stop("operator");
  TickAfter(absl::Milliseconds(50));
  EXPECT_THAT(launcher_.stops(), ElementsAre(Attempt{0, 0}, Attempt{1, 0}));
}

}  // namespace
}  // namespace elasticbatch::aimaster
