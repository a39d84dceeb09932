#include "common/cli/signal_watcher.h"

#include <pthread.h>
#include <signal.h>

namespace elasticbatch::cli {
namespace {

// SIGUSR2 only wakes the watcher thread for shutdown.
sigset_t WatchedSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);
  return set;
}

// A termination signal sent to the process but not yet taken by sigwait.
int PendingTerminationSignal() {
  sigset_t pending;
  sigemptyset(&pending);
  if (sigpending(&pending) != 0) return 0;
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (sigismember(&pending, sig) == 1) return sig;
  }
  return 0;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = WatchedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

SignalWatcher::SignalWatcher() : SignalWatcher(nullptr) {}

SignalWatcher::SignalWatcher(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  thread_ = std::thread([this] {
    sigset_t set = WatchedSignals();
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR2) return;
      Deliver(sig);
    }
  });
}

SignalWatcher::~SignalWatcher() {
  pthread_kill(thread_.native_handle(), SIGUSR2);
  thread_.join();
}

void SignalWatcher::Deliver(int sig) {
  last_signal_.store(sig);
  absl::MutexLock lock(&mu_);
  if (on_signal_) on_signal_(sig);
}

void SignalWatcher::OnSignal(std::function<void(int)> on_signal) {
  absl::MutexLock lock(&mu_);
  on_signal_ = std::move(on_signal);
  if (const int sig = last_signal_.load(); sig != 0 && on_signal_) on_signal_(sig);
}

bool SignalWatcher::received() const { return received_signal() != 0; }

int SignalWatcher::received_signal() const {
  int sig = last_signal_.load();
  if (sig == 0) sig = PendingTerminationSignal();
  if (sig == 0) return seen_.load();
  seen_.store(sig);
  return sig;
}

}  // namespace elasticbatch::cli
