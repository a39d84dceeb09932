#include "common/process/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/process/child_setup.h"

namespace elasticbatch::process {
namespace {

using internal::ExecPlan;

// The supervisor's descriptors, at fixed places once it has set itself up.
constexpr int kOwnerFd = 3;
constexpr int kInFd = 4;
constexpr int kOutFd = 5;
constexpr int kErrFd = 6;

struct Args {
  const ExecPlan* plan;
  int owner_fd;
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  int64_t stop_grace_ms;
  int64_t orphan_grace_ms;
};

// Everything below runs in the forked supervisor of a possibly multi-threaded
// caller: async-signal-safe calls only.

// Kills what is left of the command's group, then reaps the command. The kill
// comes first: until it is reaped, the command's pid (the group's id) cannot
// be reused, so the kill cannot reach a stranger.
[[noreturn]] void KillGroupAndExit(pid_t command) {
  kill(-command, SIGKILL);
  int status = 0;
  pid_t r;
  while ((r = waitpid(command, &status, 0)) < 0 && errno == EINTR) {
  }
  _exit(r == command ? ExitCodeOf(status) : 255);
}

[[noreturn]] void RunSupervisor(const Args& a) {
  // Its own session: signals to the owner's group (a terminal's Ctrl-C, a
  // launcher stopping the owner) are the owner's to handle, not ours.
  setsid();
  const int null_fd = open("/dev/null", O_RDWR);
  const int devnull = internal::MoveUp(null_fd);
  const int owner = internal::MoveUp(a.owner_fd);
  const int in = internal::MoveUp(a.stdin_fd);
  const int out = internal::MoveUp(a.stdout_fd);
  const int err = internal::MoveUp(a.stderr_fd);
  if (devnull < 0 || owner < 0) _exit(126);
  // Keep nothing of the owner's: no copy of its sockets, of the owner pipe's
  // write end, of its stdout (a reader waiting for EOF would wait for us).
  if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 ||
      dup2(owner, kOwnerFd) < 0 || dup2(in >= 0 ? in : devnull, kInFd) < 0 ||
      dup2(out >= 0 ? out : devnull, kOutFd) < 0 ||
      dup2(err >= 0 ? err : devnull, kErrFd) < 0) {
    _exit(126);  // nothing started yet
  }
  syscall(SYS_close_range, static_cast<unsigned>(kErrFd + 1), ~0u, 0u);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigprocmask(SIG_SETMASK, &stop_signals, nullptr);
  const int sfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (sfd < 0) {
    internal::SafeWrite(kErrFd, "elasticbatch: supervisor: signalfd failed\n");
    _exit(126);
  }

  const pid_t self = getpid();
  // _Fork: no atfork handlers, which the caller's libraries may have left in
  // a state only the caller's threads could unlock.
  const pid_t command = _Fork();
  if (command < 0) {
    internal::SafeWrite(kErrFd, "elasticbatch: supervisor: fork failed\n");
    _exit(126);
  }
  if (command == 0) {
    internal::CommandChild child;
    child.stdin_fd = kInFd;
    child.stdout_fd = kOutFd;
    child.stderr_fd = kErrFd;
    child.die_with_parent = self;  // we are killed: so is the command
    internal::ExecCommand(*a.plan, child);
  }
  setpgid(command, command);  // also here, so that no kill can precede it
  close(kInFd);
  close(kOutFd);
  close(kErrFd);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, command, 0));
  if (pidfd < 0) KillGroupAndExit(command);  // cannot supervise: do not run unsupervised
  pollfd fds[3] = {{pidfd, POLLIN, 0}, {kOwnerFd, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (true) {
    const int r = poll(fds, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || fds[0].revents != 0) KillGroupAndExit(command);
    if (fds[2].revents != 0) {
      internal::StopGroup(command, pidfd, a.stop_grace_ms, kOwnerFd, a.orphan_grace_ms);
      KillGroupAndExit(command);
    }
    if (fds[1].revents != 0) {
      internal::StopGroup(command, pidfd, a.orphan_grace_ms, -1, 0);
      KillGroupAndExit(command);
    }
  }
}

}  // namespace

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

absl::Status SignalProcess(int pidfd, int sig) {
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 || errno == ESRCH) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat("pidfd_send_signal: ", strerror(errno)));
}

absl::StatusOr<Supervisor> StartSupervisor(const SupervisorSpec& spec) {
  if (spec.owner_fd < 0) return absl::InvalidArgumentError("no owner pipe");
  // Everything the supervisor needs is built before fork.
  absl::StatusOr<std::unique_ptr<ExecPlan>> plan =
      ExecPlan::Make(spec.command, spec.working_dir, spec.env);
  if (!plan.ok()) return plan.status();
  const Args args{plan->get(),
                  spec.owner_fd,
                  spec.stdin_fd,
                  spec.stdout_fd,
                  spec.stderr_fd,
                  absl::ToInt64Milliseconds(spec.stop_grace),
                  absl::ToInt64Milliseconds(spec.orphan_grace)};
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) RunSupervisor(args);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int error = errno;
    kill(pid, SIGKILL);  // ours and unreaped: the pid cannot have been reused
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::InternalError(absl::StrCat("pidfd_open: ", strerror(error)));
  }
  return Supervisor{pid, pidfd};
}

}  // namespace elasticbatch::process
