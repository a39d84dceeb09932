// aimaster serve: the standalone master; workers come from elsewhere.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "aimaster/cli/commands.h"
#include "aimaster/cli/job_flags.h"
#include "aimaster/cli/security_flags.h"
#include "aimaster/job/job_config.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "aimaster/launch/kubernetes/kube_config.h"
#include "aimaster/launch/kubernetes/kubedl_master.h"
#include "aimaster/service/master_server.h"
#include "common/cli/signal_watcher.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(int32_t, port, 23456,
          "Port to serve workers on; 0 picks a free one (run picks a free one unless "
          "--port is given)");
ABSL_FLAG(
    std::string, host, "0.0.0.0",
    "Interface to listen on; a non-loopback one needs --token-file (or --insecure)");
ABSL_FLAG(
    absl::Duration, end_grace, absl::Seconds(10),
    "After the job ends, keep answering END this long for workers still to hear it");

ABSL_FLAG(bool, kubedl, false,
          "serve: KubeDL mode: create the Service <JOB_NAME>-aimaster and open KubeDL's "
          "gate (aimaster: ready) once listening (default: on when KubeDL's "
          "JOB_TYPE=ELASTICBATCH is set)");
ABSL_DECLARE_FLAG(std::string, kubeconfig);

namespace elasticbatch::aimaster {

int ServeCommand(const cli::ParsedCommandLine& args) {
  // At once: a SIGTERM during a long set-up (input scan, journal replay) must
  // stop it, not wait for it.
  cli::SignalWatcher signals;
  const auto interrupted = [&] { return signals.received(); };
  const auto interrupted_exit = [&] { return 128 + signals.received_signal(); };
  if (args.positional.size() > 1 || !args.after_dashes.empty()) {
    return cli::ReportUsageError(
        "aimaster", absl::InvalidArgumentError(
                        "serve takes no arguments besides flags (did you mean 'run'?)"));
  }
  absl::StatusOr<JobConfig> config = JobConfigFromFlags(ReadJobFlags());
  if (!config.ok()) return cli::ReportUsageError("aimaster", config.status());
  const int32_t port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    return cli::ReportUsageError(
        "aimaster", absl::InvalidArgumentError("--port must be within 0..65535"));
  }
  MasterServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = port;
  options.metrics_address = config->metrics_address;
  options.max_message_bytes = config->coordinator.limits.max_message_bytes;
  // Before the input scan, which may take long: a refusal comes at once.
  if (absl::Status s = ApplyServeSecurityFlags(&options); !s.ok()) {
    return cli::ReportUsageError("aimaster", s);
  }

  // KubeDL mode: checked before the input scan too.
  absl::StatusOr<std::optional<kube::KubeDLJob>> kubedl_job =
      kube::KubeDLJobFromEnvironment([](const char* name) { return std::getenv(name); });
  if (!kubedl_job.ok()) return cli::ReportUsageError("aimaster", kubedl_job.status());
  if (absl::GetFlag(FLAGS_kubedl) && !kubedl_job->has_value()) {
    return cli::ReportUsageError(
        "aimaster", absl::InvalidArgumentError(
                        "--kubedl needs KubeDL's environment on the AIMaster pod: "
                        "JOB_TYPE=ELASTICBATCH, JOB_NAME and NAMESPACE"));
  }
  std::unique_ptr<kube::KubeClient> kube_client;
  if (kubedl_job->has_value()) {
    absl::StatusOr<kube::KubeConfig> kube_config =
        kube::ResolveKubeConfig(absl::GetFlag(FLAGS_kubeconfig));
    if (!kube_config.ok()) return cli::ReportUsageError("aimaster", kube_config.status());
    absl::StatusOr<std::unique_ptr<kube::KubeClient>> client =
        kube::KubeClient::Create(*std::move(kube_config));
    if (!client.ok()) return cli::ReportUsageError("aimaster", client.status());
    kube_client = *std::move(client);
  }

  RealClock clock;
  absl::StatusOr<PreparedJob> job = PrepareJob(*config, &clock, interrupted);
  if (absl::IsCancelled(job.status()) && interrupted()) {
    spdlog::warn("interrupted during set-up; nothing was served");
    return interrupted_exit();
  }
  if (!job.ok()) return cli::ReportUsageError("aimaster", job.status());

  absl::StatusOr<std::unique_ptr<MasterServer>> server =
      MasterServer::Start(job->coordinator.get(), job->journal.get(), options);
  if (!server.ok()) return cli::ReportUsageError("aimaster", server.status());
  if (interrupted()) {
    (*server)->Shutdown();
    spdlog::warn("interrupted during set-up; nothing was served");
    return interrupted_exit();
  }
  signals.OnSignal([&](int sig) {
    // SIGHUP is the operator's "reload": the TLS files are watched anyway;
    // this checks them now and says what will be served.
    if (sig == SIGHUP) {
      if (options.tls.cert_file.empty()) {
        spdlog::info("SIGHUP: no TLS files to reload");
      } else {
        (*server)->CheckTlsFiles().IgnoreError();  // logged either way
      }
      return;
    }
    spdlog::warn("signal {}: stopping", sig);
    (*server)->RequestShutdown();
  });
  // The handler must not outlive the server it points at.
  absl::Cleanup forget_server = [&] { signals.OnSignal(nullptr); };
  std::cout << "listening on " << (*server)->address() << std::endl;
  if (kube_client != nullptr) {
    // Workers find the master through the Service; KubeDL creates them once
    // the gate is open.
    const kube::KubeDLJob& kubedl = **kubedl_job;
    absl::StatusOr<kube::KubeDLAnnouncement> announced =
        kube::AnnounceMaster(kube_client.get(), kubedl, (*server)->port());
    if (!announced.ok()) {
      (*server)->Shutdown();
      return cli::ReportUsageError("aimaster", announced.status());
    }
    spdlog::info("KubeDL job {}/{}: Service {} {}; gate aimaster=ready {}", kubedl.ns,
                 kubedl.name, kube::MasterServiceName(kubedl.name), announced->service,
                 announced->gate_opened ? "opened" : "was already open");
  }

  const JobProgress start = job->coordinator->Progress();
  spdlog::info("job {}: {} shards of {} ({}), {} already committed, {} quarantined{}",
               config->coordinator.job_id, start.total_shards, config->sharded().path,
               config->mode == ShardingMode::kRecords ? "records" : "bytes",
               start.committed_shards, start.quarantined_shards,
               job->replay.previous_opens > 0
                   ? absl::StrCat(" (resumed from ", config->state_dir, ")")
                   : std::string());

  absl::Status ended = (*server)->WaitForEnd(absl::GetFlag(FLAGS_end_grace));
  (*server)->Shutdown();
  if (!ended.ok()) {
    spdlog::critical("stopping: {}", std::string(ended.message()));
    return cli::kExitFailure;
  }
  if (!job->coordinator->ended()) {
    // Interrupted: progress is in the journal; a restart resumes.
    const int sig = signals.last_signal();
    spdlog::warn("interrupted; progress is kept in {} for a restart", config->state_dir);
    return sig != 0 ? 128 + sig : cli::kExitFailure;
  }
  return FinishJob(*config, *job);
}

}  // namespace elasticbatch::aimaster
