#include "child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace elasticbatch::tools {
namespace {

int Decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::string& command, const std::vector<std::string>& env) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // Built before fork: after it, only async-signal-safe calls are allowed.
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& entry : env) {
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  std::vector<std::string> flat;
  for (const auto& [k, v] : vars) flat.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : flat) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->pid_ = pid;
  child->in_ = in[1];
  child->out_ = out[0];
  child->err_ = err[0];
  for (int fd : {child->in_, child->out_, child->err_}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return child;
}

ChildProcess::~ChildProcess() {
  CloseStdin();
  CloseStdout();
  CloseStderr();
  if (!exit_code_) {
    Signal(SIGKILL);
    Wait();
  }
}

void ChildProcess::CloseStdin() { CloseFd(&in_); }
void ChildProcess::CloseStdout() { CloseFd(&out_); }
void ChildProcess::CloseStderr() { CloseFd(&err_); }

void ChildProcess::Signal(int sig) {
  if (!exit_code_) kill(-pid_, sig);
}

std::optional<int> ChildProcess::Poll() {
  if (exit_code_) return exit_code_;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) exit_code_ = Decode(status);
  return exit_code_;
}

int ChildProcess::Wait(absl::Duration grace) {
  if (exit_code_) return *exit_code_;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  const absl::Time deadline =
      grace == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + grace;
  bool killed = false;
  while (!Poll()) {
    if (!killed && absl::Now() >= deadline) {
      Signal(SIGKILL);
      killed = true;
    }
    pollfd p{pidfd, POLLIN, 0};
    const absl::Duration left = deadline - absl::Now();
    const int timeout_ms =
        killed || deadline == absl::InfiniteFuture()
            ? (pidfd >= 0 ? -1 : 50)
            : static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(left)));
    if (pidfd >= 0) {
      poll(&p, 1, timeout_ms);
    } else {
      usleep(10000);
    }
  }
  if (pidfd >= 0) close(pidfd);
  // Anything the command left running in its group goes too.
  kill(-pid_, SIGKILL);
  return *exit_code_;
}

int ChildProcess::Terminate(absl::Duration grace) {
  Signal(SIGTERM);
  return Wait(grace);
}

}  // namespace elasticbatch::tools
