// FakeLauncher: a Launcher that starts nothing. It records what it was asked
// to do, and the test plays the launcher's part by reporting starts and exits
// itself, on its own thread and at the moment it chooses.
//
//   FakeLauncher launcher;
//   LaunchDriver driver(&coordinator, &launcher, specs);
//   driver.Start();
//   launcher.ReportStarted(0, 0);
//   launcher.ReportExited(0, 0, 137);
//
// Thread-safe. The event handler runs on the thread that calls Report*(), as a
// real launcher's runs on its reaper thread: never under the fake's mutex.
#ifndef ELASTICBATCH_TESTS_AIMASTER_LAUNCH_FAKE_LAUNCHER_H_
#define ELASTICBATCH_TESTS_AIMASTER_LAUNCH_FAKE_LAUNCHER_H_

#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/launch/launcher.h"

namespace elasticbatch::aimaster::testing {

class FakeLauncher final : public Launcher {
 public:
  using Attempt = std::pair<uint32_t, uint32_t>;  // (index, attempt)

  void SetEventHandler(EventHandler handler) override {
    absl::MutexLock lock(&mu_);
    handler_ = std::move(handler);
  }
  absl::Status Launch(const LaunchSpec& spec) override {
    absl::MutexLock lock(&mu_);
    if (!launch_error_.ok()) return launch_error_;
    launches_.push_back(spec);
    live_.insert({spec.index, spec.attempt});
    return absl::OkStatus();
  }
  void Stop(uint32_t index, uint32_t attempt) override {
    absl::MutexLock lock(&mu_);
    stops_.push_back({index, attempt});
  }
  size_t live() const override {
    absl::MutexLock lock(&mu_);
    return live_.size();
  }

  // Every later Launch() fails with `error` (OK: they succeed again).
  void FailLaunches(absl::Status error) {
    absl::MutexLock lock(&mu_);
    launch_error_ = std::move(error);
  }
  // Plays the launcher's kStarted event.
  void ReportStarted(uint32_t index, uint32_t attempt, int32_t pid = 1000) {
    LauncherEvent e;
    e.kind = LauncherEvent::Kind::kStarted;
    e.index = index;
    e.attempt = attempt;
    e.pid = pid;
    Report(e);
  }
  // Plays the launcher's kExited event.
  void ReportExited(uint32_t index, uint32_t attempt, int exit_code) {
    {
      absl::MutexLock lock(&mu_);
      live_.erase({index, attempt});
    }
    LauncherEvent e;
    e.kind = LauncherEvent::Kind::kExited;
    e.index = index;
    e.attempt = attempt;
    e.exit_code = exit_code;
    Report(e);
  }

  std::vector<LaunchSpec> launches() const {
    absl::MutexLock lock(&mu_);
    return launches_;
  }
  std::vector<Attempt> launched() const {
    absl::MutexLock lock(&mu_);
    std::vector<Attempt> out;
    for (const LaunchSpec& s : launches_) out.push_back({s.index, s.attempt});
    return out;
  }
  std::vector<Attempt> stops() const {
    absl::MutexLock lock(&mu_);
    return stops_;
  }

 private:
  void Report(const LauncherEvent& e) {
    EventHandler handler;
    {
      absl::MutexLock lock(&mu_);
      handler = handler_;
    }
    if (handler) handler(e);
  }

  mutable absl::Mutex mu_;
  EventHandler handler_ ABSL_GUARDED_BY(mu_);
  absl::Status launch_error_ ABSL_GUARDED_BY(mu_);
  std::vector<LaunchSpec> launches_ ABSL_GUARDED_BY(mu_);
  std::vector<Attempt> stops_ ABSL_GUARDED_BY(mu_);
  std::set<Attempt> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster::testing

#endif  // ELASTICBATCH_TESTS_AIMASTER_LAUNCH_FAKE_LAUNCHER_H_
