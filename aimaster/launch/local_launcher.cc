#include "aimaster/launch/local_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/process/supervisor.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::aimaster {

LocalLauncher::LocalLauncher(LocalLauncherOptions options) : options_(options) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) == 0) {
    death_read_ = pipe_fds[0];
    death_write_ = pipe_fds[1];
  }
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // 0: the wake-up eventfd; otherwise a pid
  if (epoll_ < 0 || wake_ < 0 || epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
    // Launch() refuses to start anything; the reaper has nothing to wait for.
    spdlog::error("local launcher: cannot set up epoll: {}", strerror(errno));
    if (wake_ >= 0) close(wake_);
    wake_ = -1;
    return;
  }
  reaper_ = std::thread([this] { ReapLoop(); });
}

LocalLauncher::~LocalLauncher() {
  StopAll();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (reaper_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof(one)) != sizeof(one)) {
      spdlog::error("local launcher: cannot wake the reaper: {}", strerror(errno));
    }
    reaper_.join();
  }
  for (int fd : {death_read_, death_write_, epoll_, wake_}) {
    if (fd >= 0) close(fd);
  }
}

void LocalLauncher::SetEventHandler(EventHandler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

absl::Status LocalLauncher::Launch(const LaunchSpec& spec) {
  if (death_read_ < 0 || epoll_ < 0 || wake_ < 0) {
    return absl::InternalError("the launcher could not set up its pipes");
  }
  const int log_fd =
      open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open log ", spec.log_path, ": ", strerror(errno)));
  }
  process::SupervisorSpec s;
  s.command = spec.command;
  s.working_dir = spec.working_dir;
  // Half our grace for whatever the attempt stops in turn (ebatch-worker's
  // command), so that it gets its SIGKILL before ours reaches the attempt.
  s.env.push_back(absl::StrCat("ELASTICBATCH_STOP_GRACE=",
                               absl::FormatDuration(options_.stop_grace / 2)));
  s.env.insert(s.env.end(), spec.env.begin(), spec.env.end());
  s.stdout_fd = log_fd;
  s.stderr_fd = log_fd;
  s.owner_fd = death_read_;
  s.stop_grace = options_.stop_grace;
  s.orphan_grace = options_.stop_grace;

  EventHandler handler;
  pid_t pid;
  {
    // Held across the fork so that the reaper cannot see the child before it
    // is known.
    absl::MutexLock lock(&mu_);
    absl::StatusOr<process::Supervisor> started = process::StartSupervisor(s);
    close(log_fd);
    if (!started.ok()) return started.status();
    pid = started->pid;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(pid);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, started->pidfd, &ev) != 0) {
      // Nobody could report its exit: take it down again.
      const absl::Status error =
          absl::InternalError(absl::StrCat("epoll_ctl: ", strerror(errno)));
      (void)process::SignalProcess(started->pidfd, SIGKILL);
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      close(started->pidfd);
      return error;
    }
    children_[pid] = Child{spec.index, spec.attempt, started->pidfd};
    handler = handler_;
  }
  if (handler) {
    handler({LauncherEvent::Kind::kStarted, spec.index, spec.attempt, pid, 0});
  }
  return absl::OkStatus();
}

void LocalLauncher::SignalLocked(const Child& child, int sig) {
  // Through the pidfd: the reaper may have reaped the pid a moment ago, and a
  // plain kill() could then reach whoever got the pid next.
  if (absl::Status s = process::SignalProcess(child.pidfd, sig); !s.ok()) {
    spdlog::error("cannot signal worker {} attempt {}: {}", child.index, child.attempt,
                  s.ToString());
  }
}

void LocalLauncher::Stop(uint32_t index, uint32_t attempt) {
  absl::MutexLock lock(&mu_);
  for (const auto& [pid, child] : children_) {
    if (child.index == index && child.attempt == attempt) SignalLocked(child, SIGTERM);
  }
}

size_t LocalLauncher::live() const {
  absl::MutexLock lock(&mu_);
  return children_.size();
}

void LocalLauncher::StopAll() {
  absl::MutexLock lock(&mu_);
  for (const auto& [pid, child] : children_) SignalLocked(child, SIGTERM);
  // Supervisors escalate to SIGKILL after the grace period themselves.
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return children_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done),
                            options_.stop_grace + absl::Seconds(5))) {
    for (const auto& [pid, child] : children_) SignalLocked(child, SIGKILL);
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(5));
  }
}

void LocalLauncher::ReapLoop() {
  epoll_event events[16];
  while (true) {
    const int n = epoll_wait(epoll_, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("local launcher: epoll_wait: {}", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        continue;
      }
      const pid_t pid = static_cast<pid_t>(events[i].data.u64);
      LauncherEvent event;
      EventHandler handler;
      {
        // Reaped under the lock, and the pidfd closed with it, so that Stop()
        // never signals through a pidfd that is gone.
        absl::MutexLock lock(&mu_);
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) != pid) continue;
        auto it = children_.find(pid);
        if (it == children_.end()) continue;
        epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
        close(it->second.pidfd);
        event = {LauncherEvent::Kind::kExited, it->second.index, it->second.attempt, pid,
                 process::ExitCodeOf(status)};
        children_.erase(it);
        handler = handler_;
      }
      if (handler) handler(event);
    }
  }
}

}  // namespace elasticbatch::aimaster
