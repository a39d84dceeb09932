// ChildProcess: `sh -c COMMAND` with piped, non-blocking stdin/stdout/stderr,
// in its own process group (so a stop reaches everything it started).
// The destructor kills the group and reaps the child. Not thread-safe.
#ifndef ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_
#define ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace elasticbatch::tools {

class ChildProcess {
 public:
  // `env`: "NAME=VALUE" entries added to (or replacing in) our environment.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::string& command, const std::vector<std::string>& env);
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Non-blocking pipe ends; -1 once closed.
  int stdin_fd() const { return in_; }
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }
  void CloseStdin();
  void CloseStdout();
  void CloseStderr();

  // Signals the whole process group.
  void Signal(int sig);
  // Exit code (128+N when killed by signal N) once exited, else nullopt.
  std::optional<int> Poll();
  // Waits for the exit; after `grace`, kills the group with SIGKILL.
  int Wait(absl::Duration grace = absl::InfiniteDuration());
  // SIGTERM, then SIGKILL after `grace`; returns the exit code.
  int Terminate(absl::Duration grace);

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace elasticbatch::tools

#endif  // ELASTICBATCH_TOOLS_EBATCH_WORKER_CHILD_PROCESS_H_
