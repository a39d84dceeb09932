// Turns SIGINT, SIGTERM and SIGHUP into a callback on a dedicated thread.
//
//   BlockTerminationSignals();            // first thing in main(), before threads
//   SignalWatcher watcher([&](int sig) { server->RequestShutdown(); });
//
// The callback runs once per signal received. Thread-safe.
#ifndef ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_
#define ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_

#include <atomic>
#include <functional>
#include <thread>

namespace elasticbatch::cli {

// Blocks the termination signals in the calling thread (and so in every thread
// it starts later) and ignores SIGPIPE. Call before any thread exists.
void BlockTerminationSignals();

class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal);
  ~SignalWatcher();
  // The last signal received, 0 if none.
  int last_signal() const { return last_signal_.load(); }

 private:
  std::function<void(int)> on_signal_;
  std::atomic<int> last_signal_{0};
  std::thread thread_;
};

}  // namespace elasticbatch::cli

#endif  // ELASTICBATCH_TOOLS_CLI_SIGNAL_WATCHER_H_
