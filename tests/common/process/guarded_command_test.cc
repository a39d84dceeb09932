// Guarded commands with real processes: the caller is the parent, exit codes,
// leftovers, stops, and the caller dying by SIGKILL.
#include "common/process/guarded_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch::process {
namespace {

// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid) {
  const std::string stat = testing::ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

bool GoneWithin(pid_t pid, absl::Duration timeout) {
  return testing::WaitUntil(absl::Now() + timeout, [&] { return !Alive(pid); });
}

// Reads one line (bounded) from a pipe.
std::string ReadLine(int fd) {
  std::string line;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  char c;
  while (absl::Now() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (read(fd, &c, 1) != 1 || c == '\n') break;
    line.push_back(c);
  }
  return line;
}

pid_t ReadPid(int fd) {
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(ReadLine(fd), &pid));
  return pid;
}

class GuardedCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pipe2(out_, O_CLOEXEC), 0); }
  void TearDown() override {
    close(out_[0]);
    if (out_[1] >= 0) close(out_[1]);
  }
  std::unique_ptr<GuardedCommand> Start(const std::string& command,
                                        GuardedCommandSpec spec = {}) {
    spec.command = command;
    spec.stdout_fd = out_[1];
    absl::StatusOr<std::unique_ptr<GuardedCommand>> c = GuardedCommand::Start(spec);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  int out_[2] = {-1, -1};
};

TEST_F(GuardedCommandTest, TheCallerIsTheParentAndTheExitCodeComesThrough) {
  auto c = Start("echo $PPID; exit 7");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReadPid(out_[0]), getpid());
  EXPECT_EQ(c->WaitUntil(absl::Now() + absl::Seconds(60)), 7);
  EXPECT_EQ(c->Poll(), 7);
}

TEST_F(GuardedCommandTest, WhatTheCommandLeftRunningIsKilledWhenItExits) {
  auto c = Start("sleep 1000 & echo $!");
  ASSERT_NE(c, nullptr);
  const pid_t left_behind = ReadPid(out_[0]);
  EXPECT_EQ(c->WaitUntil(absl::Now() + absl::Seconds(60)), 0);
  EXPECT_TRUE(GoneWithin(left_behind, absl::Seconds(60)));
}

TEST_F(GuardedCommandTest, TerminateKillsTheGroupAfterTheGrace) {
  GuardedCommandSpec spec;
  spec.stop_grace = absl::Milliseconds(200);
  auto c = Start("trap '' TERM; sleep 1000 & echo $!; wait", spec);
  ASSERT_NE(c, nullptr);
  const pid_t child = ReadPid(out_[0]);
  EXPECT_EQ(c->Terminate(), 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin(child, absl::Seconds(60)));
  EXPECT_EQ(c->Terminate(), 128 + SIGKILL);  // once exited, it stays so
}

TEST_F(GuardedCommandTest, TerminateEndsACooperativeCommandWithSigterm) {
  auto c = Start("echo up; exec sleep 1000");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReadLine(out_[0]), "up");
  EXPECT_EQ(c->Terminate(), 128 + SIGTERM);
}

TEST_F(GuardedCommandTest, TheGroupDiesWhenTheCallerIsKilled) {
  // The caller is a forked copy of this test that starts the command, says
  // the pid of its grandchild, and is then SIGKILLed.
  const pid_t caller = fork();
  ASSERT_GE(caller, 0);
  if (caller == 0) {
    GuardedCommandSpec spec;
    spec.command = "trap '' TERM; sleep 1000 & echo $!; wait";
    spec.stdout_fd = out_[1];
    spec.orphan_grace = absl::Milliseconds(200);
    auto c = GuardedCommand::Start(spec);
    if (!c.ok()) _exit(1);
    pause();
    _exit(0);
  }
  close(out_[1]);
  out_[1] = -1;
  const pid_t grandchild = ReadPid(out_[0]);
  ASSERT_GT(grandchild, 0);
  kill(caller, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(60)));
  // The command's stdout closes once all of it is gone.
  char c;
  EXPECT_EQ(read(out_[0], &c, 1), 0);
}

TEST_F(GuardedCommandTest, AStopSentToTheCallersGroupAtStartLeavesNothingBehind) {
  // The caller's group gets SIGTERM right after Start(), as when a launcher
  // stops a worker that is just starting a command: the guard may still be in
  // that group then, and must survive it to stop the command when the caller
  // is gone. Repeated, since the window is short.
  for (int round = 0; round < 20; ++round) {
    int out[2];
    ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    const pid_t caller = fork();
    ASSERT_GE(caller, 0);
    if (caller == 0) {
      setpgid(0, 0);
      GuardedCommandSpec spec;
      spec.command = "echo $$; exec sleep 1000";
      spec.stdout_fd = out[1];
      spec.orphan_grace = absl::Milliseconds(100);
      auto c = GuardedCommand::Start(spec);
      kill(0, SIGTERM);  // our whole group, guard included if it is still there
      _exit(c.ok() ? 0 : 1);
    }
    close(out[1]);
    int status = 0;
    ASSERT_EQ(waitpid(caller, &status, 0), caller);
    // The command either never ran (no line) or must go.
    const std::string line = ReadLine(out[0]);
    close(out[0]);
    int command = 0;
    if (!absl::SimpleAtoi(line, &command)) continue;
    EXPECT_TRUE(GoneWithin(command, absl::Seconds(60))) << "round " << round;
    if (Alive(command)) kill(command, SIGKILL);
  }
}

TEST_F(GuardedCommandTest, WaitingWithoutADeadline) {
  // Still running at the first look (almost always), so the wait must turn an
  // infinite deadline into a poll timeout without overflowing.
  auto c = Start("exec sleep 0.2");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->WaitUntil(absl::InfiniteFuture()), 0);
}

TEST_F(GuardedCommandTest, ABadSpecIsRefused) {
  EXPECT_EQ(GuardedCommand::Start({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  GuardedCommandSpec bad_env;
  bad_env.command = "true";
  bad_env.env = {"NO_EQUALS_SIGN"};
  EXPECT_EQ(GuardedCommand::Start(bad_env).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace elasticbatch::process
