// GuardedCommand: `sh -c COMMAND` as a child of the caller (so $PPID is the
// caller), in a process group of its own, with a guard process that makes
// sure nothing the command started outlives the caller.
//
//   GuardedCommandSpec spec;
//   spec.command = "python serve.py";
//   spec.stdin_fd = in[0];  // ...
//   absl::StatusOr<std::unique_ptr<GuardedCommand>> c = GuardedCommand::Start(spec);
//   int code = (*c)->Terminate();   // SIGTERM to the group, SIGKILL after the grace
//
// The guard (forked from the caller, running only async-signal-safe code, in a
// session of its own so that signals to the caller's group miss it) watches
// a pipe only the caller holds: when the caller dies, even by SIGKILL, it
// sends SIGTERM to the command's group and SIGKILL after `orphan_grace` (at
// once when the command itself has exited). The command only runs once the
// guard is in place.
//
// When the command exits, what it left running in its group is killed before
// the command is reaped: until then its pid, the group's id, cannot be reused,
// so no signal from here ever reaches a stranger.
//
// Not thread-safe. The caller must not reap children with waitpid(-1).
#ifndef ELASTICBATCH_COMMON_PROCESS_GUARDED_COMMAND_H_
#define ELASTICBATCH_COMMON_PROCESS_GUARDED_COMMAND_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace elasticbatch::process {

struct GuardedCommandSpec {
  // Run as `/bin/sh -c COMMAND`. Required.
  std::string command;
  // The command's working directory. Default: empty, the caller's.
  std::string working_dir;
  // "NAME=VALUE" entries added to (or replacing in) the caller's environment.
  // Default: none.
  std::vector<std::string> env;
  // The command's stdin, stdout and stderr: descriptors of the caller (they
  // are duplicated; the caller keeps its own), or -1 for /dev/null. The guard
  // keeps no copy. Default: -1.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // SIGTERM to SIGKILL in Terminate(). Default: 5s.
  absl::Duration stop_grace = absl::Seconds(5);
  // SIGTERM to SIGKILL when the caller died. Default: 5s.
  absl::Duration orphan_grace = absl::Seconds(5);
};

class GuardedCommand {
 public:
  // INVALID_ARGUMENT for a bad spec; INTERNAL when a pipe, fork or pidfd_open
  // fails (then nothing is left running).
  static absl::StatusOr<std::unique_ptr<GuardedCommand>> Start(
      const GuardedCommandSpec& spec);
  // Terminate(), unless exited already.
  ~GuardedCommand();
  GuardedCommand(const GuardedCommand&) = delete;
  GuardedCommand& operator=(const GuardedCommand&) = delete;

  pid_t pid() const { return pid_; }
  // Readable (poll) once the command has exited.
  int exit_fd() const { return pidfd_; }

  // Exit code (128+N when killed by signal N) once exited, else nullopt.
  std::optional<int> Poll();
  // Waits until the command has exited or `deadline` passed.
  std::optional<int> WaitUntil(absl::Time deadline);
  // Sends `sig` to the command's whole group (nothing once it was reaped).
  void Signal(int sig);
  // SIGTERM to the group, SIGKILL after the stop grace; waits for the exit.
  int Terminate();

 private:
  GuardedCommand() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  pid_t guard_pid_ = -1;
  int owner_ = -1;  // write end of the pipe the guard watches
  absl::Duration stop_grace_;
  std::optional<int> exit_code_;
};

}  // namespace elasticbatch::process

#endif  // ELASTICBATCH_COMMON_PROCESS_GUARDED_COMMAND_H_
