// The run's reports: thousands separators, the progress line, and
// summary.json from a coordinator driven on a fake clock.
#include "aimaster/job/job_summary.h"

#include <memory>
#include <optional>
#include <string>

#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

TEST(JobSummaryTest, ThousandsSeparators) {
  EXPECT_EQ(WithThousandsSeparators(0), "0");
  EXPECT_EQ(WithThousandsSeparators(999), "999");
  EXPECT_EQ(WithThousandsSeparators(1000), "1,000");
  EXPECT_EQ(WithThousandsSeparators(1234567), "1,234,567");
}

TEST(JobSummaryTest, ProgressLine) {
  JobProgress p;
  p.total_shards = 10;
  p.committed_shards = 3;
  p.quarantined_shards = 1;
  p.committed_records = 12345;
  p.records_per_second = 1500.7;
  p.eta = absl::Milliseconds(5900);
  p.workers_running = 2;
  p.workers_starting = 1;
  EXPECT_EQ(ProgressLine(p),
            "shards 4/10 (1 quarantined) | 12,345 records, 1,500/s | ETA 5s | workers: "
            "2 running, 1 starting, 0 restarting");
}

TEST(JobSummaryTest, SummaryJsonHoldsTheJobAndEveryAttempt) {
  FakeClock clock;
  absl::StatusOr<ShardEnumerator> shards = ShardEnumerator::ForRecords(100, 10);
  ASSERT_TRUE(shards.ok());
  CoordinatorOptions options;
  options.job_id = "job \"7\"";
  FleetOptions fleet;
  fleet.workers = 1;
  options.fleet = fleet;
  JobCoordinator coordinator(&clock, &*shards, nullptr, options);
  coordinator.StartWorkers();
  coordinator.WorkerStarted(0, 0, 100);
  clock.Advance(absl::Milliseconds(1500));
  coordinator.WorkerExited(0, 0, 137);
  coordinator.Stop("operator");
  testing::TempDir dir;
  const std::string path = dir.path() + "/summary.json";
  ASSERT_TRUE(WriteSummaryJson(coordinator, path).ok());
  const std::string json = testing::ReadFileOrEmpty(path);
  EXPECT_EQ(json,
            R"({"job_id":"job \"7\"","state":"failed","reason":"stopped: operator",)"
            R"("total_shards":10,"committed_shards":0,"quarantined_shards":0,)"
            R"("committed_records":0,"elapsed_seconds":1.5,"workers":[{"index":0,)"
            R"("state":"stopped","restarts":1,"backups":0,"shards":0,"records":0,)"
            R"("failure":"","attempts":[{"attempt":0,"backup":false,"state":"failed",)"
            R"("exit_code":137,"startup_seconds":null,"shards":0,"records":0,)"
            R"("detail":"exited with status 137"}]}]})"
            "\n");
}

}  // namespace
}  // namespace elasticbatch::aimaster
