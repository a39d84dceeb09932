#include "local_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace elasticbatch::aimaster {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

// Writes a fixed message without allocating (after fork).
void SafeWrite(int fd, const char* text) {
  size_t n = 0;
  while (text[n] != '\0') ++n;
  (void)!write(fd, text, n);
}

// Everything below runs in the forked supervisor: async-signal-safe calls only.
struct SupervisorArgs {
  int death_fd;  // readable/HUP when the master is gone
  int log_fd;
  const char* working_dir;
  char* const* argv;
  char* const* envp;
  int grace_ms;
};

// Stops the command's group: SIGTERM, then SIGKILL after the grace period.
int TerminateGroup(pid_t group, int pidfd, int grace_ms) {
  kill(-group, SIGTERM);
  pollfd p{pidfd, POLLIN, 0};
  int status = 0;
  if (poll(&p, 1, grace_ms) <= 0) kill(-group, SIGKILL);
  while (waitpid(group, &status, 0) < 0 && errno == EINTR) {
  }
  kill(-group, SIGKILL);  // whatever the command left behind
  return DecodeStatus(status);
}

[[noreturn]] void RunSupervisor(const SupervisorArgs& a) {
  setsid();  // away from the master's group: a terminal's Ctrl-C is the master's to
             // handle
  // Keep exactly the death pipe (fd 3) and the log (fd 4): in particular no
  // copy of the death pipe's write end or of the master's sockets.
  const int death = fcntl(a.death_fd, F_DUPFD, 10);
  const int log = fcntl(a.log_fd, F_DUPFD, 10);
  dup2(death, 3);
  dup2(log, 4);
  syscall(SYS_close_range, 5u, ~0u, 0u);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigprocmask(SIG_SETMASK, &stop_signals, nullptr);
  const int sfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);

  const pid_t command = fork();
  if (command < 0) _exit(126);
  if (command == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // the supervisor dies: so do we
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);  // the master ignores it; the command must not
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(4, 1);
    dup2(4, 2);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    if (chdir(a.working_dir) != 0) {
      SafeWrite(2, "elasticbatch: cannot enter the working directory\n");
      _exit(126);
    }
    execve("/bin/sh", a.argv, a.envp);
    SafeWrite(2, "elasticbatch: cannot run /bin/sh\n");
    _exit(127);
  }
  setpgid(command, command);
  const int pidfd = PidfdOpen(command);
  pollfd fds[3] = {{pidfd, POLLIN, 0}, {3, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (true) {
    if (poll(fds, 3, -1) < 0) continue;
    if (fds[0].revents != 0) {
      int status = 0;
      while (waitpid(command, &status, 0) < 0 && errno == EINTR) {
      }
      kill(-command, SIGKILL);  // anything it left running in its group
      _exit(DecodeStatus(status));
    }
    if (fds[1].revents != 0 || fds[2].revents != 0) {
      _exit(TerminateGroup(command, pidfd, a.grace_ms));
    }
  }
}

}  // namespace

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
  epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
  reaper_ = std::thread([this] { ReapLoop(); });
}

LocalLauncher::~LocalLauncher() {
  StopAll();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_, &one, sizeof(one));
  reaper_.join();
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
  // Everything the supervisor needs is built before fork.
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& entry : spec.env) {
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  std::vector<std::string> env_storage;
  env_storage.reserve(vars.size());
  for (const auto& [k, v] : vars) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "sh", dash_c = "-c", command = spec.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  SupervisorArgs args{death_read_,
                      log_fd,
                      spec.working_dir.c_str(),
                      argv,
                      envp.data(),
                      static_cast<int>(absl::ToInt64Milliseconds(options_.stop_grace))};

  EventHandler handler;
  pid_t pid;
  {
    // Held across fork so the reaper cannot see the child before it is known.
    absl::MutexLock lock(&mu_);
    pid = fork();
    if (pid == 0) RunSupervisor(args);
    if (pid < 0) {
      close(log_fd);
      return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
    }
    const int pidfd = PidfdOpen(pid);
    children_[pid] = Child{spec.index, spec.attempt, pidfd};
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(pid);
    epoll_ctl(epoll_, EPOLL_CTL_ADD, pidfd, &ev);
    handler = handler_;
  }
  close(log_fd);
  if (handler) {
    handler({LauncherEvent::Kind::kStarted, spec.index, spec.attempt, pid, 0});
  }
  return absl::OkStatus();
}

void LocalLauncher::Stop(uint32_t index, uint32_t attempt) {
  absl::MutexLock lock(&mu_);
  for (const auto& [pid, child] : children_) {
    if (child.index == index && child.attempt == attempt) kill(pid, SIGTERM);
  }
}

size_t LocalLauncher::live() const {
  absl::MutexLock lock(&mu_);
  return children_.size();
}

void LocalLauncher::StopAll() {
  absl::MutexLock lock(&mu_);
  for (const auto& [pid, child] : children_) kill(pid, SIGTERM);
  // Supervisors escalate to SIGKILL after the grace period themselves.
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return children_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done),
                            options_.stop_grace + absl::Seconds(5))) {
    for (const auto& [pid, child] : children_) kill(pid, SIGKILL);
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(5));
  }
}

void LocalLauncher::ReapLoop() {
  epoll_event events[16];
  while (true) {
    const int n = epoll_wait(epoll_, events, 16, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        continue;
      }
      const pid_t pid = static_cast<pid_t>(events[i].data.u64);
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) != pid) continue;
      LauncherEvent event;
      EventHandler handler;
      {
        absl::MutexLock lock(&mu_);
        auto it = children_.find(pid);
        if (it == children_.end()) continue;
        epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
        close(it->second.pidfd);
        event = {LauncherEvent::Kind::kExited, it->second.index, it->second.attempt, pid,
                 DecodeStatus(status)};
        children_.erase(it);
        handler = handler_;
      }
      if (handler) handler(event);
    }
  }
}

}  // namespace elasticbatch::aimaster
