#include "common/process/child_setup.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace elasticbatch::process::internal {

absl::StatusOr<std::unique_ptr<ExecPlan>> ExecPlan::Make(
    const std::string& command, const std::string& working_dir,
    const std::vector<std::string>& env) {
  if (command.empty()) return absl::InvalidArgumentError("no command to run");
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& entry : env) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry without '=': ", entry));
    }
    vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  auto plan = std::unique_ptr<ExecPlan>(new ExecPlan());
  plan->strings_ = {"sh", "-c", command};
  for (const auto& [k, v] : vars) plan->strings_.push_back(k + "=" + v);
  for (size_t i = 0; i < plan->strings_.size(); ++i) {
    (i < 3 ? plan->argv_ : plan->envp_).push_back(plan->strings_[i].data());
  }
  plan->argv_.push_back(nullptr);
  plan->envp_.push_back(nullptr);
  plan->working_dir_ = working_dir;
  return plan;
}

int MoveUp(int fd) { return fd >= 0 ? fcntl(fd, F_DUPFD, 10) : -1; }

void SafeWrite(int fd, const char* text) {
  size_t n = 0;
  while (text[n] != '\0') ++n;
  (void)!write(fd, text, n);
}

int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void ExecCommand(const ExecPlan& plan, const CommandChild& child) {
  setpgid(0, 0);
  if (child.die_with_parent > 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died before the line above: nobody would kill us.
    if (getppid() != child.die_with_parent) _exit(127);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);  // owners ignore it; the command must not inherit that
  if (child.close_fd >= 0) close(child.close_fd);
  if (child.go_fd >= 0) {
    char go = 0;
    ssize_t n;
    while ((n = read(child.go_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) _exit(127);  // the parent died before its guard was in place
  }
  const int null_fd = open("/dev/null", O_RDWR);
  const int devnull = MoveUp(null_fd);
  const int in = MoveUp(child.stdin_fd >= 0 ? child.stdin_fd : devnull);
  const int out = MoveUp(child.stdout_fd >= 0 ? child.stdout_fd : devnull);
  const int err = MoveUp(child.stderr_fd >= 0 ? child.stderr_fd : devnull);
  if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
      dup2(err, 2) < 0) {
    _exit(126);
  }
  syscall(SYS_close_range, 3u, ~0u, 0u);
  if (plan.working_dir() != nullptr && chdir(plan.working_dir()) != 0) {
    SafeWrite(2, "elasticbatch: cannot enter the working directory: ");
    SafeWrite(2, plan.working_dir());
    SafeWrite(2, "\n");
    _exit(126);
  }
  execve("/bin/sh", plan.argv(), plan.envp());
  SafeWrite(2, "elasticbatch: cannot run /bin/sh\n");
  _exit(127);
}

void StopGroup(pid_t group, int leader_pidfd, int64_t grace_ms, int owner_fd,
               int64_t orphan_grace_ms) {
  // An infinite grace arrives as INT64_MAX: keep the deadline arithmetic finite.
  constexpr int64_t kCenturyMs = int64_t{100} * 366 * 24 * 3600 * 1000;
  grace_ms = std::min(grace_ms, kCenturyMs);
  orphan_grace_ms = std::min(orphan_grace_ms, kCenturyMs);
  if (grace_ms > 0) {
    kill(-group, SIGTERM);
    int64_t deadline = MonotonicMs() + grace_ms;
    pollfd fds[2] = {{leader_pidfd, POLLIN, 0}, {owner_fd, POLLIN, 0}};
    while (true) {
      const int64_t left = deadline - MonotonicMs();
      if (left <= 0) break;
      const int r = poll(fds, 2, left > INT_MAX ? INT_MAX : static_cast<int>(left));
      if (r < 0 && errno != EINTR) break;  // cannot wait: kill now
      if (r <= 0) continue;
      if (fds[0].revents != 0) break;  // the leader is gone: the rest goes now
      if (fds[1].revents != 0) {
        fds[1].fd = -1;
        deadline = std::min(deadline, MonotonicMs() + orphan_grace_ms);
      }
    }
  }
  kill(-group, SIGKILL);
}

}  // namespace elasticbatch::process::internal
