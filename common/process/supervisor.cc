#include "supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace elasticbatch::process {
namespace {

// Everything below until StartSupervisor runs in the forked supervisor (and
// its forked command) of a possibly multi-threaded caller: async-signal-safe
// calls only, nothing that allocates or locks.

// The supervisor's descriptors, at fixed places once it has set itself up.
constexpr int kOwnerFd = 3;
constexpr int kInFd = 4;
constexpr int kOutFd = 5;
constexpr int kErrFd = 6;

struct Args {
  int owner_fd;
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  const char* working_dir;  // nullptr: keep the caller's
  char* const* argv;
  char* const* envp;
  int64_t stop_grace_ms;
  int64_t orphan_grace_ms;
};

void SafeWrite(int fd, const char* text) {
  size_t n = 0;
  while (text[n] != '\0') ++n;
  (void)!write(fd, text, n);
}

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A copy of `fd` at 10 or above (out of the way of the fixed places), or -1.
int MoveUp(int fd) { return fd >= 0 ? fcntl(fd, F_DUPFD, 10) : -1; }

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

// SIGTERM to the group; SIGKILL when it has not exited within the grace. The
// owner going away meanwhile shortens the grace to the orphan grace.
[[noreturn]] void StopAndExit(const Args& a, pid_t command, int pidfd, bool owner_gone) {
  int64_t grace = owner_gone ? a.orphan_grace_ms : a.stop_grace_ms;
  if (grace <= 0) KillGroupAndExit(command);
  kill(-command, SIGTERM);
  int64_t deadline = NowMs() + grace;
  pollfd fds[2] = {{pidfd, POLLIN, 0}, {owner_gone ? -1 : kOwnerFd, POLLIN, 0}};
  while (true) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) break;
    const int r = poll(fds, 2, left > INT_MAX ? INT_MAX : static_cast<int>(left));
    if (r < 0 && errno != EINTR) break;  // cannot wait: kill now
    if (r <= 0) continue;
    if (fds[0].revents != 0) break;  // exited within the grace
    if (fds[1].revents != 0) {
      fds[1].fd = -1;
      if (NowMs() + a.orphan_grace_ms < deadline) deadline = NowMs() + a.orphan_grace_ms;
    }
  }
  KillGroupAndExit(command);
}

[[noreturn]] void RunCommand(const Args& a, pid_t supervisor) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // the supervisor dies: so do we
  // It may have died before the line above: then nobody would ever kill us.
  if (getppid() != supervisor) _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);  // owners ignore it; the command must not inherit that
  if (dup2(kInFd, 0) < 0 || dup2(kOutFd, 1) < 0 || dup2(kErrFd, 2) < 0) _exit(126);
  syscall(SYS_close_range, 3u, ~0u, 0u);
  if (a.working_dir != nullptr && chdir(a.working_dir) != 0) {
    SafeWrite(2, "elasticbatch: cannot enter the working directory: ");
    SafeWrite(2, a.working_dir);
    SafeWrite(2, "\n");
    _exit(126);
  }
  execve("/bin/sh", a.argv, a.envp);
  SafeWrite(2, "elasticbatch: cannot run /bin/sh\n");
  _exit(127);
}

[[noreturn]] void RunSupervisor(const Args& a) {
  // Its own session: signals to the owner's group (a terminal's Ctrl-C, a
  // launcher stopping the owner) are the owner's to handle, not ours.
  setsid();
  const int null_fd = open("/dev/null", O_RDWR);
  const int devnull = MoveUp(null_fd);
  const int owner = MoveUp(a.owner_fd);
  const int in = MoveUp(a.stdin_fd);
  const int out = MoveUp(a.stdout_fd);
  const int err = MoveUp(a.stderr_fd);
  if (devnull < 0 || owner < 0) _exit(126);
  // Keep nothing of the owner's: no copy of its sockets, of the owner pipe's
  // write end, of its stdout (a reader waiting for EOF would wait for us).
  dup2(devnull, 0);
  dup2(devnull, 1);
  dup2(devnull, 2);
  dup2(owner, kOwnerFd);
  dup2(in >= 0 ? in : devnull, kInFd);
  dup2(out >= 0 ? out : devnull, kOutFd);
  dup2(err >= 0 ? err : devnull, kErrFd);
  syscall(SYS_close_range, static_cast<unsigned>(kErrFd + 1), ~0u, 0u);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigprocmask(SIG_SETMASK, &stop_signals, nullptr);
  const int sfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (sfd < 0) {
    SafeWrite(kErrFd, "elasticbatch: supervisor: signalfd failed\n");
    _exit(126);
  }

  const pid_t self = getpid();
  // _Fork: no atfork handlers, which the caller's libraries may have left in
  // a state only the caller's threads could unlock.
  const pid_t command = _Fork();
  if (command < 0) {
    SafeWrite(kErrFd, "elasticbatch: supervisor: fork failed\n");
    _exit(126);
  }
  if (command == 0) RunCommand(a, self);
  setpgid(command, command);  // also here, so that no kill can precede it
  close(kInFd);
  close(kOutFd);
  close(kErrFd);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, command, 0));
  if (pidfd < 0) KillGroupAndExit(command);  // cannot supervise: do not run unsupervised
  pollfd fds[3] = {{pidfd, POLLIN, 0}, {kOwnerFd, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (true) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      StopAndExit(a, command, pidfd, /*owner_gone=*/false);
    }
    if (fds[0].revents != 0) KillGroupAndExit(command);
    if (fds[2].revents != 0) StopAndExit(a, command, pidfd, /*owner_gone=*/false);
    if (fds[1].revents != 0) StopAndExit(a, command, pidfd, /*owner_gone=*/true);
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
  if (spec.command.empty()) return absl::InvalidArgumentError("no command to run");
  if (spec.owner_fd < 0) return absl::InvalidArgumentError("no owner pipe");
  // Everything the supervisor needs is built before fork.
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& entry : spec.env) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry without '=': ", entry));
    }
    vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  std::vector<std::string> env_storage;
  env_storage.reserve(vars.size());
  for (const auto& [k, v] : vars) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "sh", dash_c = "-c", command = spec.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  const Args args{spec.owner_fd,
                  spec.stdin_fd,
                  spec.stdout_fd,
                  spec.stderr_fd,
                  spec.working_dir.empty() ? nullptr : spec.working_dir.c_str(),
                  argv,
                  envp.data(),
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
