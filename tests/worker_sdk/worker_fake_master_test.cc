// The worker SDK against a hand-written fake master (tests/worker_sdk/
// fake_master.h) and, where time matters, a fake clock: lease renewal, with
// no server, no port and no sleeps. worker_test.cc keeps the cases where
// the wire and the real master are the point.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "elasticbatch/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/worker_sdk/fake_master.h"
#include "worker_sdk/src/clock.h"
#include "worker_sdk/src/worker_core.h"

namespace elasticbatch {
namespace {

using ::testing::ElementsAre;
using testing::FakeMaster;
using ::testing::HasSubstr;

// 10 lines of 10 bytes ("line-0000\n"), in shards of 30 bytes.
struct Job {
  testing::TempDir dir;
  std::string in = dir.path() + "/in";
  std::string out = dir.path() + "/out";
  std::string content;
  Job() {
    for (int i = 0; i < 10; ++i) absl::StrAppend(&content, "line-", 1000 + i, "\n");
    testing::WriteFileOrDie(in + "/a.txt", content);
    std::filesystem::create_directories(out);
  }
  std::vector<v1::Shard> shards() const {
    return FakeMaster::ByteShards("a.txt", content.size(), 30);
  }
  WorkerOptions options() const {
    WorkerOptions o;
    o.master_address = "fake";
    o.input_root = in;
    o.output_dir = out;
    return o;
  }
};

struct Started {
  FakeMaster* master = nullptr;
  std::unique_ptr<Worker> worker;
};

Started Start(const Job& job, FakeMaster::Options master_options = {},
              std::shared_ptr<const internal::Clock> clock = nullptr,
              WorkerOptions options = WorkerOptions()) {
  if (clock == nullptr) clock = std::make_shared<internal::RealClock>();
  if (options.master_address.empty()) options = job.options();
  auto master = std::make_unique<FakeMaster>(job.shards(), master_options);
  Started s;
  s.master = master.get();
  auto worker = internal::WorkerFactory::Create(options, std::move(master), clock);
  EXPECT_TRUE(worker.ok()) << worker.status();
  if (worker.ok()) s.worker = std::move(*worker);
  return s;
}

// A slow shard takes three lease timeouts of (fake) time while two more sit
// prefetched and unstarted: only heartbeats keep all three leases alive.
TEST(WorkerOnFakeMasterTest, PrefetchedAndSlowShardsKeepTheirLeasesThroughHeartbeats) {
  Job job;
  auto clock = std::make_shared<internal::FakeClock>();
  FakeMaster::Options mo;
  mo.heartbeat_interval = absl::Milliseconds(100);
  mo.lease_timeout = absl::Milliseconds(600);
  mo.clock = clock.get();
  WorkerOptions o = job.options();
  o.prefetch = 2;
  Started s = Start(job, mo, clock, o);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::optional<Shard>> slow = s.worker->NextShard();
  ASSERT_TRUE(slow.ok() && slow->has_value());
  ASSERT_TRUE(s.master->AwaitLeased(3));
  // Time moves only while the worker's thread is idle, so each step's
  // heartbeat is due exactly then.
  ASSERT_TRUE(clock->BlockUntilWaiting(1));
  for (int step = 0; step < 18; ++step) {  // 1.8 s of fake time
    clock->Advance(mo.heartbeat_interval);
    ASSERT_TRUE(s.master->AwaitCallAt(clock->Now())) << "no heartbeat at step " << step;
    ASSERT_TRUE(clock->BlockUntilWaiting(1));
  }
  EXPECT_EQ(s.master->leased(), 3u) << "the prefetched shards must still be held";
  EXPECT_THAT(s.master->expired(), ::testing::IsEmpty());
  EXPECT_GE(s.master->heartbeats(), 18);
  ASSERT_TRUE((*slow)->Commit().ok());
  for (int taken = 1; taken < 4; ++taken) {
    absl::StatusOr<std::optional<Shard>> next = s.worker->NextShard();
    ASSERT_TRUE(next.ok() && next->has_value());
    ASSERT_TRUE((*next)->Commit().ok());
  }
  // The master answered WAIT while the last shards were held: the worker asks
  // again after (fake) retry_after and hears END.
  for (int step = 0; step < 100 && !s.worker->job_over(); ++step) {
    clock->BlockUntilWaiting(1, absl::Milliseconds(100));
    clock->Advance(absl::Milliseconds(10));
  }
  absl::StatusOr<std::optional<Shard>> end = s.worker->NextShard();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_FALSE(end->has_value());
  EXPECT_TRUE(s.worker->job_succeeded());
  EXPECT_EQ(s.master->commits().size(), 4u);
  for (const auto& [id, commits] : s.master->commits()) EXPECT_EQ(commits, 1) << id;
}

}  // namespace
}  // namespace elasticbatch
