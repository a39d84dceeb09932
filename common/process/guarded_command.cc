#include "common/process/guarded_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/process/child_setup.h"
#include "common/process/supervisor.h"  // ExitCodeOf

namespace elasticbatch::process {
namespace {

using internal::ExecPlan;

// The guard's descriptors once it has set itself up.
constexpr int kOwnerFd = 3;
constexpr int kCommandFd = 4;  // the command's pidfd
constexpr int kGoFd = 5;       // says go to the command, once we are in place

// Runs in the forked guard: async-signal-safe calls only.
[[noreturn]] void RunGuard(pid_t command, int command_pidfd, int owner_fd, int go_fd,
                           int64_t orphan_grace_ms) {
  // Until setsid() we are in the caller's process group, and a stop sent to it
  // (SIGTERM from a launcher) would kill us: ignored, as we never need them.
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  setsid();  // signals to the caller's group must not reach us
  const int devnull = internal::MoveUp(open("/dev/null", O_RDWR));
  const int owner = internal::MoveUp(owner_fd);
  const int pidfd = internal::MoveUp(command_pidfd);
  const int go = internal::MoveUp(go_fd);
  if (devnull < 0 || owner < 0 || pidfd < 0 || go < 0 || dup2(devnull, 0) < 0 ||
      dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 || dup2(owner, kOwnerFd) < 0 ||
      dup2(pidfd, kCommandFd) < 0 || dup2(go, kGoFd) < 0) {
    _exit(126);  // no go: the command exits without running
  }
  syscall(SYS_close_range, static_cast<unsigned>(kGoFd + 1), ~0u, 0u);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // In place, out of the caller's group: the command may run. (A SIGKILL
  // before this line leaves it without a go, and it exits without running.)
  const char go_byte = 1;
  ssize_t n;
  while ((n = send(kGoFd, &go_byte, 1, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  close(kGoFd);
  if (n != 1) _exit(0);  // the command is gone already
  pollfd fds[2] = {{kCommandFd, POLLIN, 0}, {kOwnerFd, POLLIN, 0}};
  while (true) {
    const int r = poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    // The command exited: the caller, alive, kills what is left and reaps.
    if (fds[0].revents != 0) _exit(0);
    if (fds[1].revents != 0) break;  // the caller is gone
  }
  internal::StopGroup(command, kCommandFd, orphan_grace_ms, -1, 0);
  _exit(0);
}

void CloseAll(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

void ReapNow(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<GuardedCommand>> GuardedCommand::Start(
    const GuardedCommandSpec& spec) {
  absl::StatusOr<std::unique_ptr<ExecPlan>> plan =
      ExecPlan::Make(spec.command, spec.working_dir, spec.env);
  if (!plan.ok()) return plan.status();
  int owner[2], go[2];
  if (pipe2(owner, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // A socket rather than a pipe, so that saying go to a command that died
  // meanwhile is an error, not a SIGPIPE.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
    const int error = errno;
    CloseAll({owner[0], owner[1]});
    return absl::InternalError(absl::StrCat("pipe: ", strerror(error)));
  }
  internal::CommandChild child;
  child.stdin_fd = spec.stdin_fd;
  child.stdout_fd = spec.stdout_fd;
  child.stderr_fd = spec.stderr_fd;
  child.go_fd = go[0];  // waits for the guard; EOF (we died first) = do not run
  child.close_fd = go[1];
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    CloseAll({owner[0], owner[1], go[0], go[1]});
    return absl::InternalError(absl::StrCat("fork: ", strerror(error)));
  }
  if (pid == 0) internal::ExecCommand(**plan, child);
  setpgid(pid, pid);  // also here, so that no kill can precede it
  close(go[0]);
  auto command = std::unique_ptr<GuardedCommand>(new GuardedCommand());
  command->pid_ = pid;
  command->stop_grace_ = spec.stop_grace;
  command->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (command->pidfd_ < 0) {
    const int error = errno;
    CloseAll({owner[0], owner[1], go[1]});  // EOF on go: it exits without running
    ReapNow(pid);
    command->exit_code_ = 127;
    return absl::InternalError(absl::StrCat("pidfd_open: ", strerror(error)));
  }
  const int64_t orphan_grace_ms = absl::ToInt64Milliseconds(spec.orphan_grace);
  // The guard says go once it is in place; we keep no copy of that end, so
  // the command waits for the guard alone, and runs only under it.
  const pid_t guard = fork();
  if (guard == 0) RunGuard(pid, command->pidfd_, owner[0], go[1], orphan_grace_ms);
  CloseAll({owner[0], go[1]});
  if (guard < 0) {
    const int error = errno;
    close(owner[1]);
    ReapNow(pid);  // EOF on go: it exits without running
    command->exit_code_ = 127;
    return absl::InternalError(absl::StrCat("fork: ", strerror(error)));
  }
  command->guard_pid_ = guard;
  command->owner_ = owner[1];
  return command;
}

GuardedCommand::~GuardedCommand() {
  if (!exit_code_) Terminate();
  CloseAll({pidfd_, owner_});
}

std::optional<int> GuardedCommand::Poll() {
  if (exit_code_) return exit_code_;
  // Look without reaping: while the command is a zombie its group id is ours.
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid != pid_) {
    return std::nullopt;
  }
  kill(-pid_, SIGKILL);  // whatever the command left running in its group
  // The guard has nothing left to do; it must be gone before the reap, so
  // that it can never signal a group id that was reused.
  if (guard_pid_ > 0) {
    kill(guard_pid_, SIGKILL);  // our child, unreaped: the pid is still its
    ReapNow(guard_pid_);
    guard_pid_ = -1;
  }
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = ExitCodeOf(status);
  return exit_code_;
}

std::optional<int> GuardedCommand::WaitUntil(absl::Time deadline) {
  while (!Poll()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd p{pidfd_, POLLIN, 0};
    // Rounded up, and capped (an infinite deadline is INT64_MAX ms).
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(left), INT_MAX - 1);
    poll(&p, 1, static_cast<int>(ms) + 1);
  }
  return exit_code_;
}

void GuardedCommand::Signal(int sig) {
  if (!exit_code_) kill(-pid_, sig);  // unreaped: the group id is still ours
}

int GuardedCommand::Terminate() {
  if (exit_code_) return *exit_code_;
  Signal(SIGTERM);
  if (auto code = WaitUntil(absl::Now() + stop_grace_)) return *code;
  Signal(SIGKILL);
  return *WaitUntil(absl::InfiniteFuture());
}

}  // namespace elasticbatch::process
