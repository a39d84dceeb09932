#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace elasticbatch::testing {
namespace {

std::vector<std::string> BuildEnvironment(const SubprocessOptions& options) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& name : options.unset_env) env.erase(name);
  for (const std::string& entry : options.env) {
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // Everything the child needs is prepared before fork: after it only
  // async-signal-safe calls are allowed.
  std::vector<std::string> env = BuildEnvironment(options);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (std::string& a : args) argvp.push_back(a.data());
  argvp.push_back(nullptr);
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    if (cwd != nullptr && chdir(cwd) != 0) _exit(127);
    execve(argvp[0], argvp.data(), envp.data());
    execvpe(argvp[0], argvp.data(), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);  // Also from the parent, so Signal() cannot race the child.
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->pid_ = pid;
  p->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  // Feed stdin from a thread so a child that does not read cannot block us.
  std::thread([fd = in_pipe[1], data = options.stdin_data] {
    signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd, data.data() + off, data.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fd);
  }).detach();
  std::thread(Drain, p->streams_, out_pipe[0], true).detach();
  std::thread(Drain, p->streams_, err_pipe[0], false).detach();
  return p;
}

void Subprocess::Drain(std::shared_ptr<Streams> streams, int fd, bool is_out) {
  char chunk[4096];
  while (true) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    absl::MutexLock lock(&streams->mu);
    (is_out ? streams->out : streams->err).append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  absl::MutexLock lock(&streams->mu);
  --streams->open;
}

Subprocess::~Subprocess() {
  if (!reaped_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    (void)Wait(absl::Seconds(30));
  }
  if (pidfd_ >= 0) close(pidfd_);
}

absl::StatusOr<std::string> Subprocess::ReadStdoutLine(absl::Duration timeout) {
  Streams& s = *streams_;
  absl::MutexLock lock(&s.mu);
  auto has_line_or_eof = [&s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    return s.out.find('\n', s.out_consumed) != std::string::npos || s.open == 0;
  };
  s.mu.AwaitWithTimeout(absl::Condition(&has_line_or_eof), timeout);
  size_t nl = s.out.find('\n', s.out_consumed);
  if (nl == std::string::npos) {
    if (s.open == 0) return absl::OutOfRangeError("end of output");
    return absl::DeadlineExceededError("no line on stdout in time");
  }
  std::string line = s.out.substr(s.out_consumed, nl - s.out_consumed);
  s.out_consumed = nl + 1;
  return line;
}

void Subprocess::Signal(int signal) {
  if (reaped_) return;
  kill(-pid_, signal);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (reaped_) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exit_code_ = DecodeWaitStatus(status);
      // Let the readers collect the last output (they end at EOF).
      Streams& s = *streams_;
      absl::MutexLock lock(&s.mu);
      auto closed = [&s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) { return s.open == 0; };
      s.mu.AwaitWithTimeout(absl::Condition(&closed), absl::Seconds(5));
      return exit_code_;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("process did not exit in time");
    }
    pollfd pfd{pidfd_, POLLIN, 0};
    poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

std::string Subprocess::Stdout() {
  absl::MutexLock lock(&streams_->mu);
  return streams_->out;
}

std::string Subprocess::Stderr() {
  absl::MutexLock lock(&streams_->mu);
  return streams_->err;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout,
                         const SubprocessOptions& options) {
  ProcessResult result;
  auto p = Subprocess::Start(argv, options);
  if (!p.ok()) {
    result.err = std::string(p.status().message());
    return result;
  }
  absl::StatusOr<int> code = (*p)->Wait(timeout);
  if (!code.ok()) (*p)->Signal(SIGKILL);
  result.exit_code = code.ok() ? *code : -1;
  if (!code.ok()) (void)(*p)->Wait(absl::Seconds(30));
  result.out = (*p)->Stdout();
  result.err = (*p)->Stderr();
  return result;
}

}  // namespace elasticbatch::testing
