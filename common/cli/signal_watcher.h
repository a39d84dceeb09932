// Turns SIGINT, SIGTERM and SIGHUP into a callback on a dedicated thread.
//
//   BlockTerminationSignals();            // first thing in main(), before threads
//   SignalWatcher signals;                // at once: set-up can be interrupted too
//   ... long set-up; return early when signals.received() ...
//   signals.OnSignal([&](int sig) { server->RequestShutdown(); });
//
// The handler runs once per signal received; a handler installed after a
// signal arrived runs at once for it. Thread-safe.
#ifndef ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_
#define ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_

#include <atomic>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace elasticbatch::cli {

// Blocks the termination signals in the calling thread (and so in every thread
// it starts later) and ignores SIGPIPE. Call before any thread exists.
void BlockTerminationSignals();

class SignalWatcher {
 public:
  SignalWatcher();
  explicit SignalWatcher(std::function<void(int)> on_signal);
  ~SignalWatcher();

  // Replaces the handler; runs it at once when a signal came before.
  void OnSignal(std::function<void(int)> on_signal);
  // The last signal received, 0 if none.
  int last_signal() const { return last_signal_.load(); }
  // True once a termination signal was received or is pending for the
  // process (sent, but not yet taken by the watcher thread), so a check right
  // after a kill() sees it.
  bool received() const;
  // The signal received() saw (0 if none). Once it returned a signal it never
  // returns 0 again, even while the watcher thread is between taking the
  // signal and recording it.
  int received_signal() const;

 private:
  void Deliver(int sig);

  absl::Mutex mu_;
  std::function<void(int)> on_signal_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> last_signal_{0};
  mutable std::atomic<int> seen_{0};
  std::thread thread_;
};

}  // namespace elasticbatch::cli

#endif  // ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_
