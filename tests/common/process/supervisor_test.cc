// Commands under a real supervisor process: exit codes, stops with and
// without a grace period, the owner going away, and nothing left behind.
#include "common/process/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch::process {
namespace {

// True while `pid` exists and is not a zombie (an orphan's zombie may linger
// until init reaps it).
bool Alive(pid_t pid) {
  const std::string stat = testing::ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Polls (bounded, generously) until `pid` is gone.
bool GoneWithin(pid_t pid, absl::Duration timeout) {
  return testing::WaitUntil(absl::Now() + timeout, [&] { return !Alive(pid); });
}

// A supervised command with its stdout on a pipe we read, and the owner pipe.
class Supervised {
 public:
  explicit Supervised(const std::string& command, SupervisorSpec spec = {}) {
    int owner[2], out[2];
    EXPECT_EQ(pipe2(owner, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    owner_write_ = owner[1];
    out_ = out[0];
    spec.command = command;
    spec.owner_fd = owner[0];
    spec.stdout_fd = out[1];
    absl::StatusOr<Supervisor> s = StartSupervisor(spec);
    close(owner[0]);
    close(out[1]);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) supervisor_ = *s;
  }
  ~Supervised() {
    CloseOwner();
    if (!reaped_ && supervisor_.pid > 0) (void)Wait(absl::Seconds(60));
    if (supervisor_.pidfd >= 0) close(supervisor_.pidfd);
    close(out_);
  }

  const Supervisor& supervisor() const { return supervisor_; }
  void CloseOwner() {
    if (owner_write_ >= 0) close(owner_write_);
    owner_write_ = -1;
  }

  // The next line of the command's stdout ("" at EOF or after the timeout).
  std::string ReadLine(absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time give_up = absl::Now() + timeout;
    while (true) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      pollfd p{out_, POLLIN, 0};
      const int left = static_cast<int>(absl::ToInt64Milliseconds(give_up - absl::Now()));
      if (left <= 0 || poll(&p, 1, left) <= 0) return "";
      char chunk[256];
      const ssize_t n = read(out_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  pid_t ReadPid() {
    int pid = 0;
    EXPECT_TRUE(absl::SimpleAtoi(ReadLine(), &pid));
    return pid;
  }
  // True once the command's stdout reports EOF.
  bool StdoutClosedWithin(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[256];
      if (read(out_, chunk, sizeof(chunk)) == 0) return true;
    }
    return false;
  }

  // The supervisor's exit code, -1 on timeout.
  int Wait(absl::Duration timeout) {
    pollfd p{supervisor_.pidfd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return -1;
    int status = 0;
    if (waitpid(supervisor_.pid, &status, 0) != supervisor_.pid) return -1;
    reaped_ = true;
    return ExitCodeOf(status);
  }

 private:
  Supervisor supervisor_;
  int owner_write_ = -1;
  int out_ = -1;
  std::string buffer_;
  bool reaped_ = false;
};

TEST(SupervisorTest, ExitsWithTheCommandsExitCodeAndKillsWhatItLeftBehind) {
  Supervised s("sleep 1000 & echo $!; exit 7");
  const pid_t left_behind = s.ReadPid();
  ASSERT_GT(left_behind, 0);
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 7);
  EXPECT_TRUE(GoneWithin(left_behind, absl::Seconds(60)));
}

TEST(SupervisorTest, StopSendsSigtermToTheWholeGroup) {
  Supervised s("sleep 1000 & echo $!; wait");
  const pid_t child = s.ReadPid();
  ASSERT_TRUE(SignalProcess(s.supervisor().pidfd, SIGTERM).ok());
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 128 + SIGTERM);
  EXPECT_TRUE(GoneWithin(child, absl::Seconds(60)));
}

TEST(SupervisorTest, ACommandThatIgnoresSigtermIsKilledAfterTheGrace) {
  SupervisorSpec spec;
  spec.stop_grace = absl::Milliseconds(200);
  Supervised s("trap '' TERM; sleep 1000 & echo $!; wait", spec);
  const pid_t child = s.ReadPid();
  ASSERT_TRUE(SignalProcess(s.supervisor().pidfd, SIGTERM).ok());
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin(child, absl::Seconds(60)));
}

TEST(SupervisorTest, TheGroupDiesWhenTheOwnerIsGone) {
  SupervisorSpec spec;
  spec.orphan_grace = absl::ZeroDuration();
  Supervised s("trap '' TERM; sleep 1000 & echo $!; wait", spec);
  const pid_t child = s.ReadPid();
  s.CloseOwner();  // as if the owner had died, even by SIGKILL
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin(child, absl::Seconds(60)));
}

TEST(SupervisorTest, TheOwnerGoingAwayDuringAStopShortensTheGrace) {
  SupervisorSpec spec;
  spec.stop_grace = absl::Hours(1);
  spec.orphan_grace = absl::ZeroDuration();
  Supervised s("trap '' TERM; echo ready; sleep 1000", spec);
  ASSERT_EQ(s.ReadLine(), "ready");
  ASSERT_TRUE(SignalProcess(s.supervisor().pidfd, SIGTERM).ok());
  s.CloseOwner();
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 128 + SIGKILL);
}

TEST(SupervisorTest, KeepsNoCopyOfTheCommandsPipes) {
  // The command closes its stdout and lives on: its reader must see EOF now,
  // not when the supervisor exits.
  Supervised s("exec >&-; sleep 1000");
  EXPECT_TRUE(s.StdoutClosedWithin(absl::Seconds(60)));
  EXPECT_TRUE(Alive(s.supervisor().pid));
}

TEST(SupervisorTest, RunsInTheWorkingDirectoryWithTheEnvironment) {
  testing::TempDir dir;
  SupervisorSpec spec;
  spec.working_dir = dir.path();
  spec.env = {"EB_SUPERVISOR_TEST=forty two"};
  Supervised s("pwd; echo \"$EB_SUPERVISOR_TEST\"", spec);
  EXPECT_EQ(s.ReadLine(), std::filesystem::canonical(dir.path()).string());
  EXPECT_EQ(s.ReadLine(), "forty two");
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 0);
}

TEST(SupervisorTest, SignallingAnExitedSupervisorIsHarmless) {
  Supervised s("exit 0");
  EXPECT_EQ(s.Wait(absl::Seconds(60)), 0);
  EXPECT_TRUE(SignalProcess(s.supervisor().pidfd, SIGTERM).ok());
}

TEST(SupervisorTest, BadSpecsAreRefused) {
  SupervisorSpec no_owner;
  no_owner.command = "true";
  EXPECT_EQ(StartSupervisor(no_owner).status().code(),
            absl::StatusCode::kInvalidArgument);
  SupervisorSpec no_command;
  no_command.owner_fd = 0;
  EXPECT_EQ(StartSupervisor(no_command).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace elasticbatch::process
