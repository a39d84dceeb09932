#include "aimaster/job/local_job.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "aimaster/core/clock.h"
#include "aimaster/job/job_summary.h"
#include "aimaster/launch/job_directory.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "aimaster/launch/kubernetes/pod_launcher.h"
#include "aimaster/launch/launch_driver.h"
#include "aimaster/launch/local_launcher.h"
#include "aimaster/service/master_server.h"
#include "common/auth/token.h"
#include "common/rpc/client_channel.h"
#include "elasticbatch/environment_contract.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::aimaster {
namespace {

// Prints progress: a live line on a terminal, a log line now and then off it.
// Ticked by the master's tick thread only.
class ProgressReporter {
 public:
  ProgressReporter(const JobCoordinator* coordinator, absl::Duration log_interval)
      : coordinator_(coordinator),
        tty_(isatty(STDERR_FILENO) == 1),
        every_(tty_ ? absl::Milliseconds(250) : log_interval) {}
  void Tick() {
    const absl::Time now = absl::Now();
    if (now - last_ < every_) return;
    last_ = now;
    const std::string line = ProgressLine(coordinator_->Progress());
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
      drawn_ = true;
    } else {
      spdlog::info("{}", line);
    }
  }
  // Ends the live line so logs and the summary start on a fresh one.
  void Finish() {
    if (drawn_)
      std::fprintf(stderr, "\r\033[K%s\n",
                   ProgressLine(coordinator_->Progress()).c_str());
    drawn_ = false;
  }

 private:
  const JobCoordinator* coordinator_;
  const bool tty_;
  const absl::Duration every_;
  absl::Time last_ = absl::InfinitePast();
  bool drawn_ = false;
};

// The fleet's policy from the run flags.
absl::StatusOr<FleetOptions> FleetFromFlags(const RunFlags& run,
                                            absl::Duration heartbeat_interval) {
  absl::StatusOr<RestartPolicy> policy = ParseRestartPolicy(run.restart_policy);
  if (!policy.ok()) return policy.status();
  FleetOptions fleet;
  fleet.workers = static_cast<uint32_t>(run.workers);
  fleet.startup_timeout = run.startup_timeout;
  fleet.heartbeat_timeout = run.heartbeat_timeout;
  fleet.restart_policy = *policy;
  fleet.restart_backoff = run.restart_backoff;
  fleet.start_interval = run.start_interval;
  if (run.max_restarts < 0) {
    return absl::InvalidArgumentError("--max-restarts must be >= 0");
  }
  fleet.max_restarts = static_cast<uint32_t>(run.max_restarts);
  if (fleet.heartbeat_timeout <= heartbeat_interval) {
    return absl::InvalidArgumentError(
        "--heartbeat-timeout must be longer than --heartbeat-interval");
  }
  if (fleet.startup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--startup-timeout must be positive");
  }
  return fleet;
}

absl::StatusOr<std::optional<KubernetesLaunch>> KubernetesFromFlags(
    const RunFlags& run, const std::string& job_id_flag) {
  if (run.launcher == "local") {
    for (const auto& [flag, value] :
         {std::pair<const char*, const std::string*>{"pod-template", &run.pod_template},
          {"namespace", &run.kube_namespace},
          {"kubeconfig", &run.kubeconfig},
          {"advertise-host", &run.advertise_host}}) {
      if (!value->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " is for --launcher kubernetes"));
      }
    }
    return std::nullopt;
  }
  if (run.launcher != "kubernetes") {
    return absl::InvalidArgumentError(
        absl::StrCat("--launcher must be local or kubernetes, not '", run.launcher, "'"));
  }
  if (job_id_flag.empty()) {
    return absl::InvalidArgumentError(
        "--launcher kubernetes needs --job-id: it names the worker pods and must be "
        "unique in the namespace");
  }
  if (absl::Status s = kube::CheckJobNameForPods(job_id_flag); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--job-id: ", s.message()));
  }
  if (run.pod_template.empty()) {
    return absl::InvalidArgumentError("--launcher kubernetes needs --pod-template FILE");
  }
  KubernetesLaunch k;
  absl::StatusOr<nlohmann::json> pod_template = kube::LoadPodTemplate(run.pod_template);
  if (!pod_template.ok()) return pod_template.status();
  k.pod_template = *std::move(pod_template);
  absl::StatusOr<kube::KubeConfig> config = kube::ResolveKubeConfig(run.kubeconfig);
  if (!config.ok()) return config.status();
  k.config = *std::move(config);
  k.ns = run.kube_namespace.empty() ? k.config.default_namespace : run.kube_namespace;
  if (!run.pod_name.empty() && !run.pod_uid.empty()) {
    k.owner = kube::OwnerReference{"v1", "Pod", run.pod_name, run.pod_uid};
  }
  k.advertise_host = run.advertise_host.empty() ? run.pod_ip : run.advertise_host;
  if (k.advertise_host.empty()) {
    return absl::InvalidArgumentError(
        "--launcher kubernetes needs --advertise-host, the address worker pods reach "
        "the master at (default: $POD_IP from the downward API)");
  }
  k.bind_host = run.host;
  return k;
}

}  // namespace

absl::Status CheckWorkerCount(int32_t workers) {
  if (workers < 1 || workers > 10000) {
    return absl::InvalidArgumentError("--workers must be within 1..10000");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveJobDir(const std::string& job_dir,
                                          const std::string& tmpdir) {
  std::string root = job_dir;
  if (root.empty()) {
    std::string pattern =
        absl::StrCat(tmpdir.empty() ? "/tmp" : tmpdir, "/elasticbatch-job-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::FailedPreconditionError("cannot create a job directory under $TMPDIR");
    }
    root = pattern;
  }
  return std::filesystem::absolute(root).string();
}

JobFlags WithRunDefaults(JobFlags flags, const std::string& root) {
  for (std::string& o : flags.outputs) {
    if (o.find('=') == std::string::npos) o = absl::StrCat(o, "=", root, "/output/", o);
  }
  if (flags.state_dir.empty()) flags.state_dir = root + "/state";
  return flags;
}

absl::StatusOr<LocalJobOptions> LocalJobOptionsFromFlags(const JobFlags& job,
                                                         const RunFlags& run,
                                                         const std::string& root,
                                                         const std::string& command) {
  if (absl::Status s = CheckWorkerCount(run.workers); !s.ok()) return s;
  LocalJobOptions options;
  absl::StatusOr<std::optional<KubernetesLaunch>> kubernetes =
      KubernetesFromFlags(run, job.job_id);
  if (!kubernetes.ok()) return kubernetes.status();
  options.kubernetes = *std::move(kubernetes);
  if (command.empty() && !options.kubernetes) {
    return absl::InvalidArgumentError("usage: aimaster run [flags] -- CMD");
  }
  absl::StatusOr<JobConfig> config = JobConfigFromFlags(job);
  if (!config.ok()) return config.status();
  NameValueSyntax hp;
  hp.flag = "hp";
  absl::StatusOr<NameValues> hps = ParseNameValues(run.hyperparameters, hp);
  if (!hps.ok()) return hps.status();
  absl::StatusOr<FleetOptions> fleet =
      FleetFromFlags(run, config->coordinator.heartbeat_interval);
  if (!fleet.ok()) return fleet.status();
  config->coordinator.fleet = *fleet;
  options.config = *std::move(config);
  options.root = root;
  options.code_dir = run.code_dir;
  options.hyperparameters = *std::move(hps);
  options.command = command;
  options.stop_grace = run.stop_grace;
  options.progress_interval = run.progress_interval;
  options.port = run.port.value_or(0);
  return options;
}

LocalJob::LocalJob(cli::SignalWatcher* signals) : signals_(signals) {}

void LocalJob::Notify() {
  absl::MutexLock lock(&mu_);
  ++notifications_;  // the waiter's condition: something may have changed
}

bool LocalJob::WaitUntil(const std::function<bool()>& done, absl::Time deadline) {
  while (true) {
    uint64_t seen = 0;
    {
      absl::MutexLock lock(&mu_);
      seen = notifications_;
    }
    // Asked without mu_: `done` reads the coordinator, under its own lock.
    if (done()) return true;
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    // A Notify after `seen` wakes us at once; the backstop keeps a lost
    // notification from turning into a hang.
    absl::MutexLock lock(&mu_);
    const std::function<bool()> notified = [this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return notifications_ != seen;  // called by Await with mu_ held
    };
    mu_.AwaitWithDeadline(absl::Condition(&notified),
                          std::min(deadline, now + absl::Seconds(1)));
  }
}

absl::StatusOr<int> LocalJob::Run(const LocalJobOptions& options) {
  const JobConfig& config = options.config;
  const auto interrupted = [this] { return signals_->received(); };

  JobDirectorySpec spec;
  spec.root = options.root;
  spec.code_dir = options.code_dir;
  for (const ChannelSpec& c : config.inputs) spec.inputs.push_back({c.name, c.path});
  for (const ChannelSpec& c : config.outputs) spec.outputs.push_back({c.name, c.path});
  spec.hyperparameters = options.hyperparameters;
  spec.job_id = config.coordinator.job_id;
  spec.workers = config.coordinator.fleet->workers;
  spec.command = options.command;
  absl::StatusOr<JobDirectory> dir = JobDirectory::Create(spec);
  if (!dir.ok()) return dir.status();

  RealClock clock;
  absl::StatusOr<PreparedJob> job = PrepareJob(config, &clock, interrupted);
  if (absl::IsCancelled(job.status()) && interrupted()) {
    spdlog::warn("interrupted during set-up; no worker was started");
    return 128 + signals_->received_signal();
  }
  if (!job.ok()) return job.status();

  // The job's token: workers get it in their environment (never on a command
  // line), operators in a file only the owner can read. A job resumed in its
  // directory keeps its token, so that workers still running (pods a
  // restarted master adopts) stay authorized.
  const std::string token_file = options.root + "/aimaster.token";
  std::string token;
  if (absl::StatusOr<std::string> earlier = auth::ReadTokenFile(token_file);
      earlier.ok()) {
    token = *earlier;
    spdlog::info("reusing the job's token in {}", token_file);
  } else if (absl::IsNotFound(earlier.status())) {
    token = auth::GenerateToken();
  } else {
    return earlier.status();
  }
  // Also (re)asserts 0600 and refuses a symlink planted in its place.
  if (absl::Status s = auth::WriteTokenFile(token_file, token); !s.ok()) return s;

  // The workers: local processes, or pods (the token then reaches them
  // through a Secret, never in a pod spec).
  const KubernetesLaunch* const kubernetes =
      options.kubernetes ? &*options.kubernetes : nullptr;
  std::unique_ptr<kube::KubeClient> kube_client;
  std::unique_ptr<Launcher> launcher;
  LocalLauncher* local_launcher = nullptr;
  kube::PodLauncher* pod_launcher = nullptr;
  if (kubernetes != nullptr) {
    absl::StatusOr<std::unique_ptr<kube::KubeClient>> client =
        kube::KubeClient::Create(kubernetes->config);
    if (!client.ok()) return client.status();
    kube_client = *std::move(client);
    kube::PodLauncherOptions pod_options;
    pod_options.ns = kubernetes->ns;
    pod_options.job_name = config.coordinator.job_id;
    pod_options.pod_template = kubernetes->pod_template;
    pod_options.owner = kubernetes->owner;
    pod_options.secret_env = {{rpc::kTokenVar, token}};
    pod_options.stop_grace = options.stop_grace;
    auto pods = std::make_unique<kube::PodLauncher>(kube_client.get(), pod_options);
    if (absl::Status s = pods->Start(); !s.ok()) return s;
    pod_launcher = pods.get();
    launcher = std::move(pods);
  } else {
    LocalLauncherOptions launcher_options;
    launcher_options.stop_grace = options.stop_grace;
    auto local = std::make_unique<LocalLauncher>(launcher_options);
    local_launcher = local.get();
    launcher = std::move(local);
  }
  const auto stop_launcher = [&] {
    if (local_launcher != nullptr) local_launcher->StopAll();
    if (pod_launcher != nullptr) {
      if (absl::Status s = pod_launcher->Cleanup(); !s.ok()) {
        spdlog::error("cleaning up the worker pods: {}", std::string(s.message()));
      }
    }
  };
  std::string master_address;
  // `$PAI_USER_ARGS` becomes the quoted hyperparameter arguments: a value
  // with spaces stays one argument.
  const std::string command =
      options.command.empty()
          ? std::string()
          : ExpandUserArgs(options.command, UserArgs(options.hyperparameters));
  LaunchDriver driver(
      job->coordinator.get(), launcher.get(),
      [&](uint32_t index, uint32_t attempt) {
        LaunchSpec s;
        s.index = index;
        s.attempt = attempt;
        s.command = command;
        s.env = dir->WorkerEnvironment(index, attempt, master_address);
        s.log_path = dir->LogPath(index, attempt);
        if (kubernetes == nullptr) {
          s.working_dir = dir->usercode();
          s.env.push_back(absl::StrCat(rpc::kTokenVar, "=", token));
        } else if (!options.code_dir.empty()) {
          s.working_dir = dir->usercode();  // a volume the pods share
        }
        return s;
      },
      [this] { Notify(); });
  ProgressReporter progress(job->coordinator.get(), options.progress_interval);
  MasterServerOptions server_options;
  server_options.host = kubernetes != nullptr ? kubernetes->bind_host : "127.0.0.1";
  server_options.worker_token = token;
  server_options.port = options.port;
  server_options.metrics_address = config.metrics_address;
  server_options.max_message_bytes = config.coordinator.limits.max_message_bytes;
  server_options.on_tick = [&] {
    driver.Tick();
    progress.Tick();
    // The job's end shows on a tick at the latest.
    Notify();
  };
  absl::StatusOr<std::unique_ptr<MasterServer>> server =
      MasterServer::Start(job->coordinator.get(), job->journal.get(), server_options);
  if (!server.ok()) {
    stop_launcher();
    return server.status();
  }
  if (interrupted()) {
    (*server)->Shutdown();
    stop_launcher();
    spdlog::warn("interrupted during set-up; no worker was started");
    return 128 + signals_->received_signal();
  }
  if (kubernetes == nullptr) {
    master_address = absl::StrCat("127.0.0.1:", (*server)->port());
  } else {
    const std::string& host = kubernetes->advertise_host;
    master_address = absl::StrCat(
        host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]"
                                                                   : host,
        ":", (*server)->port());
  }

  const JobProgress start = job->coordinator->Progress();
  spdlog::info(
      "job {}: {} shards of {}, {} worker(s) running `{}`; master {}; job dir {}",
      config.coordinator.job_id, start.total_shards, config.sharded().path,
      config.coordinator.fleet->workers, options.command, master_address, options.root);
  spdlog::info("status: aimaster status --addr {} --token-file {}", master_address,
               token_file);
  if (start.committed_shards + start.quarantined_shards > 0) {
    spdlog::info("resuming: {} shards already committed, {} quarantined",
                 start.committed_shards, start.quarantined_shards);
  }
  signals_->OnSignal([&](int sig) {
    job->coordinator->Stop(absl::StrCat("interrupted by signal ", sig));
    Notify();
  });
  // The handler must not outlive the job it points at.
  absl::Cleanup forget_job = [&] { signals_->OnSignal(nullptr); };
  driver.Start();

  // Wait for the end of the data, then for the workers: running ones hear END
  // and exit 0; any still alive after the grace period are stopped.
  const std::function<bool()> ended = [&] { return job->coordinator->ended(); };
  const std::function<bool()> all_exited = [&] {
    return job->coordinator->AllWorkersExited();
  };
  WaitUntil(ended, absl::InfiniteFuture());
  const absl::Time ended_at = absl::Now();
  if (!WaitUntil(all_exited, ended_at + options.stop_grace)) {
    driver.StopAll("the job is over");
    WaitUntil(all_exited, ended_at + 2 * options.stop_grace + absl::Seconds(5));
  }
  (*server)->Shutdown();
  stop_launcher();
  progress.Finish();
  const int code = FinishJob(config, *job);
  PrintSummary(*job->coordinator, std::cout);
  if (absl::Status s =
          WriteSummaryJson(*job->coordinator, options.root + "/summary.json");
      !s.ok()) {
    spdlog::error("cannot write the summary: {}", s.ToString());
  }
  std::cout << "outputs: " << config.primary_output().path
            << "   logs: " << dir->logs_dir() << std::endl;
  const int sig = signals_->last_signal();
  return sig != 0 ? 128 + sig : code;
}

}  // namespace elasticbatch::aimaster
