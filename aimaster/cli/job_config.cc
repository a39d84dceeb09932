#include "aimaster/cli/job_config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "aimaster/core/file_system.h"
#include "aimaster/core/input_scanner.h"
#include "aimaster/core/job_outputs.h"
#include "common/cli/flag_types.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(
    std::vector<std::string>, input, {},
    "Input channel NAME=PATH (repeatable); the first is sharded unless --shard-input "
    "names another");
ABSL_FLAG(
    std::vector<std::string>, output, {},
    "Output channel NAME=PATH (repeatable); the first receives the shards' outputs, "
    "_SUCCESS/_FAILED and the manifests");
ABSL_FLAG(std::string, shard_input, "", "Name of the input channel to shard");
ABSL_FLAG(elasticbatch::cli::ByteSize, shard_bytes, elasticbatch::cli::ByteSize{0},
          "BYTES shards of this size; records are aligned by the reader (default 4MiB)");
ABSL_FLAG(uint64_t, shard_records, 0,
          "RECORDS shards of this many records, with --records (default 1000)");
ABSL_FLAG(bool, shard_per_file, false, "One shard per input file");
ABSL_FLAG(uint64_t, records, 0,
          "The sharded input is a table of this many records (RECORDS unit); its path is "
          "passed to workers but not read by the master");
ABSL_FLAG(std::string, state_dir, "",
          "Where the journal of commits lives; a restarted master resumes from it "
          "(default: <primary output>/_state)");
ABSL_FLAG(absl::Duration, lease_timeout, absl::Seconds(30),
          "A worker silent this long loses its shards to the queue");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "How often workers heartbeat");
ABSL_FLAG(int32_t, max_attempts, 3, "Failures after which a shard is quarantined");
ABSL_FLAG(uint64_t, max_failed_shards, 0,
          "Quarantined shards the job tolerates before it fails");
ABSL_FLAG(bool, speculation, true,
          "Duplicate stragglers' shards in the tail (--no-speculation turns it off)");
ABSL_FLAG(double, speculation_multiplier, 3.0,
          "Duplicate a shard whose estimated time left exceeds this multiple of the "
          "median shard time");
ABSL_FLAG(std::string, job_id, "",
          "Job name in status output (default: $JOB_NAME or "
          "'elasticbatch')");
ABSL_FLAG(std::string, metrics_address, "",
          "Serve Prometheus metrics on HOST:PORT/metrics (off by default)");

namespace elasticbatch::aimaster {
namespace fs = std::filesystem;
namespace {

bool ValidChannelName(const std::string& name) {
  if (name.empty() || name[0] == '_') return false;
  for (unsigned char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::vector<ChannelSpec>> ParseChannels(
    const std::vector<std::string>& specs, const char* flag) {
  std::vector<ChannelSpec> out;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " '", spec, "' must be NAME=PATH"));
    }
    ChannelSpec c{spec.substr(0, eq), spec.substr(eq + 1)};
    if (!ValidChannelName(c.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, " channel name '", c.name,
          "' may hold only letters, digits, '_' and '-', and must not start with '_'"));
    }
    for (const ChannelSpec& prev : out) {
      if (prev.name == c.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " names channel '", c.name, "' twice"));
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::Status CheckWritableDir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  // Durably: the default state dir, and with it the journal, lives inside.
  if (absl::Status s = FileSystem::Default()->CreateDir(dir); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " ", s.message()));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", dir, " is not a directory"));
  }
  if (absl::Status s = ProbeWritableDirectory(dir); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JobConfig> JobConfigFromFlags() {
  JobConfig config;
  absl::StatusOr<std::vector<ChannelSpec>> inputs =
      ParseChannels(absl::GetFlag(FLAGS_input), "input");
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::vector<ChannelSpec>> outputs =
      ParseChannels(absl::GetFlag(FLAGS_output), "output");
  if (!outputs.ok()) return outputs.status();
  config.inputs = std::move(*inputs);
  config.outputs = std::move(*outputs);
  if (config.inputs.empty()) {
    return absl::InvalidArgumentError("give at least one --input NAME=PATH");
  }
  if (config.outputs.empty()) {
    return absl::InvalidArgumentError("give at least one --output NAME=PATH");
  }
  const std::string shard_input = absl::GetFlag(FLAGS_shard_input);
  if (!shard_input.empty()) {
    bool found = false;
    for (size_t i = 0; i < config.inputs.size(); ++i) {
      if (config.inputs[i].name == shard_input) {
        config.shard_input = i;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shard-input '", shard_input, "' is not an --input channel"));
    }
  }

  const uint64_t shard_bytes = absl::GetFlag(FLAGS_shard_bytes).bytes;
  const uint64_t shard_records = absl::GetFlag(FLAGS_shard_records);
  const bool per_file = absl::GetFlag(FLAGS_shard_per_file);
  config.records = absl::GetFlag(FLAGS_records);
  if (config.records > 0) {
    if (shard_bytes != 0 || per_file) {
      return absl::InvalidArgumentError(
          "--records shards by record ranges: use --shard-records, not --shard-bytes or "
          "--shard-per-file");
    }
    config.mode = ShardingMode::kRecords;
    config.shard_size = shard_records != 0 ? shard_records : 1000;
  } else if (shard_records != 0) {
    return absl::InvalidArgumentError(
        "--shard-records needs --records N (a record-count input); shard files with "
        "--shard-bytes or --shard-per-file");
  } else if (per_file) {
    if (shard_bytes != 0) {
      return absl::InvalidArgumentError(
          "give --shard-bytes or --shard-per-file, not both");
    }
    config.mode = ShardingMode::kPerFile;
  } else {
    config.mode = ShardingMode::kBytes;
    config.shard_size = shard_bytes != 0 ? shard_bytes : (4u << 20);
  }

  CoordinatorOptions& c = config.coordinator;
  c.lease_timeout = absl::GetFlag(FLAGS_lease_timeout);
  c.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  if (c.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--heartbeat-interval must be positive");
  }
  if (c.lease_timeout <= c.heartbeat_interval) {
    return absl::InvalidArgumentError(
        "--lease-timeout must be longer than --heartbeat-interval");
  }
  const int32_t max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (max_attempts < 1 || static_cast<uint32_t>(max_attempts) > kMaxAttemptsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-attempts must be within 1..", kMaxAttemptsLimit));
  }
  c.max_attempts = static_cast<uint32_t>(max_attempts);
  c.max_failed_shards = absl::GetFlag(FLAGS_max_failed_shards);
  c.speculation = absl::GetFlag(FLAGS_speculation);
  c.speculation_multiplier = absl::GetFlag(FLAGS_speculation_multiplier);
  if (!(c.speculation_multiplier >= 1.0)) {
    return absl::InvalidArgumentError("--speculation-multiplier must be at least 1");
  }
  c.job_id = absl::GetFlag(FLAGS_job_id);
  if (c.job_id.empty()) {
    const char* name = std::getenv("JOB_NAME");
    c.job_id = name != nullptr && *name != '\0' ? name : "elasticbatch";
  }
  if (c.job_id.size() > 253) {
    return absl::InvalidArgumentError(
        "the job id (--job-id or $JOB_NAME) is longer than 253 bytes");
  }
  c.input_channel = config.sharded().name;
  c.output_channel = config.primary_output().name;
  config.state_dir = absl::GetFlag(FLAGS_state_dir);
  if (config.state_dir.empty()) {
    config.state_dir = config.primary_output().path + "/_state";
    // Workers can write the output channel: the default state dir must be
    // the master's own directory, not a link one of them planted.
    struct stat st;
    if (lstat(config.state_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(config.state_dir,
                       " is not a directory (a link?); give --state-dir explicitly"));
    }
  }
  config.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  return config;
}

absl::StatusOr<PreparedJob> PrepareJob(const JobConfig& config, const Clock* clock,
                                       const std::function<bool()>& interrupted) {
  const auto stop_if_interrupted = [&]() -> absl::Status {
    if (interrupted && interrupted()) {
      return absl::CancelledError("interrupted while setting up the job");
    }
    return absl::OkStatus();
  };
  if (absl::Status s = stop_if_interrupted(); !s.ok()) return s;
  PreparedJob job;
  absl::StatusOr<ShardEnumerator> shards = absl::InternalError("unset");
  if (config.mode == ShardingMode::kRecords) {
    shards = ShardEnumerator::ForRecords(config.records, config.shard_size);
  } else {
    spdlog::debug("scanning input {}", config.sharded().path);
    std::vector<std::string> duplicates;
    ListOptions list;
    list.cancelled = interrupted;
    list.duplicates = &duplicates;
    absl::StatusOr<std::vector<SourceFile>> files =
        ListSourceFiles(config.sharded().path, list);
    if (!files.ok()) return files.status();
    if (!duplicates.empty()) {
      constexpr size_t kShown = 3;
      spdlog::warn(
          "input {}: {} path(s) lead to a file or directory already listed and are "
          "skipped (each real file is processed once): {}{}",
          config.sharded().path, duplicates.size(),
          absl::StrJoin(duplicates.begin(),
                        duplicates.begin() + std::min(kShown, duplicates.size()), "; "),
          duplicates.size() > kShown ? "; ..." : "");
    }
    shards = ShardEnumerator::ForFiles(std::move(*files), config.mode, config.shard_size);
    if (!shards.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", config.sharded().path, ": ", shards.status().message()));
    }
  }
  if (!shards.ok()) return shards.status();
  job.shards = std::make_unique<ShardEnumerator>(std::move(*shards));
  if (absl::Status s = stop_if_interrupted(); !s.ok()) return s;
  for (const ChannelSpec& out : config.outputs) {
    if (absl::Status s = CheckWritableDir(out.path, "output"); !s.ok()) return s;
  }

  std::vector<CommitRecord> commits;
  std::vector<QuarantineRecord> quarantines;
  JournalReplay replay;
  replay.on_commit = [&](const CommitRecord& c) { commits.push_back(c); };
  replay.on_quarantine = [&](const QuarantineRecord& q) { quarantines.push_back(q); };
  // A new job instance starts on an output without another job's results or
  // verdict (checked before its journal exists, so a refusal leaves nothing).
  std::error_code ec;
  const bool had_journal = fs::file_size(config.state_dir + "/journal", ec) > 0 && !ec;
  if (!had_journal) {
    absl::Status clean = PrepareOutputChannel(config.primary_output().path, "", false);
    if (!clean.ok()) return clean;
  }
  // The journal belongs to this job: same layout, id, output and input channel.
  ec.clear();
  fs::path output = fs::absolute(config.primary_output().path, ec).lexically_normal();
  if (ec) return absl::FailedPreconditionError(absl::StrCat("output: ", ec.message()));
  if (!output.has_filename()) output = output.parent_path();  // a trailing '/'
  absl::StatusOr<std::unique_ptr<Journal>> journal =
      Journal::Open(config.state_dir,
                    {job.shards->fingerprint(), job.shards->shard_count(),
                     config.coordinator.job_id, output.string(), config.sharded().name},
                    replay);
  if (!journal.ok()) return journal.status();
  job.journal = std::move(*journal);
  job.replay = job.journal->replay_stats();
  // A resumed instance clears its own earlier verdict and refuses anyone
  // else's; workers believe only markers naming this instance.
  if (absl::Status s =
          PrepareOutputChannel(config.primary_output().path, job.journal->job_uid(),
                               /*resumed=*/job.replay.previous_opens > 0);
      !s.ok()) {
    return s;
  }
  CoordinatorOptions options = config.coordinator;
  options.job_uid = job.journal->job_uid();
  job.coordinator = std::make_unique<JobCoordinator>(clock, job.shards.get(),
                                                     job.journal.get(), options);
  for (const CommitRecord& c : commits) job.coordinator->RestoreCommitted(c);
  for (const QuarantineRecord& q : quarantines) job.coordinator->RestoreQuarantined(q);
  if (absl::Status s = stop_if_interrupted(); !s.ok()) return s;
  return job;
}

int FinishJob(const JobConfig& config, PreparedJob& job) {
  const JobProgress p = job.coordinator->Progress();
  const bool succeeded = p.state == JobState::kSucceeded;
  absl::Status synced = job.journal->SyncAll();
  const CoordinatorOptions& o = job.coordinator->options();
  absl::Status written =
      synced.ok() ? WriteJobOutputs(config.primary_output().path, config.state_dir,
                                    *job.shards, config.sharded().name,
                                    {o.job_id, o.job_uid, succeeded, p.reason})
                  : synced;
  if (!written.ok()) {
    spdlog::error("cannot write the job's result files: {}",
                  std::string(written.message()));
    return 1;
  }
  spdlog::info("job {} {}: {} ({}/{} shards committed, {} quarantined, {} records) in {}",
               config.coordinator.job_id, succeeded ? "succeeded" : "failed", p.reason,
               p.committed_shards, p.total_shards, p.quarantined_shards,
               p.committed_records,
               absl::FormatDuration(absl::Trunc(p.elapsed, absl::Milliseconds(1))));
  return succeeded ? 0 : 1;
}

}  // namespace elasticbatch::aimaster
