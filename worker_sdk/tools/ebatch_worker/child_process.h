// ChildProcess: `sh -c COMMAND` with piped, non-blocking stdin/stdout/stderr,
// as a process::GuardedCommand: our child (its $PPID is us) in a process group
// of its own, so a stop reaches everything it started, and with a guard that
// stops that group when we die, even by SIGKILL.
//
//   auto c = ChildProcess::Start("python serve.py", {"A=1"}, absl::Seconds(5));
//   write((*c)->stdin_fd(), ...); read((*c)->stdout_fd(), ...);
//   int code = (*c)->Terminate();   // SIGTERM, SIGKILL after the grace
//
// Not thread-safe.
#ifndef ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_
#define ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/process/guarded_command.h"

namespace elasticbatch::tools {

class ChildProcess {
 public:
  // `env`: "NAME=VALUE" entries added to (or replacing in) our environment.
  // `stop_grace`: SIGTERM to SIGKILL, in Terminate() and when we die.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::string& command, const std::vector<std::string>& env,
      absl::Duration stop_grace);
  // Closes the pipes, then Terminate() unless exited already.
  ~ChildProcess();

  // Non-blocking pipe ends; -1 once closed.
  int stdin_fd() const { return in_; }
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }
  void CloseStdin();
  void CloseStdout();
  void CloseStderr();
  // Readable (poll) once the command has exited.
  int exit_fd() const { return command_->exit_fd(); }

  // Exit code (128+N when killed by signal N) once exited, else nullopt.
  std::optional<int> Poll() { return command_->Poll(); }
  // Waits until the command has exited or `deadline` passed.
  std::optional<int> WaitUntil(absl::Time deadline) {
    return command_->WaitUntil(deadline);
  }
  // SIGTERM to the group, SIGKILL after the grace; waits; returns the exit code.
  int Terminate() { return command_->Terminate(); }

 private:
  ChildProcess() = default;
  std::unique_ptr<process::GuardedCommand> command_;
  int in_ = -1, out_ = -1, err_ = -1;
};

}  // namespace elasticbatch::tools

#endif  // ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_
