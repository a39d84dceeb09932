#include "aimaster/launch/launch_driver.h"

#include "spdlog/spdlog.h"

namespace elasticbatch::aimaster {

LaunchDriver::LaunchDriver(JobCoordinator* coordinator, Launcher* launcher,
                           SpecFactory specs, std::function<void()> after_event)
    : coordinator_(coordinator),
      launcher_(launcher),
      specs_(std::move(specs)),
      after_event_(std::move(after_event)) {
  launcher_->SetEventHandler([this](const LauncherEvent& e) { OnEvent(e); });
}

void LaunchDriver::Start() { Execute(coordinator_->StartWorkers()); }

void LaunchDriver::Tick() { Execute(coordinator_->TakeFleetDecisions()); }

void LaunchDriver::StopAll(const std::string& reason) {
  Execute(coordinator_->StopAllWorkers(reason));
}

void LaunchDriver::OnEvent(const LauncherEvent& event) {
  if (event.kind == LauncherEvent::Kind::kStarted) {
    coordinator_->WorkerStarted(event.index, event.attempt, event.pid);
  } else {
    if (event.exit_code != 0) {
      spdlog::warn("worker {} attempt {} exited with status {}", event.index,
                   event.attempt, event.exit_code);
    }
    coordinator_->WorkerExited(event.index, event.attempt, event.exit_code);
    Execute(coordinator_->TakeFleetDecisions());
  }
  if (after_event_) after_event_();
}

void LaunchDriver::Execute(const std::vector<FleetDecision>& decisions) {
  absl::MutexLock lock(&mu_);
  for (const FleetDecision& d : decisions) {
    if (d.kind == FleetDecision::Kind::kStop) {
      spdlog::info("stopping worker {} attempt {}: {}", d.index, d.attempt, d.reason);
      launcher_->Stop(d.index, d.attempt);
      continue;
    }
    if (d.attempt > 0) {
      spdlog::info("launching worker {} attempt {}{}: {}", d.index, d.attempt,
                   d.backup ? " (backup)" : "", d.reason);
    }
    absl::Status s = launcher_->Launch(specs_(d.index, d.attempt));
    if (!s.ok()) {
      spdlog::error("cannot launch worker {} attempt {}: {}", d.index, d.attempt,
                    s.ToString());
      coordinator_->WorkerExited(d.index, d.attempt, 127);
    }
  }
}

}  // namespace elasticbatch::aimaster
