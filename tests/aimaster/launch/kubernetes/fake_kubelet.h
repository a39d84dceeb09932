// FakeKubelet: the node side of a test cluster. It watches the pods of a
// namespace on a FakeApiServer and runs each one's worker container as a real
// local process (container command + args, the pod's env with value,
// secretKeyRef and fieldRef resolved, workingDir), writing pod status back
// through the server the way a kubelet does:
//
//   scheduled (spec.nodeName) + Pending -> (after pending_for) Running with
//   podIP 127.0.0.1 -> Succeeded / Failed with the container's exit code and
//   reason ("Completed", "Error").
//
// A pod marked for deletion (deletionTimestamp; the server's
// graceful_pod_deletion) gets SIGTERM, SIGKILL after its grace period, and is
// then removed from the server; a pod removed outright is killed. Only the
// worker container runs (the one named `elasticbatch`, or the first); the
// image is ignored.
//
//   FakeKubelet kubelet(&server, {.ns = "ns", .log_dir = dir});
//   ASSERT_TRUE(kubelet.Start().ok());
//
// Thread-safe; the destructor kills every process it started.
#ifndef ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_KUBELET_H_
#define ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_KUBELET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/launch/kubernetes/informer.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "aimaster/launch/local_launcher.h"
#include "nlohmann/json.hpp"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"

namespace elasticbatch::testing {

struct FakeKubeletOptions {
  std::string ns = "";
  // Each pod's output goes to <log_dir>/<pod>.log; also the working
  // directory of containers without workingDir. Required.
  std::string log_dir = "";
  // How long a pod stays Pending before its container starts; nullopt: for
  // ever (never schedulable). Default: not at all.
  std::function<std::optional<absl::Duration>(const nlohmann::json& pod)> pending_for = {};
  // The bearer token the server wants, if any.
  std::string token = "";
  // The longest grace a deleted pod gets, whatever it asks for. Default: 10s.
  absl::Duration max_grace = absl::Seconds(10);
};

// One container run, for assertions.
struct KubeletRun {
  std::string pod = "";
  std::string uid = "";
  absl::Time started = absl::InfinitePast();
  std::optional<int> exit_code = std::nullopt;
};

class FakeKubelet {
 public:
  FakeKubelet(FakeApiServer* server, FakeKubeletOptions options);
  ~FakeKubelet();
  FakeKubelet(const FakeKubelet&) = delete;
  FakeKubelet& operator=(const FakeKubelet&) = delete;

  absl::Status Start();
  // Kills every process and stops watching.
  void Stop();

  std::vector<KubeletRun> Runs() const;
  // Containers running now.
  int running() const;

 private:
  struct PodState {
    std::string uid;
    uint32_t id = 0;  // the local launcher's index
    bool started = false;
    bool ended = false;
    bool terminating = false;
    absl::Time start_at = absl::InfiniteFuture();
  };

  void OnPod(const nlohmann::json& pod, bool deleted);
  void OnProcess(const aimaster::LauncherEvent& event);
  void TimerLoop();
  // Starts the container of `name` (status Running, or Failed when it
  // cannot start).
  void StartContainer(const std::string& name);
  std::string PodsPath() const;

  FakeApiServer* const server_;
  const FakeKubeletOptions options_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<kube::Informer> informer_;
  std::unique_ptr<aimaster::LocalLauncher> launcher_;
  std::thread timer_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, PodState> pods_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, std::string> by_id_ ABSL_GUARDED_BY(mu_);
  std::vector<KubeletRun> runs_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_KUBELET_H_
