// LocalLauncher with real short processes: start and exit events, stops
// through the supervisor, the stop grace handed down to the attempt, stops of
// attempts that are gone, the attempt's environment over the master's,
// appended logs, and many attempts at once. Waits are for events, bounded
// generously; nothing sleeps for a time tuned to a machine.
#include "aimaster/launch/local_launcher.h"

#include <signal.h>
#include <stdlib.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch::aimaster {
namespace {

// Collects the launcher's events (they arrive on its reaper thread).
class Events {
 public:
  Launcher::EventHandler Handler() {
    return [this](const LauncherEvent& e) {
      absl::MutexLock lock(&mu_);
      events_.push_back(e);
    };
  }
  // Waits (bounded) for the exit of (index, attempt); its code, or -1.
  int ExitCode(uint32_t index, uint32_t attempt,
               absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    int code = -1;
    auto exited = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const LauncherEvent& e : events_) {
        if (e.kind == LauncherEvent::Kind::kExited && e.index == index &&
            e.attempt == attempt) {
          code = e.exit_code;
          return true;
        }
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&exited), timeout);
    return code;
  }
  size_t count(LauncherEvent::Kind kind) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const LauncherEvent& e : events_) n += e.kind == kind;
    return n;
  }

 private:
  absl::Mutex mu_;
  std::vector<LauncherEvent> events_ ABSL_GUARDED_BY(mu_);
};

class LocalLauncherTest : public ::testing::Test {
 protected:
  LaunchSpec Spec(uint32_t index, uint32_t attempt, const std::string& command) {
    LaunchSpec s;
    s.index = index;
    s.attempt = attempt;
    s.command = command;
    s.working_dir = dir_.path();
    s.env = {"EB_LAUNCHER_TEST=yes"};
    s.log_path = Log(index, attempt);
    return s;
  }
  std::string Log(uint32_t index, uint32_t attempt) const {
    return absl::StrCat(dir_.path(), "/worker-", index, "-", attempt, ".log");
  }
  // Waits (bounded) until the log holds `text`.
  bool LogHas(uint32_t index, uint32_t attempt, const std::string& text) {
    return testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
      return testing::ReadFileOrEmpty(Log(index, attempt)).find(text) !=
             std::string::npos;
    });
  }

  testing::TempDir dir_;
  Events events_;
};

TEST_F(LocalLauncherTest, ReportsStartAndExitAndLogsOutputWithTheEnvironment) {
  LocalLauncher launcher({absl::Seconds(3)});
  launcher.SetEventHandler(events_.Handler());
  ASSERT_TRUE(
      launcher
          .Launch(Spec(0, 1,
                       "echo \"$EB_LAUNCHER_TEST $ELASTICBATCH_STOP_GRACE\"; pwd; "
                       "echo oops >&2; exit 3"))
          .ok());
  EXPECT_EQ(events_.ExitCode(0, 1), 3);
  EXPECT_EQ(events_.count(LauncherEvent::Kind::kStarted), 1u);
  EXPECT_EQ(testing::ReadFileOrEmpty(Log(0, 1)),
            absl::StrCat("yes 1.5s\n", dir_.path(), "\noops\n"));
  EXPECT_EQ(launcher.live(), 0u);
}

TEST_F(LocalLauncherTest, StopEndsTheAttemptWithSigterm) {
  LocalLauncher launcher({absl::Seconds(30)});
  launcher.SetEventHandler(events_.Handler());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "echo up; sleep 1000")).ok());
  ASSERT_TRUE(launcher.Launch(Spec(1, 0, "echo up; sleep 1000")).ok());
  ASSERT_TRUE(LogHas(0, 0, "up"));
  launcher.Stop(0, 0);
  EXPECT_EQ(events_.ExitCode(0, 0), 128 + SIGTERM);
  EXPECT_EQ(launcher.live(), 1u);  // the other attempt is untouched
  // Stopping an attempt that is gone reaches nobody.
  launcher.Stop(0, 0);
  launcher.Stop(7, 7);
  EXPECT_EQ(launcher.live(), 1u);
  launcher.Stop(1, 0);
  EXPECT_EQ(events_.ExitCode(1, 0), 128 + SIGTERM);
}

TEST_F(LocalLauncherTest, StopAllKillsAnAttemptThatIgnoresSigtermAfterTheGrace) {
  LocalLauncher launcher({absl::Milliseconds(300)});
  launcher.SetEventHandler(events_.Handler());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "trap '' TERM; echo up; sleep 1000")).ok());
  ASSERT_TRUE(LogHas(0, 0, "up"));
  launcher.StopAll();
  EXPECT_EQ(launcher.live(), 0u);
  EXPECT_EQ(events_.ExitCode(0, 0), 128 + SIGKILL);
}

TEST_F(LocalLauncherTest, AMissingWorkingDirectoryFailsTheAttemptNotTheLauncher) {
  LocalLauncher launcher({absl::Seconds(3)});
  launcher.SetEventHandler(events_.Handler());
  LaunchSpec spec = Spec(0, 0, "true");
  spec.working_dir = dir_.path() + "/missing";
  ASSERT_TRUE(launcher.Launch(spec).ok());
  EXPECT_EQ(events_.ExitCode(0, 0), 126);
  EXPECT_THAT(testing::ReadFileOrEmpty(Log(0, 0)),
              ::testing::HasSubstr("cannot enter the working directory"));
  LaunchSpec no_log = Spec(1, 0, "true");
  no_log.log_path = dir_.path() + "/missing/log";
  EXPECT_EQ(launcher.Launch(no_log).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LocalLauncherTest, TheSpecsEnvironmentOverridesTheMastersAndAddsToIt) {
  ASSERT_EQ(setenv("EB_LAUNCHER_SHARED", "master", 1), 0);
  ASSERT_EQ(setenv("EB_LAUNCHER_INHERITED", "kept", 1), 0);
  LocalLauncher launcher({absl::Seconds(3)});
  launcher.SetEventHandler(events_.Handler());
  LaunchSpec spec = Spec(0, 0, "echo \"$EB_LAUNCHER_SHARED $EB_LAUNCHER_INHERITED\"");
  spec.env.push_back("EB_LAUNCHER_SHARED=attempt");
  ASSERT_TRUE(launcher.Launch(spec).ok());
  EXPECT_EQ(events_.ExitCode(0, 0), 0);
  EXPECT_EQ(testing::ReadFileOrEmpty(Log(0, 0)), "attempt kept\n");
  unsetenv("EB_LAUNCHER_SHARED");
  unsetenv("EB_LAUNCHER_INHERITED");
}

TEST_F(LocalLauncherTest, ALogIsAppendedToNotReplaced) {
  LocalLauncher launcher({absl::Seconds(3)});
  launcher.SetEventHandler(events_.Handler());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "echo first")).ok());
  EXPECT_EQ(events_.ExitCode(0, 0), 0);
  LaunchSpec again = Spec(0, 1, "echo second");
  again.log_path = Log(0, 0);
  ASSERT_TRUE(launcher.Launch(again).ok());
  EXPECT_EQ(events_.ExitCode(0, 1), 0);
  EXPECT_EQ(testing::ReadFileOrEmpty(Log(0, 0)), "first\nsecond\n");
}

TEST_F(LocalLauncherTest, ManyAttemptsAtOnceEachReportTheirOwnExit) {
  constexpr uint32_t kAttempts = 16;
  LocalLauncher launcher({absl::Seconds(3)});
  launcher.SetEventHandler(events_.Handler());
  for (uint32_t i = 0; i < kAttempts; ++i) {
    ASSERT_TRUE(launcher.Launch(Spec(i, 0, absl::StrCat("exit ", i))).ok());
  }
  for (uint32_t i = 0; i < kAttempts; ++i) {
    EXPECT_EQ(events_.ExitCode(i, 0), static_cast<int>(i)) << "attempt " << i;
  }
  EXPECT_EQ(events_.count(LauncherEvent::Kind::kStarted), kAttempts);
  EXPECT_EQ(events_.count(LauncherEvent::Kind::kExited), kAttempts);
  EXPECT_EQ(launcher.live(), 0u);
}

}  // namespace
}  // namespace elasticbatch::aimaster
