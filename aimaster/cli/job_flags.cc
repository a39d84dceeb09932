#include "aimaster/cli/job_flags.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "common/cli/flag_types.h"

// The help's "(default: ...)" comes from the flag's default value; a flag
// whose empty or zero value stands for another default says which.
ABSL_FLAG(
    std::vector<std::string>, input, {},
    "Input channel NAME=PATH (repeatable); the first is sharded unless --shard-input "
    "names another");
ABSL_FLAG(
    std::vector<std::string>, output, {},
    "Output channel NAME=PATH (repeatable); the first receives the shards' outputs, "
    "_SUCCESS/_FAILED and the manifests");
ABSL_FLAG(std::string, shard_input, "",
          "Name of the input channel to shard (default: the first --input)");
ABSL_FLAG(elasticbatch::cli::ByteSize, shard_bytes, elasticbatch::cli::ByteSize{0},
          "BYTES shards of this size; records are aligned by the reader; 0 means 4MiB");
ABSL_FLAG(uint64_t, shard_records, 0,
          "RECORDS shards of this many records, with --records; 0 means 1000");
ABSL_FLAG(bool, shard_per_file, false, "One shard per input file");
ABSL_FLAG(uint64_t, records, 0,
          "The sharded input is a table of this many records (RECORDS unit); its path is "
          "passed to workers but not read by the master; 0: the input is files");
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
          "Serve Prometheus metrics on HOST:PORT/metrics (default: off)");
ABSL_FLAG(elasticbatch::cli::ByteSize, max_message_size,
          elasticbatch::cli::ByteSize{4 << 20},
          "Largest request the master accepts; larger ones are refused "
          "(RESOURCE_EXHAUSTED)");
ABSL_FLAG(uint32_t, max_shards_per_call, 64,
          "An AcquireShards call gets at most this many shards, whatever its max_shards");
ABSL_FLAG(elasticbatch::cli::ByteSize, max_answer_size,
          elasticbatch::cli::ByteSize{1 << 20},
          "An AcquireShards answer stops adding shards at about this size");
ABSL_FLAG(uint32_t, max_leases_per_session, 1024,
          "Leases one worker session may hold; longer lease lists in a request are "
          "refused");
ABSL_FLAG(elasticbatch::cli::ByteSize, max_error_size,
          elasticbatch::cli::ByteSize{16 << 10},
          "Error texts and stop reasons are cut to this size before they are kept "
          "(256..32KiB)");
ABSL_FLAG(
    uint32_t, max_sessions, 10000,
    "Worker sessions the master remembers (live, and ended ones not yet forgotten); "
    "more registrations are refused");
ABSL_FLAG(uint32_t, max_sessions_per_index, 16,
          "Sessions remembered for one task index; more registrations are refused");
ABSL_FLAG(absl::Duration, session_retention, absl::Minutes(10),
          "Ended sessions, and silent ones holding no shard, are forgotten after this");
ABSL_FLAG(double, registrations_per_second, 10,
          "Registrations one peer host may make per second on average; 0: unlimited");
ABSL_FLAG(uint32_t, registration_burst, 256,
          "Registrations one peer host may make at once");

namespace elasticbatch::aimaster {

JobFlags ReadJobFlags() {
  JobFlags f;
  f.inputs = absl::GetFlag(FLAGS_input);
  f.outputs = absl::GetFlag(FLAGS_output);
  f.shard_input = absl::GetFlag(FLAGS_shard_input);
  f.shard_bytes = absl::GetFlag(FLAGS_shard_bytes).bytes;
  f.shard_records = absl::GetFlag(FLAGS_shard_records);
  f.shard_per_file = absl::GetFlag(FLAGS_shard_per_file);
  f.records = absl::GetFlag(FLAGS_records);
  f.state_dir = absl::GetFlag(FLAGS_state_dir);
  f.lease_timeout = absl::GetFlag(FLAGS_lease_timeout);
  f.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  f.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  f.max_failed_shards = absl::GetFlag(FLAGS_max_failed_shards);
  f.speculation = absl::GetFlag(FLAGS_speculation);
  f.speculation_multiplier = absl::GetFlag(FLAGS_speculation_multiplier);
  f.job_id = absl::GetFlag(FLAGS_job_id);
  const char* job_name = std::getenv("JOB_NAME");
  f.job_name_env = job_name != nullptr ? job_name : "";
  f.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  RequestLimits& l = f.limits;
  l.max_message_bytes = absl::GetFlag(FLAGS_max_message_size).bytes;
  l.max_shards_per_call = absl::GetFlag(FLAGS_max_shards_per_call);
  l.max_answer_bytes = absl::GetFlag(FLAGS_max_answer_size).bytes;
  l.max_leases_per_session = absl::GetFlag(FLAGS_max_leases_per_session);
  l.max_error_bytes = absl::GetFlag(FLAGS_max_error_size).bytes;
  l.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  l.max_sessions_per_index = absl::GetFlag(FLAGS_max_sessions_per_index);
  l.session_retention = absl::GetFlag(FLAGS_session_retention);
  l.registrations_per_second = absl::GetFlag(FLAGS_registrations_per_second);
  l.registration_burst = absl::GetFlag(FLAGS_registration_burst);
  return f;
}

}  // namespace elasticbatch::aimaster
