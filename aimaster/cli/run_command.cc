// aimaster run: a whole ElasticBatch job on this machine (the embedded
// default): the master plus N local worker processes, live progress, and a
// summary. Wiring only: the decisions are the core's.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "aimaster/cli/commands.h"
#include "aimaster/cli/job_config.h"
#include "aimaster/core/job_outputs.h"
#include "aimaster/launch/job_directory.h"
#include "aimaster/launch/launch_driver.h"
#include "aimaster/launch/local_launcher.h"
#include "aimaster/service/master_server.h"
#include "common/cli/signal_watcher.h"
#include "elasticbatch/environment_contract.h"
#include "spdlog/spdlog.h"

ABSL_DECLARE_FLAG(std::vector<std::string>, input);
ABSL_DECLARE_FLAG(std::vector<std::string>, output);
ABSL_DECLARE_FLAG(std::string, state_dir);
ABSL_DECLARE_FLAG(int32_t, port);

ABSL_FLAG(int32_t, workers, 1, "run: worker instances to launch");
ABSL_FLAG(
    std::vector<std::string>, hp, {},
    "run: hyperparameter NAME=VALUE (repeatable); workers see PAI_HPS, PAI_HPS_<NAME>, "
    "PAI_USER_ARGS and hyperparameters.json");
ABSL_FLAG(std::string, job_dir, "",
          "run: the job directory (container layout, logs, state); default: a fresh one "
          "under $TMPDIR");
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

namespace elasticbatch::aimaster {
namespace {

constexpr char kRun[] = "aimaster";

std::string Commas(uint64_t v) {
  std::string digits = absl::StrCat(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Eta(const JobProgress& p) {
  if (!p.eta) return "-";
  return absl::FormatDuration(absl::Trunc(*p.eta, absl::Seconds(1)));
}

std::string ProgressLine(const JobProgress& p) {
  std::string line = absl::StrFormat(
      "shards %d/%d", p.committed_shards + p.quarantined_shards, p.total_shards);
  if (p.quarantined_shards > 0)
    absl::StrAppend(&line, " (", p.quarantined_shards, " quarantined)");
  absl::StrAppend(&line, " | ", Commas(p.committed_records), " records, ",
                  Commas(static_cast<uint64_t>(p.records_per_second)), "/s | ETA ",
                  Eta(p), " | workers: ", p.workers_running, " running, ",
                  p.workers_starting, " starting, ", p.workers_restarting, " restarting");
  return line;
}

// Prints progress: a live line on a terminal, a log line now and then off it.
class ProgressReporter {
 public:
  explicit ProgressReporter(const JobCoordinator* coordinator)
      : coordinator_(coordinator), tty_(isatty(STDERR_FILENO) == 1) {}
  void Tick() {
    const absl::Time now = absl::Now();
    const absl::Duration every =
        tty_ ? absl::Milliseconds(250) : absl::GetFlag(FLAGS_progress_interval);
    if (now - last_ < every) return;
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
  absl::Time last_ = absl::InfinitePast();
  bool drawn_ = false;
};

// <job dir>/summary.json: the job's outcome and every worker attempt, for
// tools and tests.
absl::Status WriteSummaryJson(const JobCoordinator& coordinator,
                              const std::string& path) {
  std::map<SessionId, SessionInfo> sessions;
  for (SessionInfo& s : coordinator.Sessions()) sessions[s.session] = s;
  const JobProgress p = coordinator.Progress();
  std::string json = absl::StrFormat(
      "{\"job_id\":%s,\"state\":\"%s\",\"reason\":%s,\"total_shards\":%d,"
      "\"committed_shards\":%d,\"quarantined_shards\":%d,\"committed_records\":%d,"
      "\"elapsed_seconds\":%.3f,\"workers\":[",
      JsonQuote(coordinator.options().job_id),
      p.state == JobState::kSucceeded ? "succeeded"
      : p.state == JobState::kFailed  ? "failed"
                                      : "running",
      JsonQuote(p.reason), p.total_shards, p.committed_shards, p.quarantined_shards,
      p.committed_records, absl::ToDoubleSeconds(p.elapsed));
  bool first_worker = true;
  for (const InstanceInfo& w : coordinator.Workers()) {
    uint64_t shards = 0, records = 0;
    std::string attempts;
    for (const AttemptInfo& a : w.attempts) {
      uint64_t a_shards = 0, a_records = 0;
      if (auto it = sessions.find(a.session); a.session != 0 && it != sessions.end()) {
        a_shards = it->second.shards_committed;
        a_records = it->second.records_committed;
      }
      shards += a_shards;
      records += a_records;
      absl::StrAppend(
          &attempts, attempts.empty() ? "" : ",",
          absl::StrFormat(
              "{\"attempt\":%d,\"backup\":%s,\"state\":\"%s\",\"exit_code\":%s,"
              "\"startup_seconds\":%s,\"shards\":%d,\"records\":%d,"
              "\"detail\":%s}",
              a.attempt, a.backup ? "true" : "false", AttemptStateName(a.state),
              a.exit_code ? absl::StrCat(*a.exit_code) : "null",
              a.registered_at
                  ? absl::StrFormat(
                        "%.3f", absl::ToDoubleSeconds(*a.registered_at - a.launched_at))
                  : "null",
              a_shards, a_records, JsonQuote(a.detail)));
    }
    absl::StrAppend(
        &json, first_worker ? "" : ",",
        absl::StrFormat("{\"index\":%d,\"state\":\"%s\",\"restarts\":%d,"
                        "\"backups\":%d,\"shards\":%d,\"records\":%d,"
                        "\"failure\":%s,\"attempts\":[%s]}",
                        w.index, InstanceStateName(w.state), w.restarts, w.backups,
                        shards, records, JsonQuote(w.failure), attempts));
    first_worker = false;
  }
  return WriteFileAtomically(path, json + "]}\n");
}

// The per-worker summary table printed at the end.
void PrintSummary(const JobCoordinator& coordinator) {
  std::map<SessionId, SessionInfo> sessions;
  for (SessionInfo& s : coordinator.Sessions()) sessions[s.session] = s;
  std::cout << absl::StrFormat("%-6s %-10s %8s %7s %10s %10s %8s %7s %8s  %s\n", "worker",
                               "state", "attempts", "shards", "records", "records/s",
                               "restarts", "backups", "startup", "last exit");
  for (const InstanceInfo& w : coordinator.Workers()) {
    uint64_t shards = 0, records = 0;
    double busy_seconds = 0;
    std::string startup = "-";
    std::string last_exit = "-";
    for (const AttemptInfo& a : w.attempts) {
      if (auto it = sessions.find(a.session); a.session != 0 && it != sessions.end()) {
        shards += it->second.shards_committed;
        records += it->second.records_committed;
      }
      if (a.registered_at) {
        startup = absl::StrFormat(
            "%.2fs", absl::ToDoubleSeconds(*a.registered_at - a.launched_at));
        const absl::Time until = a.ended_at.value_or(absl::Now());
        busy_seconds += absl::ToDoubleSeconds(until - *a.registered_at);
      }
      if (a.exit_code) last_exit = absl::StrCat(*a.exit_code);
      if (!a.detail.empty()) last_exit = absl::StrCat(last_exit, " (", a.detail, ")");
    }
    const double rate =
        busy_seconds > 0 ? static_cast<double>(records) / busy_seconds : 0;
    std::cout << absl::StrFormat("%-6d %-10s %8d %7d %10s %10.0f %8d %7d %8s  %s\n",
                                 w.index, InstanceStateName(w.state), w.attempts.size(),
                                 shards, Commas(records), rate, w.restarts, w.backups,
                                 startup, w.failure.empty() ? last_exit : w.failure);
  }
}

// Splits "NAME=VALUE" entries; INVALID_ARGUMENT names the flag.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Pairs(
    const std::vector<std::string>& entries, const char* flag) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& e : entries) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " '", e, "' must be NAME=VALUE"));
    }
    for (const auto& [name, value] : out) {
      if (name == e.substr(0, eq)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " names '", name, "' twice"));
      }
    }
    out.push_back({e.substr(0, eq), e.substr(eq + 1)});
  }
  return out;
}

}  // namespace

int RunCommand(const cli::ParsedCommandLine& args) {
  // At once: a SIGTERM during set-up must stop it, not wait for it.
  cli::SignalWatcher signals;
  const auto interrupted = [&] { return signals.received(); };
  if (args.after_dashes.empty()) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("usage: aimaster run [flags] -- CMD"));
  }
  if (args.positional.size() > 1) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError(absl::StrCat(
                  "unexpected argument '", args.positional[1], "' (CMD goes after --)")));
  }
  // Each word after `--` arrives as given (one word is a shell command).
  const std::string command = ShellCommandFromWords(args.after_dashes);
  const int32_t workers = absl::GetFlag(FLAGS_workers);
  if (workers < 1 || workers > 10000) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("--workers must be within 1..10000"));
  }
  // The job directory first: default output and state locations live in it.
  std::string root = absl::GetFlag(FLAGS_job_dir);
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/elasticbatch-job-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return cli::ReportUsageError(
          kRun,
          absl::FailedPreconditionError("cannot create a job directory under $TMPDIR"));
    }
    root = pattern;
  }
  root = std::filesystem::absolute(root).string();
  // `--output NAME` without a path: a directory inside the job directory.
  std::vector<std::string> outputs = absl::GetFlag(FLAGS_output);
  for (std::string& o : outputs) {
    if (o.find('=') == std::string::npos) o = absl::StrCat(o, "=", root, "/output/", o);
  }
  absl::SetFlag(&FLAGS_output, outputs);
  if (absl::GetFlag(FLAGS_state_dir).empty())
    absl::SetFlag(&FLAGS_state_dir, root + "/state");

  absl::StatusOr<JobConfig> config = JobConfigFromFlags();
  if (!config.ok()) return cli::ReportUsageError(kRun, config.status());
  auto hps = Pairs(absl::GetFlag(FLAGS_hp), "hp");
  if (!hps.ok()) return cli::ReportUsageError(kRun, hps.status());
  absl::StatusOr<RestartPolicy> policy =
      ParseRestartPolicy(absl::GetFlag(FLAGS_restart_policy));
  if (!policy.ok()) return cli::ReportUsageError(kRun, policy.status());
  FleetOptions fleet;
  fleet.workers = static_cast<uint32_t>(workers);
  fleet.startup_timeout = absl::GetFlag(FLAGS_startup_timeout);
  fleet.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  fleet.restart_policy = *policy;
  fleet.restart_backoff = absl::GetFlag(FLAGS_restart_backoff);
  fleet.start_interval = absl::GetFlag(FLAGS_start_interval);
  const int32_t max_restarts = absl::GetFlag(FLAGS_max_restarts);
  if (max_restarts < 0) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("--max-restarts must be >= 0"));
  }
  fleet.max_restarts = static_cast<uint32_t>(max_restarts);
  if (fleet.heartbeat_timeout <= config->coordinator.heartbeat_interval) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("--heartbeat-timeout must be longer than "
                                         "--heartbeat-interval"));
  }
  if (fleet.startup_timeout <= absl::ZeroDuration()) {
    return cli::ReportUsageError(
        kRun, absl::InvalidArgumentError("--startup-timeout must be positive"));
  }
  config->coordinator.fleet = fleet;

  JobDirectorySpec spec;
  spec.root = root;
  spec.code_dir = absl::GetFlag(FLAGS_code_dir);
  for (const ChannelSpec& c : config->inputs) spec.inputs.push_back({c.name, c.path});
  for (const ChannelSpec& c : config->outputs) spec.outputs.push_back({c.name, c.path});
  spec.hyperparameters = *hps;
  spec.job_id = config->coordinator.job_id;
  spec.workers = fleet.workers;
  spec.command = command;
  absl::StatusOr<JobDirectory> dir = JobDirectory::Create(spec);
  if (!dir.ok()) return cli::ReportUsageError(kRun, dir.status());

  RealClock clock;
  absl::StatusOr<PreparedJob> job = PrepareJob(*config, &clock, interrupted);
  if (absl::IsCancelled(job.status()) && interrupted()) {
    spdlog::warn("interrupted during set-up; no worker was started");
    return 128 + signals.received_signal();
  }
  if (!job.ok()) return cli::ReportUsageError(kRun, job.status());

  LocalLauncher launcher({absl::GetFlag(FLAGS_stop_grace)});
  std::string master_address;
  LaunchDriver driver(job->coordinator.get(), &launcher,
                      [&](uint32_t index, uint32_t attempt) {
                        LaunchSpec s;
                        s.index = index;
                        s.attempt = attempt;
                        // `$PAI_USER_ARGS` becomes the quoted hyperparameter
                        // arguments: a value with spaces stays one argument.
                        s.command = ExpandUserArgs(command, UserArgs(*hps));
                        s.working_dir = dir->usercode();
                        s.env = dir->WorkerEnvironment(index, attempt, master_address);
                        s.log_path = dir->LogPath(index, attempt);
                        return s;
                      });
  ProgressReporter progress(job->coordinator.get());
  MasterServerOptions options;
  options.host = "127.0.0.1";
  // A local job picks a free port unless one is asked for.
  const absl::CommandLineFlag& port_flag = absl::GetFlagReflectionHandle(FLAGS_port);
  options.port = port_flag.CurrentValue() == port_flag.DefaultValue()
                     ? 0
                     : absl::GetFlag(FLAGS_port);
  options.metrics_address = config->metrics_address;
  options.on_tick = [&] {
    driver.Tick();
    progress.Tick();
  };
  absl::StatusOr<std::unique_ptr<MasterServer>> server =
      MasterServer::Start(job->coordinator.get(), job->journal.get(), options);
  if (!server.ok()) return cli::ReportUsageError(kRun, server.status());
  if (interrupted()) {
    (*server)->Shutdown();
    spdlog::warn("interrupted during set-up; no worker was started");
    return 128 + signals.received_signal();
  }
  master_address = absl::StrCat("127.0.0.1:", (*server)->port());

  const JobProgress start = job->coordinator->Progress();
  spdlog::info(
      "job {}: {} shards of {}, {} worker(s) running `{}`; master {}; job dir {}",
      config->coordinator.job_id, start.total_shards, config->sharded().path, workers,
      command, master_address, root);
  if (start.committed_shards + start.quarantined_shards > 0) {
    spdlog::info("resuming: {} shards already committed, {} quarantined",
                 start.committed_shards, start.quarantined_shards);
  }
  signals.OnSignal([&](int sig) {
    job->coordinator->Stop(absl::StrCat("interrupted by signal ", sig));
  });
  // The handler must not outlive the job it points at.
  absl::Cleanup forget_job = [&] { signals.OnSignal(nullptr); };
  driver.Start();

  // Wait for the end of the data, then for the workers: running ones hear END
  // and exit 0; any still alive after the grace period are stopped.
  while (!job->coordinator->ended()) absl::SleepFor(absl::Milliseconds(20));
  const absl::Time ended_at = absl::Now();
  const absl::Duration grace = absl::GetFlag(FLAGS_stop_grace);
  bool stopped_all = false;
  while (!job->coordinator->AllWorkersExited()) {
    if (!stopped_all && absl::Now() - ended_at > grace) {
      driver.StopAll("the job is over");
      stopped_all = true;
    }
    if (absl::Now() - ended_at > 2 * grace + absl::Seconds(5)) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  (*server)->Shutdown();
  launcher.StopAll();
  progress.Finish();
  const int code = FinishJob(*config, *job);
  PrintSummary(*job->coordinator);
  if (absl::Status s = WriteSummaryJson(*job->coordinator, root + "/summary.json");
      !s.ok()) {
    spdlog::error("cannot write the summary: {}", s.ToString());
  }
  std::cout << "outputs: " << config->primary_output().path
            << "   logs: " << dir->logs_dir() << std::endl;
  const int sig = signals.last_signal();
  return sig != 0 ? 128 + sig : code;
}

}  // namespace elasticbatch::aimaster
