// Launcher: runs worker attempts somewhere (local processes, pods) and reports
// what happens to them. Core decides, the launcher does: see LaunchDriver.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_LAUNCHER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_LAUNCHER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace elasticbatch::aimaster {

struct LaunchSpec {
  uint32_t index = 0;
  uint32_t attempt = 0;
  // Run as `sh -c COMMAND`.
  std::string command;
  std::string working_dir;
  // "NAME=VALUE" entries added to (or replacing in) the master's environment.
  std::vector<std::string> env;
  // stdout and stderr of the attempt go here (appended).
  std::string log_path;
};

struct LauncherEvent {
  enum class Kind { kStarted, kExited };
  Kind kind = Kind::kStarted;
  uint32_t index = 0;
  uint32_t attempt = 0;
  int32_t pid = 0;
  // kExited: the exit code, 128+N when killed by signal N.
  int exit_code = 0;
};

// Thread-safe. Events arrive on the launcher's own thread.
class Launcher {
 public:
  using EventHandler = std::function<void(const LauncherEvent&)>;
  virtual ~Launcher() = default;

  // Must be set before the first Launch().
  virtual void SetEventHandler(EventHandler handler) = 0;
  // Starts an attempt; kStarted follows, and kExited when it ends. An error
  // means nothing was started.
  virtual absl::Status Launch(const LaunchSpec& spec) = 0;
  // Asks the attempt to stop: SIGTERM, then SIGKILL after the grace period.
  virtual void Stop(uint32_t index, uint32_t attempt) = 0;
  // Number of attempts whose exit has not been reported yet.
  virtual size_t live() const = 0;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_LAUNCHER_H_
