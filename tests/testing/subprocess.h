// Real child processes for end-to-end and fault tests.
//
//   auto p = Subprocess::Start({bin, "serve", "--port=0"});
//   std::string first = *(*p)->ReadStdoutLine(absl::Seconds(30));
//   (*p)->Signal(SIGKILL);
//   int code = *(*p)->Wait(absl::Seconds(30));
//
// Each child runs in its own process group; the destructor kills that group
// and reaps the child, so a failing test leaves nothing behind.
// Thread-safe.
#ifndef ELASTICBATCH_TESTS_TESTING_SUBPROCESS_H_
#define ELASTICBATCH_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace elasticbatch::testing {

struct ProcessResult {
  // Exit status; 128+N when killed by signal N (shell convention); -1 on timeout.
  int exit_code = -1;
  std::string out;
  std::string err;
};

struct SubprocessOptions {
  // "NAME=VALUE" entries added to (or replacing in) the parent's environment.
  std::vector<std::string> env;
  // "NAME" entries removed from the environment.
  std::vector<std::string> unset_env;
  // Written to the child's stdin, which is then closed.
  std::string stdin_data;
  // Working directory; empty keeps the parent's.
  std::string cwd;
};

class Subprocess {
 public:
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const SubprocessOptions& options = {});
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Returns the next complete line of stdout (without '\n'), waiting up to
  // `timeout`. DEADLINE_EXCEEDED on timeout, OUT_OF_RANGE at end of output.
  absl::StatusOr<std::string> ReadStdoutLine(absl::Duration timeout);

  // Sends `signal` to the child's process group.
  void Signal(int signal);

  // Waits for the child to exit; returns its exit code (128+N for signal N).
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Everything read so far (complete once Wait() returned).
  std::string Stdout();
  std::string Stderr();

 private:
  // Output collected by reader threads; shared so that a reader which
  // outlives the Subprocess (a grandchild keeps a pipe open) stays valid.
  struct Streams {
    absl::Mutex mu;
    std::string out ABSL_GUARDED_BY(mu);
    std::string err ABSL_GUARDED_BY(mu);
    size_t out_consumed ABSL_GUARDED_BY(mu) = 0;
    int open ABSL_GUARDED_BY(mu) = 2;
  };

  Subprocess() = default;
  static void Drain(std::shared_ptr<Streams> streams, int fd, bool is_out);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int exit_code_ = -1;
  bool reaped_ = false;
  std::shared_ptr<Streams> streams_ = std::make_shared<Streams>();
};

// Runs `argv` to completion, killing it after `timeout` (exit_code -1 then).
ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout,
                         const SubprocessOptions& options = {});

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_SUBPROCESS_H_
