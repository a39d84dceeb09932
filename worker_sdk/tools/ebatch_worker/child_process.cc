#include "worker_sdk/tools/ebatch_worker/child_process.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch::tools {
namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::string& command, const std::vector<std::string>& env,
    absl::Duration stop_grace) {
  // [0] read end, [1] write end; ours get closed with the ChildProcess.
  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  auto close_all = [&pipes] {
    for (auto& p : pipes) {
      for (int& fd : p) CloseFd(&fd);
    }
  };
  for (auto& p : pipes) {
    if (pipe2(p, O_CLOEXEC) != 0) {
      const int error = errno;
      close_all();
      return absl::InternalError(absl::StrCat("pipe: ", strerror(error)));
    }
  }
  process::GuardedCommandSpec spec;
  spec.command = command;
  spec.env = env;
  spec.stdin_fd = pipes[0][0];
  spec.stdout_fd = pipes[1][1];
  spec.stderr_fd = pipes[2][1];
  spec.stop_grace = stop_grace;
  // When we die the command's output has no reader any more; it still gets
  // the grace to shut down cleanly (a model server releasing its GPU).
  spec.orphan_grace = stop_grace;
  absl::StatusOr<std::unique_ptr<process::GuardedCommand>> started =
      process::GuardedCommand::Start(spec);
  // The command's ends: it has its own copies now.
  CloseFd(&pipes[0][0]);
  CloseFd(&pipes[1][1]);
  CloseFd(&pipes[2][1]);
  if (!started.ok()) {
    close_all();
    return started.status();
  }
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->command_ = std::move(*started);
  child->in_ = pipes[0][1];
  child->out_ = pipes[1][0];
  child->err_ = pipes[2][0];
  for (int fd : {child->in_, child->out_, child->err_}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return child;
}

ChildProcess::~ChildProcess() {
  CloseStdin();
  CloseStdout();
  CloseStderr();
  // ~GuardedCommand: Terminate() unless exited.
}

void ChildProcess::CloseStdin() { CloseFd(&in_); }
void ChildProcess::CloseStdout() { CloseFd(&out_); }
void ChildProcess::CloseStderr() { CloseFd(&err_); }

}  // namespace elasticbatch::tools
