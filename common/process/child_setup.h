// Building blocks for forked children of a possibly multi-threaded process:
// what is built before fork (ExecPlan), and the async-signal-safe code that
// runs after it. Internal to elasticbatch_process.
#ifndef ELASTICBATCH_COMMON_PROCESS_CHILD_SETUP_H_
#define ELASTICBATCH_COMMON_PROCESS_CHILD_SETUP_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace elasticbatch::process::internal {

// argv and envp of `sh -c COMMAND`, and the working directory, built before
// fork (after it nothing may allocate). Not movable: it hands out pointers
// into itself. Immutable once made: thread-safe.
class ExecPlan {
 public:
  // `env`: "NAME=VALUE" entries added to (or replacing in) our environment.
  // INVALID_ARGUMENT for an empty command or an entry without '='.
  static absl::StatusOr<std::unique_ptr<ExecPlan>> Make(
      const std::string& command, const std::string& working_dir,
      const std::vector<std::string>& env);
  ExecPlan(const ExecPlan&) = delete;
  ExecPlan& operator=(const ExecPlan&) = delete;

  char* const* argv() const { return const_cast<char* const*>(argv_.data()); }
  char* const* envp() const { return const_cast<char* const*>(envp_.data()); }
  // nullptr: keep the parent's.
  const char* working_dir() const {
    return working_dir_.empty() ? nullptr : working_dir_.c_str();
  }

 private:
  ExecPlan() = default;
  std::vector<std::string>
      strings_;  // argv then env entries; never resized once pointed to
  std::vector<char*> argv_;
  std::vector<char*> envp_;
  std::string working_dir_;
};

// --- async-signal-safe from here on ---

// A copy of `fd` at 10 or above (out of the way of fixed places), or -1.
int MoveUp(int fd);
void SafeWrite(int fd, const char* text);
int64_t MonotonicMs();

struct CommandChild {
  // Descriptors become the command's 0, 1, 2 (-1: /dev/null).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // > 0: PR_SET_PDEATHSIG(SIGKILL), and exit at once when the parent is not
  // this pid any more (it died before the prctl).
  pid_t die_with_parent = 0;
  // >= 0: block until one byte can be read from it; exit without running the
  // command at EOF (the parent died before saying go).
  int go_fd = -1;
  // >= 0: closed first (the parent's end of the go channel, so that the
  // parent's death is an EOF).
  int close_fd = -1;
};

// In the forked child: its own process group, default signal mask and SIGPIPE,
// the descriptors in place and nothing else open, then exec. Never returns.
[[noreturn]] void ExecCommand(const ExecPlan& plan, const CommandChild& child);

// SIGTERM to `group`, SIGKILL once `grace_ms` passed or as soon as its leader
// (`leader_pidfd`) has exited. With `owner_fd` >= 0, EOF on it shortens the
// grace to `orphan_grace_ms`. Returns once the SIGKILL is sent; the leader is
// not reaped.
void StopGroup(pid_t group, int leader_pidfd, int64_t grace_ms, int owner_fd,
               int64_t orphan_grace_ms);

}  // namespace elasticbatch::process::internal

#endif  // ELASTICBATCH_COMMON_PROCESS_CHILD_SETUP_H_
