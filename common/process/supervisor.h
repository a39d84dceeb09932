// Supervisor: runs `sh -c COMMAND` under a tiny supervisor process that owns
// the command's process group, so that nothing the command starts can outlive
// its owner.
//
//   int owner[2];
//   pipe2(owner, O_CLOEXEC);                 // only the owner holds owner[1]
//   SupervisorSpec spec;
//   spec.command = "python main.py";
//   spec.owner_fd = owner[0];
//   absl::StatusOr<Supervisor> s = StartSupervisor(spec);
//   SignalProcess(s->pidfd, SIGTERM);        // stop: SIGTERM, SIGKILL after the grace
//   close(owner[1]);                         // or: owner gone, the group dies
//
// The supervisor (forked from the caller, running only async-signal-safe code,
// in a session of its own so that signals to the caller's group miss it)
// forks the command into a new process group and then:
//  * when the command exits, kills what is left of its group and exits with
//    the command's exit code (128+N when killed by signal N);
//  * on SIGTERM, SIGINT or SIGHUP, sends SIGTERM to the group, SIGKILL after
//    `stop_grace`, and exits likewise;
//  * when `owner_fd` reports EOF (every copy of the pipe's write end is
//    closed: the owner exited, even by SIGKILL), does the same with
//    `orphan_grace`.
// The command dies with SIGKILL if the supervisor itself is killed.
//
// Signals to the supervisor go through its pidfd (SignalProcess), so they can
// never reach a recycled pid. The caller reaps the supervisor (waitpid on
// `pid`, or through `pidfd`) and closes `pidfd`.
//
// Thread-safe: StartSupervisor may be called from any thread.
#ifndef ELASTICBATCH_COMMON_PROCESS_SUPERVISOR_H_
#define ELASTICBATCH_COMMON_PROCESS_SUPERVISOR_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace elasticbatch::process {

struct SupervisorSpec {
  // Run as `/bin/sh -c COMMAND`. Required.
  std::string command;
  // The command's working directory. Default: empty, the caller's.
  std::string working_dir;
  // "NAME=VALUE" entries added to (or replacing in) the caller's environment.
  // Default: none.
  std::vector<std::string> env;
  // The command's stdin, stdout and stderr: descriptors of the caller (they
  // are duplicated; the caller keeps its own), or -1 for /dev/null. The
  // supervisor itself keeps no copy. Default: -1.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Read end of a pipe whose write end only the owner holds (O_CLOEXEC).
  // Required.
  int owner_fd = -1;
  // SIGTERM to SIGKILL when the supervisor is told to stop. Default: 10s.
  absl::Duration stop_grace = absl::Seconds(10);
  // SIGTERM to SIGKILL when the owner is gone; zero kills at once. Default: 10s.
  absl::Duration orphan_grace = absl::Seconds(10);
};

struct Supervisor {
  pid_t pid = -1;
  int pidfd = -1;  // owned by the caller
};

// Forks the supervisor (which forks the command). INVALID_ARGUMENT for a bad
// spec; INTERNAL when fork or pidfd_open fail (then nothing is left running).
absl::StatusOr<Supervisor> StartSupervisor(const SupervisorSpec& spec);

// Sends `sig` through a pidfd. OK when the process has exited already (a
// zombie or reaped: the signal has nobody to reach, and nobody else can).
absl::Status SignalProcess(int pidfd, int sig);

// A wait status as an exit code: the code, or 128+N when killed by signal N.
int ExitCodeOf(int wait_status);

}  // namespace elasticbatch::process

#endif  // ELASTICBATCH_COMMON_PROCESS_SUPERVISOR_H_
