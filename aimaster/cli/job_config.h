// The job described by aimaster's flags (shared by `serve` and `run`), and
// the set-up steps both commands take before serving. Every error here is a
// configuration error: one line, exit code 2.
#ifndef ELASTICBATCH_AIMASTER_CLI_JOB_CONFIG_H_
#define ELASTICBATCH_AIMASTER_CLI_JOB_CONFIG_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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

// Reads and validates the job flags. INVALID_ARGUMENT names the bad flag.
absl::StatusOr<JobConfig> JobConfigFromFlags();

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

#endif  // ELASTICBATCH_AIMASTER_CLI_JOB_CONFIG_H_
