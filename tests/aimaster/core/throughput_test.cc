// WorkerThroughput and JobThroughput: totals, sampled rates, the window.
#include "aimaster/core/throughput.h"

#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(ThroughputTest, WorkerRatesWaitForASecondThenAverage) {
  WorkerThroughput w(kStart);
  w.OnCommit(10, kStart + absl::Milliseconds(500));  // under a second: no sample yet
  EXPECT_EQ(w.shards(), 1u);
  EXPECT_EQ(w.records(), 10u);
  EXPECT_EQ(w.shards_per_second(), 0);
  w.OnCommit(30, kStart + absl::Seconds(2));  // 2 shards, 40 records in 2s
  EXPECT_DOUBLE_EQ(w.shards_per_second(), 1.0);
  EXPECT_DOUBLE_EQ(w.records_per_second(), 20.0);
  w.OnCommit(10, kStart + absl::Seconds(3));  // 1 shard, 10 records in 1s
  EXPECT_DOUBLE_EQ(w.shards_per_second(), 0.3 * 1.0 + 0.7 * 1.0);
  EXPECT_DOUBLE_EQ(w.records_per_second(), 0.3 * 10.0 + 0.7 * 20.0);
  EXPECT_EQ(w.shards(), 3u);
  EXPECT_EQ(w.records(), 50u);
}

TEST(ThroughputTest, JobRatesOverTheWindow) {
  JobThroughput job;
  EXPECT_FALSE(job.Current().has_value());
  job.Sample(kStart, 0, 0);
  EXPECT_FALSE(job.Current().has_value());
  job.Sample(kStart + absl::Seconds(10), 5, 50);
  ASSERT_TRUE(job.Current().has_value());
  EXPECT_DOUBLE_EQ(job.Current()->shards_per_second, 0.5);
  EXPECT_DOUBLE_EQ(job.Current()->records_per_second, 5.0);
  // Samples older than the 30s window drop out (two are always kept).
  job.Sample(kStart + absl::Seconds(40), 35, 350);
  job.Sample(kStart + absl::Seconds(41), 36, 360);
  EXPECT_DOUBLE_EQ(job.Current()->shards_per_second, (36.0 - 35.0) / 1.0);  // 40s..41s
}

}  // namespace
}  // namespace elasticbatch::aimaster
