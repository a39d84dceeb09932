// aimaster run: a whole ElasticBatch job on this machine (the embedded
// default). Wiring only: the flags are read once into plain structs, and
// LocalJob (aimaster/job/) runs the job they describe.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "aimaster/cli/commands.h"
#include "aimaster/cli/job_flags.h"
#include "aimaster/cli/security_flags.h"
#include "aimaster/job/local_job.h"
#include "common/cli/signal_watcher.h"
#include "elasticbatch/environment_contract.h"

ABSL_DECLARE_FLAG(int32_t, port);
ABSL_DECLARE_FLAG(std::string, host);

// The help's "(default: ...)" comes from the flag's default value; a flag
// whose empty value stands for another default says which.
ABSL_FLAG(int32_t, workers, 1, "run: worker instances to launch");
ABSL_FLAG(
    std::vector<std::string>, hp, {},
    "run: hyperparameter NAME=VALUE (repeatable); workers see PAI_HPS, PAI_HPS_<NAME>, "
    "PAI_USER_ARGS and hyperparameters.json");
ABSL_FLAG(std::string, job_dir, "",
          "run: the job directory (container layout, logs, state) (default: a fresh one "
          "under $TMPDIR)");
ABSL_FLAG(std::string, code_dir, "",
          "run: the user code, linked as usercode/ (default: .)");
ABSL_FLAG(absl::Duration, startup_timeout, absl::Seconds(60),
          "run: a worker not registered this long after its launch gets a backup");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(30),
          "run: a registered worker silent this long has failed and is restarted");
ABSL_FLAG(int32_t, max_restarts, 3, "run: restarts per worker instance");
ABSL_FLAG(std::string, restart_policy, "on-failure",
          "run: on-failure, exit-code (KubeDL: 130/137/138/143 retryable, others "
          "permanent) or never");
ABSL_FLAG(absl::Duration, restart_backoff, absl::Seconds(1),
          "run: wait before a restart; doubles with each further restart (max 30s)");
ABSL_FLAG(absl::Duration, start_interval, absl::ZeroDuration(),
          "run: launch the workers this far apart (0: all at once)");
ABSL_FLAG(absl::Duration, stop_grace, absl::Seconds(10),
          "run: between SIGTERM and SIGKILL when a worker is stopped");
ABSL_FLAG(absl::Duration, progress_interval, absl::Seconds(5),
          "run: how often progress is logged when stderr is not a terminal");
ABSL_FLAG(
    std::string, launcher, "local",
    "run: where workers run: local (processes here) or kubernetes (a pod per attempt "
    "from --pod-template)");
ABSL_FLAG(std::string, pod_template, "",
          "run --launcher kubernetes: the worker pod's template (a Pod or PodTemplate, "
          "YAML or JSON); the worker is its container named elasticbatch, or the first");
ABSL_FLAG(std::string, namespace, "",
          "run --launcher kubernetes: the namespace of the worker pods (default: the "
          "kubeconfig's, or the pod's own)");
ABSL_FLAG(std::string, kubeconfig, "",
          "run --launcher kubernetes, serve --kubedl: the cluster's kubeconfig (default: $KUBECONFIG, "
          "else the pod's service account)");
ABSL_FLAG(std::string, advertise_host, "",
          "run --launcher kubernetes: the host worker pods reach the master at "
          "(default: $POD_IP)");

namespace elasticbatch::aimaster {
namespace {

constexpr char kRun[] = "aimaster";

RunFlags ReadRunFlags() {
  RunFlags f;
  f.workers = absl::GetFlag(FLAGS_workers);
  f.hyperparameters = absl::GetFlag(FLAGS_hp);
  f.job_dir = absl::GetFlag(FLAGS_job_dir);
  f.code_dir = absl::GetFlag(FLAGS_code_dir);
  f.startup_timeout = absl::GetFlag(FLAGS_startup_timeout);
  f.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  f.max_restarts = absl::GetFlag(FLAGS_max_restarts);
  f.restart_policy = absl::GetFlag(FLAGS_restart_policy);
  f.restart_backoff = absl::GetFlag(FLAGS_restart_backoff);
  f.start_interval = absl::GetFlag(FLAGS_start_interval);
  f.stop_grace = absl::GetFlag(FLAGS_stop_grace);
  f.progress_interval = absl::GetFlag(FLAGS_progress_interval);
  // A local job picks a free port unless one is asked for.
  const absl::CommandLineFlag& port = absl::GetFlagReflectionHandle(FLAGS_port);
  if (port.CurrentValue() != port.DefaultValue()) f.port = absl::GetFlag(FLAGS_port);
  f.launcher = absl::GetFlag(FLAGS_launcher);
  f.pod_template = absl::GetFlag(FLAGS_pod_template);
  f.kube_namespace = absl::GetFlag(FLAGS_namespace);
  f.kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
  f.advertise_host = absl::GetFlag(FLAGS_advertise_host);
  f.host = absl::GetFlag(FLAGS_host);
  // The downward API, when the master runs in a pod.
  for (const auto& [var, field] :
       {std::pair<const char*, std::string*>{"POD_NAME", &f.pod_name},
        {"POD_UID", &f.pod_uid},
        {"POD_IP", &f.pod_ip}}) {
    const char* value = std::getenv(var);
    if (value != nullptr) *field = value;
  }
  return f;
}

}  // namespace

int RunCommand(const cli::ParsedCommandLine& args) {
  // At once: a SIGTERM during set-up must stop it, not wait for it.
  cli::SignalWatcher signals;
  if (args.after_dashes.empty() && absl::GetFlag(FLAGS_launcher) != "kubernetes") {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("usage: aimaster run [flags] -- CMD"));
  }
  if (args.positional.size() > 1) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError(absl::StrCat(
                  "unexpected argument '", args.positional[1], "' (CMD goes after --)")));
  }
  if (absl::Status s = RejectSecurityFlags("run"); !s.ok()) {
    return cli::ReportUsageError(kRun, s);
  }
  // Each word after `--` arrives as given (one word is a shell command).
  const std::string command = args.after_dashes.empty()
                                  ? std::string()
                                  : ShellCommandFromWords(args.after_dashes);
  const RunFlags run = ReadRunFlags();
  if (absl::Status s = CheckWorkerCount(run.workers); !s.ok()) {
    return cli::ReportUsageError(kRun, s);
  }
  // The job directory first: default output and state locations live in it.
  const char* tmpdir = std::getenv("TMPDIR");
  absl::StatusOr<std::string> root =
      ResolveJobDir(run.job_dir, tmpdir != nullptr ? tmpdir : "");
  if (!root.ok()) return cli::ReportUsageError(kRun, root.status());
  absl::StatusOr<LocalJobOptions> options = LocalJobOptionsFromFlags(
      WithRunDefaults(ReadJobFlags(), *root), run, *root, command);
  if (!options.ok()) return cli::ReportUsageError(kRun, options.status());
  LocalJob job(&signals);
  absl::StatusOr<int> exit_code = job.Run(*options);
  if (!exit_code.ok()) return cli::ReportUsageError(kRun, exit_code.status());
  return *exit_code;
}

}  // namespace elasticbatch::aimaster
