// The job described by aimaster's job flags (shared by `serve` and `run`),
// and the set-up steps both commands take before serving. Every error here is
// a configuration error: one line, exit code 2.
//
// The flags are read once into a JobFlags (the CLI does that); the config is a
// function of it, so that it is testable without global flags:
//
//   JobFlags flags;
//   flags.inputs = {"data=/data"};
//   flags.outputs = {"out=/out"};
//   absl::StatusOr<JobConfig> config = JobConfigFromFlags(flags);
//
// Thread-compatible.
#ifndef ELASTICBATCH_AIMASTER_JOB_JOB_CONFIG_H_
#define ELASTICBATCH_AIMASTER_JOB_JOB_CONFIG_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"

namespace elasticbatch::aimaster {

struct ChannelSpec {
  std::string name;
  std::string path;
};

struct JobConfig {
  std::vector<ChannelSpec> inputs;
  std::vector<ChannelSpec> outputs;
  // The sharded input channel (index into inputs).
  size_t shard_input = 0;
  ShardingMode mode = ShardingMode::kBytes;
  uint64_t shard_size = 0;  // bytes or records; unused per file
  uint64_t records = 0;     // record-count input when mode == kRecords
  std::string state_dir;
  std::string metrics_address;
  CoordinatorOptions coordinator;

  const ChannelSpec& sharded() const { return inputs[shard_input]; }
  const ChannelSpec& primary_output() const { return outputs[0]; }
};

// The job flags as given on the command line; each default is the flag's.
struct JobFlags {
  // --input NAME=PATH entries. Default: none (at least one is required).
  std::vector<std::string> inputs;
  // --output NAME=PATH entries. Default: none (at least one is required).
  std::vector<std::string> outputs;
  // --shard-input: the input channel to shard. Default: the first.
  std::string shard_input;
  // --shard-bytes (0: not given, 4MiB). Default: 0.
  uint64_t shard_bytes = 0;
  // --shard-records (0: not given, 1000). Default: 0.
  uint64_t shard_records = 0;
  // --shard-per-file. Default: false.
  bool shard_per_file = false;
  // --records: a record-count input of this many records. Default: 0 (files).
  uint64_t records = 0;
  // --state-dir. Default: empty (<primary output>/_state).
  std::string state_dir;
  // --lease-timeout. Default: 30s.
  absl::Duration lease_timeout = absl::Seconds(30);
  // --heartbeat-interval. Default: 2s.
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // --max-attempts. Default: 3.
  int32_t max_attempts = 3;
  // --max-failed-shards. Default: 0.
  uint64_t max_failed_shards = 0;
  // --speculation. Default: true.
  bool speculation = true;
  // --speculation-multiplier. Default: 3.
  double speculation_multiplier = 3.0;
  // --job-id. Default: empty ($JOB_NAME, else "elasticbatch").
  std::string job_id;
  // $JOB_NAME (KubeDL sets it), the job id when --job-id is not given.
  // Default: empty.
  std::string job_name_env;
  // --metrics-address. Default: empty (off).
  std::string metrics_address;
  // --max-message-size, --max-shards-per-call, --max-answer-size,
  // --max-leases-per-session, --max-error-size, --max-sessions,
  // --max-sessions-per-index, --session-retention, --registrations-per-second,
  // --registration-burst. Default: RequestLimits's.
  RequestLimits limits;
};

// Validates the job flags into a config. INVALID_ARGUMENT names the bad flag.
// Reads the disk only to refuse a default state dir that is not a directory.
absl::StatusOr<JobConfig> JobConfigFromFlags(const JobFlags& flags);

// A job ready to serve: its shards, its journal (replayed into the coordinator).
struct PreparedJob {
  std::unique_ptr<ShardEnumerator> shards;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<JobCoordinator> coordinator;
  JournalStats replay;
};

// Lists the sharded input, checks the output channels are writable, opens the
// state dir's journal and restores the coordinator from it. CANCELLED as soon
// as `interrupted` says so (a long input scan must not outlive a SIGTERM).
absl::StatusOr<PreparedJob> PrepareJob(const JobConfig& config, const Clock* clock,
                                       const std::function<bool()>& interrupted = {});

// Writes the job's result files into the primary output channel and logs one
// summary line. Returns the process exit code (0 succeeded, 1 failed).
int FinishJob(const JobConfig& config, PreparedJob& job);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_JOB_JOB_CONFIG_H_
