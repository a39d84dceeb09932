// LocalJob: a whole ElasticBatch job on this machine (`aimaster run`): the job
// directory, the master on a loopback port, N worker processes driven by the
// coordinator's fleet decisions, live progress, and the summary at the end.
//
//   absl::StatusOr<LocalJobOptions> options =
//       LocalJobOptionsFromFlags(WithRunDefaults(job_flags, root), run_flags, root, cmd);
//   LocalJob job(&signals);
//   absl::StatusOr<int> exit_code = job.Run(*options);
//
// The options are a function of two plain flag structs (JobFlags, RunFlags),
// so that the command line only reads its flags and reports.
//
// Thread-safe: Run() on one thread; signals arrive on the watcher's.
#ifndef ELASTICBATCH_AIMASTER_JOB_LOCAL_JOB_H_
#define ELASTICBATCH_AIMASTER_JOB_LOCAL_JOB_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/job/job_config.h"
#include "aimaster/job/name_values.h"
#include "aimaster/launch/kubernetes/kube_config.h"
#include "aimaster/launch/kubernetes/pod_template.h"
#include "common/cli/signal_watcher.h"

namespace elasticbatch::aimaster {

// The flags of `aimaster run` besides the job flags; each default is the flag's.
struct RunFlags {
  // --workers: instances to launch. Default: 1.
  int32_t workers = 1;
  // --hp NAME=VALUE entries. Default: none.
  std::vector<std::string> hyperparameters;
  // --job-dir. Default: empty (a fresh directory under $TMPDIR).
  std::string job_dir;
  // --code-dir, linked as usercode/. Default: empty (the current directory).
  std::string code_dir;
  // --startup-timeout. Default: 60s.
  absl::Duration startup_timeout = absl::Seconds(60);
  // --heartbeat-timeout. Default: 30s.
  absl::Duration heartbeat_timeout = absl::Seconds(30);
  // --max-restarts per instance. Default: 3.
  int32_t max_restarts = 3;
  // --restart-policy. Default: "on-failure".
  std::string restart_policy = "on-failure";
  // --restart-backoff. Default: 1s.
  absl::Duration restart_backoff = absl::Seconds(1);
  // --start-interval. Default: 0 (all at once).
  absl::Duration start_interval = absl::ZeroDuration();
  // --stop-grace. Default: 10s.
  absl::Duration stop_grace = absl::Seconds(10);
  // --progress-interval (off a terminal). Default: 5s.
  absl::Duration progress_interval = absl::Seconds(5);
  // --port when given explicitly; unset: a free port. Default: unset.
  std::optional<int32_t> port;
  // --launcher: "local" (processes here) or "kubernetes" (pods). Default: local.
  std::string launcher = "local";
  // --pod-template (kubernetes): the worker pod's template file. Required there.
  std::string pod_template;
  // --namespace (kubernetes). Default: empty, the configuration's namespace.
  std::string kube_namespace;
  // --kubeconfig (kubernetes). Default: empty, $KUBECONFIG or in-cluster.
  std::string kubeconfig;
  // --advertise-host (kubernetes): how pods reach the master. Default: empty,
  // $POD_IP.
  std::string advertise_host;
  // --host (kubernetes): the address the master listens on. Default: 0.0.0.0.
  std::string host = "0.0.0.0";
  // From the downward API when the master runs in a pod: $POD_NAME, $POD_UID
  // (the owner of the worker pods) and $POD_IP. Default: empty.
  std::string pod_name;
  std::string pod_uid;
  std::string pod_ip;
};

// `aimaster run --launcher kubernetes`: where the worker pods go and how they
// reach the master.
struct KubernetesLaunch {
  kube::KubeConfig config;
  std::string ns;
  // The template's pod part (kube::PodPartOfTemplate).
  nlohmann::json pod_template;
  std::optional<kube::OwnerReference> owner;
  // The master listens here, and pods reach it at advertise_host:port.
  std::string bind_host;
  std::string advertise_host;
};

struct LocalJobOptions {
  // The job; config.coordinator.fleet is set. Required.
  JobConfig config;
  // The job directory (absolute). Required.
  std::string root;
  // The user code. Default: empty, the current directory.
  std::string code_dir;
  // The workers' hyperparameters, in order. Default: none.
  NameValues hyperparameters;
  // Each worker runs `sh -c command` in usercode/. Required.
  std::string command;
  // Between SIGTERM and SIGKILL, and how long exited workers are waited for.
  // Default: 10s.
  absl::Duration stop_grace = absl::Seconds(10);
  // How often progress is logged off a terminal. Default: 5s.
  absl::Duration progress_interval = absl::Seconds(5);
  // The master's port; 0 picks a free one. Default: 0.
  int port = 0;
  // Set: the workers are pods (--launcher kubernetes); the command, when not
  // empty, replaces the container's own. Default: unset, local processes.
  std::optional<KubernetesLaunch> kubernetes;
};

// INVALID_ARGUMENT unless 1 <= workers <= 10000 (checked before the job
// directory is made).
absl::Status CheckWorkerCount(int32_t workers);

// --job-dir made absolute, or a fresh directory under $TMPDIR (`tmpdir`;
// empty: /tmp). FAILED_PRECONDITION when it cannot be created.
absl::StatusOr<std::string> ResolveJobDir(const std::string& job_dir,
                                          const std::string& tmpdir);

// The job flags with run's defaults: `--output NAME` without a path is a
// directory in the job directory, and the state lives in <root>/state.
JobFlags WithRunDefaults(JobFlags flags, const std::string& root);

// Validates both flag sets into the job's options (reading the pod template
// and the Kubernetes configuration for --launcher kubernetes).
// INVALID_ARGUMENT names the bad flag.
absl::StatusOr<LocalJobOptions> LocalJobOptionsFromFlags(const JobFlags& job,
                                                         const RunFlags& run,
                                                         const std::string& root,
                                                         const std::string& command);

class LocalJob {
 public:
  // `signals` (not owned, outlives the job) interrupts the set-up and stops
  // the running job.
  explicit LocalJob(cli::SignalWatcher* signals);

  // Runs the job to its end: 0 succeeded, 1 failed, 128+N interrupted by
  // signal N. An error when the job could not be set up (nothing ran; a
  // configuration error).
  absl::StatusOr<int> Run(const LocalJobOptions& options);

 private:
  // Wakes WaitUntil: the master ticked or a worker exited.
  void Notify();
  // Blocks until `done` holds (asked again after each Notify, and at least
  // once a second) or `deadline`; returns whether it held.
  bool WaitUntil(const std::function<bool()>& done, absl::Time deadline);

  cli::SignalWatcher* const signals_;
  absl::Mutex mu_;
  uint64_t notifications_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_JOB_LOCAL_JOB_H_
