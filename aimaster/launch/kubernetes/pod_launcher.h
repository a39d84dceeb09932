// PodLauncher: worker attempts as Kubernetes pods (the plain-Kubernetes mode
// of `aimaster run --launcher kubernetes`).
//
// Each attempt is a pod `<job>-worker-<i>-<k>` built from the user's template
// (pod_template.h), created on a small pool of threads so that the master's
// tick never waits for the API server. A watch of the job's pods (label
// elasticbatch.io/job-name) reports their ends: the worker container's exit
// code, 137 for a pod evicted or deleted before it ended. Stop deletes the
// pod with the stop grace as its grace period (the kubelet sends SIGTERM, then
// SIGKILL). The tail of each ended pod's log is appended to the attempt's
// LaunchSpec::log_path, since the pods go at the end. Variables named in `secret_env`
// (the job token) go into a Secret
// `<job>-worker-env` and reach pods through secretKeyRef, never in a pod spec.
//
// Adoption: a pod of the same name already there (the master restarted in
// the same pod) is taken over while it runs; an ended or terminating one is
// removed and the attempt created afresh.
//
// Cleanup() deletes every pod of the job (ended ones too) and the Secret and
// waits until the watch has seen the pods go, so no pod outlives the job.
//
//   PodLauncher launcher(client, options);
//   RETURN_IF_ERROR(launcher.Start());   // the Secret and the watch
//   launcher.SetEventHandler(...);  launcher.Launch(spec);  ...
//   launcher.Cleanup();
//
// Thread-safe. Events arrive on the launcher's threads, one at a time.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_LAUNCHER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_LAUNCHER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/launch/kubernetes/informer.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "aimaster/launch/kubernetes/pod_template.h"
#include "aimaster/launch/launcher.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::kube {

struct PodLauncherOptions {
  // Where the pods go. Required.
  std::string ns = "";
  // The job's id: pod names and the elasticbatch.io/job-name label (a DNS
  // label: lower-case letters, digits, '-'; at most 40 characters). Required.
  std::string job_name = "";
  // The template's pod part (PodPartOfTemplate). Required.
  nlohmann::json pod_template = nullptr;
  // Owner of every pod and the Secret (the master's pod); none: pods are
  // cleaned up by Cleanup() only.
  std::optional<OwnerReference> owner = std::nullopt;
  // NAME -> value: variables passed through the job's Secret.
  std::map<std::string, std::string> secret_env = {};
  // Pod deletion grace period when an attempt is stopped. Default: 10s.
  absl::Duration stop_grace = absl::Seconds(10);
  // Concurrent pod creations. Default: 4.
  int create_threads = 4;
  // How long Cleanup() waits for the pods to be gone. Default: stop_grace + 30s.
  std::optional<absl::Duration> cleanup_timeout = std::nullopt;
};

// Every API call PodLauncher makes, as the Role rules it needs in its
// namespace (core API group): resource -> verbs, sorted.
// deploy/kubernetes/rbac.yaml grants exactly these; tests check both the file
// and the calls against this table.
inline const std::map<std::string, std::vector<std::string>> kPodLauncherRbacRules = {
    {"pods", {"create", "delete", "get", "list", "watch"}},
    {"pods/log", {"get"}},
    {"secrets", {"create", "delete", "patch"}},
};

// INVALID_ARGUMENT unless `name` can prefix our pod names.
absl::Status CheckJobNameForPods(const std::string& name);

class PodLauncher final : public aimaster::Launcher {
 public:
  // `client` is not owned and must outlive the launcher.
  PodLauncher(KubeClient* client, PodLauncherOptions options);
  ~PodLauncher() override;
  PodLauncher(const PodLauncher&) = delete;
  PodLauncher& operator=(const PodLauncher&) = delete;

  // Creates (or updates) the Secret and starts the watch; returns once the
  // watch has listed the job's pods. The error of the Secret's creation or of
  // the first list (a missing RBAC rule, say), in one line.
  absl::Status Start();

  void SetEventHandler(EventHandler handler) override;
  // Queues the attempt's pod; kStarted follows its creation, or kExited with
  // 127 when it cannot be created.
  absl::Status Launch(const aimaster::LaunchSpec& spec) override;
  void Stop(uint32_t index, uint32_t attempt) override;
  size_t live() const override;

  // Deletes every live attempt's pod and waits until their ends are reported
  // (up to the grace period and a little more).
  void StopAll();
  // StopAll, then deletes every pod of the job and the Secret and waits (up to
  // cleanup_timeout) until no pod of the job is left. Idempotent.
  absl::Status Cleanup();

  // The pod name of an attempt.
  std::string PodName(uint32_t index, uint32_t attempt) const;

 private:
  enum class State { kQueued, kCreating, kCreated, kEnded };
  struct Attempt {
    uint32_t index = 0;
    uint32_t attempt = 0;
    State state = State::kQueued;
    std::string uid = "";
    aimaster::LaunchSpec spec;
    bool stop_requested = false;
    bool started_reported = false;
    // An end seen before kStarted went out.
    std::optional<int> pending_exit = std::nullopt;
    std::string node = "";
  };

  void CreateLoop();
  // Creates the pod of `name` (adopting or replacing one already there).
  absl::StatusOr<std::string> CreatePod(const std::string& name,
                                        const aimaster::LaunchSpec& spec);
  void OnPod(const nlohmann::json& pod, bool deleted);
  // Marks the attempt ended and reports it (outside the lock).
  void Report(const aimaster::LauncherEvent& event);
  void DeletePod(const std::string& name, const std::string& uid, int64_t grace_seconds);
  // Appends the tail of an ended pod's log to the attempt's log file.
  void SaveLog(const std::string& pod, const std::string& path,
               const aimaster::LauncherEvent& end);

  KubeClient* const client_;
  const PodLauncherOptions options_;
  const std::string secret_name_;
  std::unique_ptr<Informer> informer_;
  std::vector<std::thread> creators_;

  mutable absl::Mutex mu_;
  EventHandler handler_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Attempt> attempts_ ABSL_GUARDED_BY(mu_);  // by pod name
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Pods of the job the watch sees now, by name (ours or not).
  std::map<std::string, std::string> seen_pods_ ABSL_GUARDED_BY(mu_);  // name -> uid
  // Uids of pods the watch saw deleted (a deletion may come before Create's
  // answer tells us the uid).
  std::set<std::string> deleted_uids_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cleaned_up_ ABSL_GUARDED_BY(mu_) = false;
  // Off once the Role turned out not to allow reading pod logs.
  bool save_logs_ ABSL_GUARDED_BY(mu_) = true;
  absl::Mutex report_mu_;  // one event at a time, in order
};

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_LAUNCHER_H_
