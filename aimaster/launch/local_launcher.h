// LocalLauncher: worker attempts as local processes.
//
// Each attempt runs `sh -c COMMAND` in its working directory and its own
// process group, with stdout and stderr appended to its log file, under a
// small supervisor process (process::StartSupervisor): it forwards stop
// requests (SIGTERM, then SIGKILL after the grace period) to the whole
// process group, kills what is left of the group when the command exits, and
// kills the group when the master goes away, even by SIGKILL (it watches a
// pipe only the master holds open). The master reaps each supervisor through a
// pidfd the moment it exits, so exits are reported at once and no zombie is
// left; stop signals go through that pidfd, so they never reach a recycled
// pid. Every attempt gets ELASTICBATCH_STOP_GRACE = half the grace period, so
// that what it stops in turn (ebatch-worker's command) is killed before it is.
//
//   LocalLauncher launcher({.stop_grace = absl::Seconds(10)});
//   launcher.SetEventHandler([](const LauncherEvent& e) { ... });
//   launcher.Launch({.index = 0, .attempt = 0, .command = "python main.py", ...});
//
// Thread-safe. The destructor stops every attempt and waits for them.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_LOCAL_LAUNCHER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_LOCAL_LAUNCHER_H_

#include <sys/types.h>

#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/launch/launcher.h"

namespace elasticbatch::aimaster {

struct LocalLauncherOptions {
  // Between SIGTERM and SIGKILL when an attempt is stopped. Default: 10s.
  absl::Duration stop_grace = absl::Seconds(10);
};

class LocalLauncher final : public Launcher {
 public:
  explicit LocalLauncher(LocalLauncherOptions options = {});
  ~LocalLauncher() override;

  void SetEventHandler(EventHandler handler) override;
  absl::Status Launch(const LaunchSpec& spec) override;
  void Stop(uint32_t index, uint32_t attempt) override;
  size_t live() const override;

  // Stops every attempt and waits (up to the grace period and a little more)
  // until all have exited.
  void StopAll();

 private:
  struct Child {
    uint32_t index;
    uint32_t attempt;
    int pidfd;
  };
  void ReapLoop();
  void SignalLocked(const Child& child, int sig) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LocalLauncherOptions options_;
  int death_read_ = -1;  // supervisors watch this; only we hold the write end
  int death_write_ = -1;
  int epoll_ = -1;
  int wake_ = -1;  // eventfd: stop the reaper
  mutable absl::Mutex mu_;
  EventHandler handler_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, Child> children_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_LOCAL_LAUNCHER_H_
