// LaunchDriver: carries out the coordinator's fleet decisions on a Launcher
// and feeds the launcher's events back, so that an exit reaches the
// coordinator (and its leases the queue) the moment it is reaped.
//
//   LaunchDriver driver(&coordinator, &launcher, [&](uint32_t i, uint32_t k) { ... });
//   driver.Start();   // then driver.Tick() from the master's tick
//
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_LAUNCH_DRIVER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_LAUNCH_DRIVER_H_

#include <functional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/launch/launcher.h"

namespace elasticbatch::aimaster {

class LaunchDriver {
 public:
  using SpecFactory = std::function<LaunchSpec(uint32_t index, uint32_t attempt)>;
  // Registers itself as `launcher`'s event handler. `after_event` (optional)
  // runs on the launcher's thread once an event reached the coordinator, so
  // that whoever waits for the workers' exits can wake up at once.
  LaunchDriver(JobCoordinator* coordinator, Launcher* launcher, SpecFactory specs,
               std::function<void()> after_event = nullptr);

  // Launches the first attempts.
  void Start();
  // Carries out queued decisions (restarts, backups, stops, early stop).
  void Tick();
  // Stops every attempt still alive.
  void StopAll(const std::string& reason);

 private:
  void OnEvent(const LauncherEvent& event);
  void Execute(const std::vector<FleetDecision>& decisions);

  JobCoordinator* const coordinator_;
  Launcher* const launcher_;
  SpecFactory specs_;
  std::function<void()> after_event_;
  absl::Mutex mu_;  // one Execute at a time
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_LAUNCH_DRIVER_H_
