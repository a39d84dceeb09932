#include "aimaster/job/job_config.h"

#include <sys/stat.h>

#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "aimaster/core/file_system.h"
#include "aimaster/core/input_scanner.h"
#include "aimaster/core/job_outputs.h"
#include "aimaster/job/name_values.h"
#include "spdlog/spdlog.h"

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
  NameValueSyntax syntax;
  syntax.flag = flag;
  syntax.value_word = "PATH";
  syntax.allow_empty_value = false;
  syntax.what = "channel ";
  syntax.check_name = [flag](const std::string& name) {
    if (ValidChannelName(name)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " channel name '", name,
        "' may hold only letters, digits, '_' and '-', and must not start with '_'"));
  };
  absl::StatusOr<NameValues> pairs = ParseNameValues(specs, syntax);
  if (!pairs.ok()) return pairs.status();
  std::vector<ChannelSpec> out;
  for (auto& [name, path] : *pairs) out.push_back({std::move(name), std::move(path)});
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

// --input and --output: at least one channel each.
absl::Status SetChannels(const JobFlags& flags, JobConfig* config) {
  absl::StatusOr<std::vector<ChannelSpec>> inputs = ParseChannels(flags.inputs, "input");
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::vector<ChannelSpec>> outputs =
      ParseChannels(flags.outputs, "output");
  if (!outputs.ok()) return outputs.status();
  config->inputs = std::move(*inputs);
  config->outputs = std::move(*outputs);
  if (config->inputs.empty()) {
    return absl::InvalidArgumentError("give at least one --input NAME=PATH");
  }
  if (config->outputs.empty()) {
    return absl::InvalidArgumentError("give at least one --output NAME=PATH");
  }
  return absl::OkStatus();
}

// --shard-input: which input channel is sharded (the first by default).
absl::Status SetShardInput(const JobFlags& flags, JobConfig* config) {
  if (flags.shard_input.empty()) return absl::OkStatus();
  bool found = false;
  for (size_t i = 0; i < config->inputs.size(); ++i) {
    if (config->inputs[i].name == flags.shard_input) {
      config->shard_input = i;
      found = true;
    }
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat("--shard-input '", flags.shard_input,
                                                   "' is not an --input channel"));
  }
  return absl::OkStatus();
}

// --records, --shard-bytes, --shard-records, --shard-per-file: the unit and
// size of a shard; the combinations that make no sense are refused.
absl::Status SetSharding(const JobFlags& flags, JobConfig* config) {
  config->records = flags.records;
  if (config->records > 0) {
    if (flags.shard_bytes != 0 || flags.shard_per_file) {
      return absl::InvalidArgumentError(
          "--records shards by record ranges: use --shard-records, not --shard-bytes or "
          "--shard-per-file");
    }
    config->mode = ShardingMode::kRecords;
    config->shard_size = flags.shard_records != 0 ? flags.shard_records : 1000;
  } else if (flags.shard_records != 0) {
    return absl::InvalidArgumentError(
        "--shard-records needs --records N (a record-count input); shard files with "
        "--shard-bytes or --shard-per-file");
  } else if (flags.shard_per_file) {
    if (flags.shard_bytes != 0) {
      return absl::InvalidArgumentError(
          "give --shard-bytes or --shard-per-file, not both");
    }
    config->mode = ShardingMode::kPerFile;
  } else {
    config->mode = ShardingMode::kBytes;
    config->shard_size = flags.shard_bytes != 0 ? flags.shard_bytes : (4u << 20);
  }
  return absl::OkStatus();
}

// Leases, heartbeats, attempts and speculation.
absl::Status SetCoordinatorPolicy(const JobFlags& flags, CoordinatorOptions* c) {
  c->lease_timeout = flags.lease_timeout;
  c->heartbeat_interval = flags.heartbeat_interval;
  if (c->heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--heartbeat-interval must be positive");
  }
  if (c->lease_timeout <= c->heartbeat_interval) {
    return absl::InvalidArgumentError(
        "--lease-timeout must be longer than --heartbeat-interval");
  }
  if (flags.max_attempts < 1 ||
      static_cast<uint32_t>(flags.max_attempts) > kMaxAttemptsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-attempts must be within 1..", kMaxAttemptsLimit));
  }
  c->max_attempts = static_cast<uint32_t>(flags.max_attempts);
  c->max_failed_shards = flags.max_failed_shards;
  c->speculation = flags.speculation;
  c->speculation_multiplier = flags.speculation_multiplier;
  if (!(c->speculation_multiplier >= 1.0)) {
    return absl::InvalidArgumentError("--speculation-multiplier must be at least 1");
  }
  return absl::OkStatus();
}

// --max-message-size and the other request limits: each at least 1 (a limit
// of 0 would refuse every worker), the error size within what a journal
// record holds for --max-attempts errors.
absl::Status SetLimits(const JobFlags& flags, RequestLimits* l) {
  *l = flags.limits;
  const std::pair<const char*, uint64_t> positive[] = {
      {"--max-message-size", l->max_message_bytes},
      {"--max-shards-per-call", l->max_shards_per_call},
      {"--max-answer-size", l->max_answer_bytes},
      {"--max-leases-per-session", l->max_leases_per_session},
      {"--max-sessions", l->max_sessions},
      {"--max-sessions-per-index", l->max_sessions_per_index},
      {"--registration-burst", l->registration_burst},
  };
  for (const auto& [flag, value] : positive) {
    if (value == 0)
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be positive"));
  }
  if (l->max_message_bytes > (1u << 30)) {
    return absl::InvalidArgumentError("--max-message-size must be at most 1GiB");
  }
  if (l->max_error_bytes < 256 || l->max_error_bytes > (32u << 10)) {
    return absl::InvalidArgumentError("--max-error-size must be within 256..32KiB");
  }
  // A superseded worker must hear "session over" (and exit) long before its
  // session is forgotten and it would hear "register again".
  if (l->session_retention <= flags.lease_timeout) {
    return absl::InvalidArgumentError(
        "--session-retention must be longer than --lease-timeout");
  }
  if (!(l->registrations_per_second >= 0)) {
    return absl::InvalidArgumentError("--registrations-per-second must be 0 or more");
  }
  return absl::OkStatus();
}

// --job-id, else $JOB_NAME, else "elasticbatch".
absl::Status SetJobId(const JobFlags& flags, CoordinatorOptions* c) {
  c->job_id = flags.job_id;
  if (c->job_id.empty()) {
    c->job_id = !flags.job_name_env.empty() ? flags.job_name_env : "elasticbatch";
  }
  if (c->job_id.size() > 253) {
    return absl::InvalidArgumentError(
        "the job id (--job-id or $JOB_NAME) is longer than 253 bytes");
  }
  return absl::OkStatus();
}

// --state-dir, else <primary output>/_state.
absl::Status SetStateDir(const JobFlags& flags, JobConfig* config) {
  config->state_dir = flags.state_dir;
  if (!config->state_dir.empty()) return absl::OkStatus();
  config->state_dir = config->primary_output().path + "/_state";
  // Workers can write the output channel: the default state dir must be
  // the master's own directory, not a link one of them planted.
  struct stat st;
  if (lstat(config->state_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        config->state_dir, " is not a directory (a link?); give --state-dir explicitly"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JobConfig> JobConfigFromFlags(const JobFlags& flags) {
  JobConfig config;
  if (absl::Status s = SetChannels(flags, &config); !s.ok()) return s;
  if (absl::Status s = SetShardInput(flags, &config); !s.ok()) return s;
  if (absl::Status s = SetSharding(flags, &config); !s.ok()) return s;
  if (absl::Status s = SetCoordinatorPolicy(flags, &config.coordinator); !s.ok()) {
    return s;
  }
  if (absl::Status s = SetJobId(flags, &config.coordinator); !s.ok()) return s;
  if (absl::Status s = SetLimits(flags, &config.coordinator.limits); !s.ok()) return s;
  config.coordinator.input_channel = config.sharded().name;
  config.coordinator.output_channel = config.primary_output().name;
  if (absl::Status s = SetStateDir(flags, &config); !s.ok()) return s;
  config.metrics_address = flags.metrics_address;
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
