// The worker SDK against a hand-written fake master (tests/worker_sdk/
// fake_master.h) and, where time matters, a fake clock: the loop API
// (Worker::Shards, Shard::OpenLines, Shard::OpenOutput) and lease renewal,
// with no server, no port and no sleeps. worker_test.cc keeps the cases where
// the wire and the real master are the point.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "elasticbatch/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"
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

std::string Predict(const std::string& line) { return line; }

// The loop of README.md's SDK section (but for the counter and the layout): every
// line copied once, each shard committed exactly once, the range ends with
// the job.
// `worker` as Worker::FromEnvironment() returns it.
int ReadmeLoop(absl::StatusOr<std::unique_ptr<Worker>>& worker, int* shards) {
  for (absl::StatusOr<elasticbatch::Shard>& shard :
       (*worker)->Shards()) {   // ends with the job
    if (!shard.ok()) return 1;  // the master was lost
    ++*shards;
    auto lines = shard->OpenLines();  // reports progress as it reads
    auto out = shard->OpenOutput();   // staged in the output channel
    if (!lines.ok()) {
      (void)shard->Fail(lines.status());
      continue;
    }
    if (!out.ok()) {
      (void)shard->Fail(out.status());
      continue;
    }
    std::string line;
    absl::StatusOr<bool> more;
    // A failed write is sticky: Commit() then returns it and publishes nothing.
    while ((more = (*lines)->Next(&line)).ok() && *more)
      (void)(*out)->WriteLine(Predict(line));
    absl::Status s =
        more.ok() ? (*out)->Commit() : more.status();  // published exactly once
    if (!s.ok() && !absl::IsAborted(s))
      (void)shard->Fail(s);  // ABORTED: another attempt won
  }
  return 0;
}

TEST(WorkerOnFakeMasterTest, TheShardRangeEndsWithTheJob) {
  Job job;
  Started s = Start(job);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::unique_ptr<Worker>> worker = std::move(s.worker);
  int shards = 0;
  EXPECT_EQ(ReadmeLoop(worker, &shards), 0);
  EXPECT_EQ(shards, 4);
  EXPECT_TRUE((*worker)->job_over());
  EXPECT_TRUE((*worker)->job_succeeded());
  std::string all;
  for (int i = 0; i < 4; ++i) {
    all += testing::ReadFileOrEmpty(absl::StrFormat("%s/part-%05d", job.out, i));
  }
  EXPECT_EQ(all, job.content);
  for (const auto& [id, commits] : s.master->commits()) EXPECT_EQ(commits, 1) << id;
  EXPECT_EQ(s.master->commits().size(), 4u);
  EXPECT_TRUE(s.master->failed().empty());
}

TEST(WorkerOnFakeMasterTest, TheShardRangeYieldsAnErrorOnceAndStops) {
  Job job;
  Started s = Start(job);
  ASSERT_NE(s.worker, nullptr);
  // Not transient: the worker gives up at once and the range says why.
  s.master->FailNextCalls(1000, absl::PermissionDeniedError("bad token"));
  std::vector<absl::StatusCode> seen;
  for (absl::StatusOr<Shard>& shard : s.worker->Shards()) {
    seen.push_back(shard.status().code());
    if (shard.ok()) (void)shard->Commit();
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), absl::StatusCode::kPermissionDenied);
  // Shards prefetched before the failure may come first; the error comes once.
  EXPECT_EQ(std::count(seen.begin(), seen.end(), absl::StatusCode::kPermissionDenied), 1);
}

TEST(WorkerOnFakeMasterTest, OpenOutputPublishesOnceAndACommitCannotRepeat) {
  Job job;
  Started s = Start(job);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::optional<Shard>> next = s.worker->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  Shard& shard = **next;
  auto out = shard.OpenOutput();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)->final_path(), job.out + "/" + shard.output_name());
  ASSERT_TRUE((*out)->WriteLine("result").ok());
  ASSERT_TRUE((*out)->Commit().ok());
  const absl::Status again = (*out)->Commit();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_EQ(shard.Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(testing::ReadFileOrEmpty((*out)->final_path()), "result\n");
  EXPECT_THAT(s.master->commits(), ElementsAre(::testing::Pair(shard.id(), 1)));
}

TEST(WorkerOnFakeMasterTest, TheLineReaderReportsProgressToTheShard) {
  Job job;
  FakeMaster::Options mo;
  mo.heartbeat_interval = absl::Milliseconds(20);
  Started s = Start(job, mo);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::optional<Shard>> next = s.worker->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  Shard& shard = **next;
  auto lines = shard.OpenLines();
  ASSERT_TRUE(lines.ok()) << lines.status();
  std::string line;
  ASSERT_TRUE(*(*lines)->Next(&line));
  ASSERT_TRUE(*(*lines)->Next(&line));
  EXPECT_EQ(shard.records(), 2u);
  // The heartbeat carries it to the master without a ReportProgress call.
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
    return s.master->progress(shard.id()).first == 2;
  }));
  EXPECT_EQ(s.master->progress(shard.id()), std::make_pair(uint64_t{2}, uint64_t{20}));
}

TEST(WorkerOnFakeMasterTest, TheLineReaderStopsWhenTheShardIsCancelled) {
  Job job;
  FakeMaster::Options mo;
  mo.heartbeat_interval = absl::Milliseconds(20);
  Started s = Start(job, mo);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::optional<Shard>> next = s.worker->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  Shard& shard = **next;
  auto lines = shard.OpenLines();
  auto out = shard.OpenOutput();
  ASSERT_TRUE(lines.ok() && out.ok());
  std::string line;
  ASSERT_TRUE(*(*lines)->Next(&line));
  ASSERT_TRUE((*out)->WriteLine(line).ok());
  s.master->Cancel(shard.id());  // a duplicate won
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + absl::Seconds(60),
                                 [&] { return shard.cancelled(); }));
  EXPECT_EQ((*lines)->Next(&line).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ((*out)->Commit().code(), absl::StatusCode::kAborted);
  EXPECT_FALSE(std::filesystem::exists((*out)->final_path()));
  EXPECT_TRUE(s.master->commits().empty());
}

TEST(WorkerOnFakeMasterTest, OpenLinesRefusesARecordsShard) {
  Job job;
  std::vector<v1::Shard> shards = job.shards();
  for (v1::Shard& shard : shards) shard.set_unit(v1::SHARD_UNIT_RECORDS);
  auto master = std::make_unique<FakeMaster>(shards);
  auto worker = internal::WorkerFactory::Create(job.options(), std::move(master),
                                                std::make_shared<internal::RealClock>());
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<std::optional<Shard>> next = (*worker)->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->OpenLines().status().code(), absl::StatusCode::kFailedPrecondition);
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

// Backoff runs on the injected clock: an unreachable master is retried until
// it answers, and given up master_lost_timeout after it stopped answering,
// with no real waiting.
TEST(WorkerOnFakeMasterTest, AnUnreachableMasterIsRetriedAndGivenUpOnFakeTime) {
  Job job;
  auto clock = std::make_shared<internal::FakeClock>();
  FakeMaster::Options mo;
  mo.clock = clock.get();
  mo.lease_timeout = absl::Hours(1);
  WorkerOptions o = job.options();
  o.prefetch = 0;
  o.master_lost_timeout = absl::Minutes(10);
  o.max_backoff = absl::Seconds(5);
  Started s = Start(job, mo, clock, o);
  ASSERT_NE(s.worker, nullptr);
  // Drives fake time while `done` is false: each step lets any backoff expire.
  auto drive = [&](const std::atomic<bool>& done) {
    for (int step = 0; step < 1000 && !done; ++step) {
      clock->BlockUntilWaiting(1, absl::Milliseconds(50));
      clock->Advance(o.max_backoff);
    }
  };

  s.master->FailNextCalls(5, absl::UnavailableError("connection refused"));
  std::atomic<bool> got{false};
  absl::StatusOr<std::optional<Shard>> first;
  std::thread user([&] {
    first = s.worker->NextShard();
    got = true;
  });
  drive(got);
  user.join();
  ASSERT_TRUE(first.ok() && first->has_value()) << first.status();
  EXPECT_TRUE((*first)->Commit().ok());

  const absl::Time lost = clock->Now();
  s.master->FailNextCalls(1 << 30, absl::UnavailableError("connection refused"));
  got = false;
  absl::StatusOr<std::optional<Shard>> next;
  user = std::thread([&] {
    next = s.worker->NextShard();
    got = true;
  });
  drive(got);
  user.join();
  EXPECT_EQ(next.status().code(), absl::StatusCode::kUnavailable) << next.status();
  EXPECT_THAT(std::string(next.status().message()), HasSubstr("unreachable"));
  EXPECT_GT(clock->Now() - lost, o.master_lost_timeout);
  EXPECT_LT(clock->Now() - lost, o.master_lost_timeout + absl::Minutes(1));
}

// A master restarted from its journal forgets sessions: the worker registers
// again with the leases it holds, and its shard is still its own to commit.
TEST(WorkerOnFakeMasterTest, AfterAMasterRestartTheWorkerRegistersWithItsLeases) {
  Job job;
  WorkerOptions o = job.options();
  o.prefetch = 0;
  Started s = Start(job, {}, nullptr, o);
  ASSERT_NE(s.worker, nullptr);
  absl::StatusOr<std::optional<Shard>> shard = s.worker->NextShard();
  ASSERT_TRUE(shard.ok() && shard->has_value());
  s.master->ForgetSessions();
  EXPECT_TRUE((*shard)->Commit().ok());
  EXPECT_EQ(s.master->registrations(), 2);
  EXPECT_THAT(s.master->expired(), ::testing::IsEmpty());
  EXPECT_EQ(s.master->commits().at((*shard)->id()), 1);
}

}  // namespace
}  // namespace elasticbatch
