// The job's and the local run's configuration as functions of plain flag
// structs: defaults, the sharding choices, and refusals that name the flag.
#include "aimaster/job/job_config.h"

#include <string>

#include "absl/time/time.h"
#include "aimaster/job/local_job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

class JobConfigTest : public ::testing::Test {
 protected:
  JobFlags Flags() const {
    JobFlags f;
    f.inputs = {"data=" + dir_.path() + "/in", "extra=/elsewhere"};
    f.outputs = {"out=" + dir_.path() + "/out"};
    return f;
  }
  std::string Error(const JobFlags& f) const {
    return std::string(JobConfigFromFlags(f).status().message());
  }
  testing::TempDir dir_;
};

TEST_F(JobConfigTest, DefaultsAreTheFlagsDefaults) {
  absl::StatusOr<JobConfig> c = JobConfigFromFlags(Flags());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sharded().name, "data");
  EXPECT_EQ(c->primary_output().name, "out");
  EXPECT_EQ(c->mode, ShardingMode::kBytes);
  EXPECT_EQ(c->shard_size, 4u << 20);
  EXPECT_EQ(c->state_dir, dir_.path() + "/out/_state");
  EXPECT_EQ(c->coordinator.job_id, "elasticbatch");
  EXPECT_EQ(c->coordinator.lease_timeout, absl::Seconds(30));
  EXPECT_EQ(c->coordinator.heartbeat_interval, absl::Seconds(2));
  EXPECT_EQ(c->coordinator.max_attempts, 3u);
  EXPECT_TRUE(c->coordinator.speculation);
  EXPECT_EQ(c->coordinator.input_channel, "data");
  EXPECT_EQ(c->coordinator.output_channel, "out");
}

TEST_F(JobConfigTest, ShardingChoices) {
  JobFlags f = Flags();
  f.records = 5000;
  absl::StatusOr<JobConfig> c = JobConfigFromFlags(f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mode, ShardingMode::kRecords);
  EXPECT_EQ(c->shard_size, 1000u);
  f = Flags();
  f.shard_per_file = true;
  f.shard_input = "extra";
  c = JobConfigFromFlags(f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mode, ShardingMode::kPerFile);
  EXPECT_EQ(c->sharded().name, "extra");
  f.shard_bytes = 100;
  EXPECT_EQ(Error(f), "give --shard-bytes or --shard-per-file, not both");
}

TEST_F(JobConfigTest, JobIdFromTheFlagElseJobName) {
  JobFlags f = Flags();
  f.job_name_env = "kubedl-job";
  EXPECT_EQ(JobConfigFromFlags(f)->coordinator.job_id, "kubedl-job");
  f.job_id = "mine";
  EXPECT_EQ(JobConfigFromFlags(f)->coordinator.job_id, "mine");
}

TEST_F(JobConfigTest, RefusalsNameTheFlag) {
  JobFlags f = Flags();
  f.inputs = {};
  EXPECT_EQ(Error(f), "give at least one --input NAME=PATH");
  f = Flags();
  f.outputs = {"_x=/o"};
  EXPECT_THAT(Error(f), HasSubstr("--output channel name '_x'"));
  f = Flags();
  f.shard_input = "nope";
  EXPECT_EQ(Error(f), "--shard-input 'nope' is not an --input channel");
  f = Flags();
  f.lease_timeout = absl::Seconds(1);
  EXPECT_EQ(Error(f), "--lease-timeout must be longer than --heartbeat-interval");
  f = Flags();
  f.speculation_multiplier = 0.5;
  EXPECT_EQ(Error(f), "--speculation-multiplier must be at least 1");
}

TEST_F(JobConfigTest, RequestLimitsComeFromTheFlagsAndAreChecked) {
  JobFlags f = Flags();
  f.limits.max_shards_per_call = 8;
  f.limits.max_message_bytes = 1 << 20;
  absl::StatusOr<JobConfig> c = JobConfigFromFlags(f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator.limits.max_shards_per_call, 8u);
  EXPECT_EQ(c->coordinator.limits.max_message_bytes, 1u << 20);
  EXPECT_EQ(c->coordinator.limits.max_sessions_per_index, 16u);
  f = Flags();
  f.limits.max_shards_per_call = 0;
  EXPECT_EQ(Error(f), "--max-shards-per-call must be positive");
  f = Flags();
  f.limits.max_sessions = 0;
  EXPECT_EQ(Error(f), "--max-sessions must be positive");
  f = Flags();
  f.limits.max_error_bytes = 1 << 20;
  EXPECT_EQ(Error(f), "--max-error-size must be within 256..32KiB");
  f = Flags();
  f.limits.session_retention = absl::Seconds(30);
  EXPECT_EQ(Error(f), "--session-retention must be longer than --lease-timeout");
  f = Flags();
  f.limits.registrations_per_second = -1;
  EXPECT_EQ(Error(f), "--registrations-per-second must be 0 or more");
}

TEST_F(JobConfigTest, RunPutsOutputsAndStateInTheJobDirectory) {
  JobFlags f = Flags();
  f.outputs = {"out", "logs=/var/logs"};
  const JobFlags with = WithRunDefaults(f, "/jobs/7");
  EXPECT_EQ(with.outputs,
            (std::vector<std::string>{"out=/jobs/7/output/out", "logs=/var/logs"}));
  EXPECT_EQ(with.state_dir, "/jobs/7/state");
  f.state_dir = "/kept";
  EXPECT_EQ(WithRunDefaults(f, "/jobs/7").state_dir, "/kept");
}

TEST_F(JobConfigTest, LocalJobOptionsCarryTheFleetAndHyperparameters) {
  RunFlags run;
  run.workers = 4;
  run.hyperparameters = {"lr=0.1"};
  run.restart_policy = "exit-code";
  absl::StatusOr<LocalJobOptions> o =
      LocalJobOptionsFromFlags(Flags(), run, "/jobs/7", "python main.py");
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(o->config.coordinator.fleet.has_value());
  EXPECT_EQ(o->config.coordinator.fleet->workers, 4u);
  EXPECT_EQ(o->config.coordinator.fleet->restart_policy, RestartPolicy::kExitCode);
  EXPECT_EQ(o->hyperparameters, (NameValues{{"lr", "0.1"}}));
  EXPECT_EQ(o->port, 0) << "a free port unless one is asked for";
  EXPECT_EQ(o->command, "python main.py");

  run.workers = 0;
  EXPECT_EQ(LocalJobOptionsFromFlags(Flags(), run, "/j", "c").status().message(),
            "--workers must be within 1..10000");
  run.workers = 1;
  run.hyperparameters = {"lr"};
  EXPECT_EQ(LocalJobOptionsFromFlags(Flags(), run, "/j", "c").status().message(),
            "--hp 'lr' must be NAME=VALUE");
  run.hyperparameters = {};
  run.heartbeat_timeout = absl::Seconds(2);
  EXPECT_EQ(LocalJobOptionsFromFlags(Flags(), run, "/j", "c").status().message(),
            "--heartbeat-timeout must be longer than --heartbeat-interval");
}

}  // namespace
}  // namespace elasticbatch::aimaster
