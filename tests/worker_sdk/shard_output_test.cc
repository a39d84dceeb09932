// ShardOutput against a real master on loopback: a failed write is never
// forgotten, and a failed output is never published.
#include "elasticbatch/shard_output.h"

#include <signal.h>
#include <sys/resource.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "elasticbatch/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch {
namespace {

using aimaster::CoordinatorOptions;
using aimaster::MasterFixture;
using ::testing::HasSubstr;

// Lowers RLIMIT_FSIZE (with SIGXFSZ ignored, so a write past it fails with
// EFBIG instead of killing us) for its lifetime; the destructor lets files
// grow again. Process-wide: keep the scope to the writes under test.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(getrlimit(RLIMIT_FSIZE, &saved_), 0);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &lowered), 0);
  }
  ~FileSizeLimit() {
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &saved_), 0);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_ = SIG_DFL;
};

CoordinatorOptions Options() {
  CoordinatorOptions o;
  o.heartbeat_interval = absl::Milliseconds(100);
  o.lease_timeout = absl::Seconds(30);
  return o;
}

WorkerOptions ForMaster(const MasterFixture& master) {
  WorkerOptions o;
  o.master_address = master.target();
  o.input_root = master.input_dir();
  o.output_dir = master.output_dir();
  o.master_lost_timeout = absl::Seconds(60);
  return o;
}

TEST(ShardOutputTest, AFailedWriteIsStickyAndTheOutputIsNeverPublished) {
  MasterFixture master({{"a.txt", "one\ntwo\n"}}, 100000, Options());
  auto worker = Worker::Create(ForMaster(master));
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<std::optional<Shard>> shard = (*worker)->NextShard();
  ASSERT_TRUE(shard.ok() && shard->has_value());
  auto out = ShardOutput::Open(**shard, master.output_dir());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE((*out)->WriteLine("first").ok());
  absl::Status failed;
  {
    FileSizeLimit limit(16 << 10);
    failed = (*out)->Write(std::string(1 << 20, 'x'));
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.message()), HasSubstr((*out)->staging_path()));
  // The file could grow again now: a writer that forgot the failure would take
  // this line and publish a file with a hole where the megabyte should be.
  absl::Status later = (*out)->WriteLine("last");
  EXPECT_EQ(later, failed);
  absl::Status committed = (*out)->Commit();
  EXPECT_EQ(committed, failed);
  EXPECT_FALSE(std::filesystem::exists((*out)->final_path()));
  EXPECT_FALSE(std::filesystem::exists((*out)->staging_path()));
  for (int commits : master.CommitsPerShard()) EXPECT_EQ(commits, 0);
  // The shard can still be failed (and so retried elsewhere).
  EXPECT_TRUE((*shard)->Fail(committed).ok());
}

TEST(ShardOutputTest, WritesAfterCommitAreRefused) {
  MasterFixture master({{"a.txt", "one\n"}}, 100000, Options());
  auto worker = Worker::Create(ForMaster(master));
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<std::optional<Shard>> shard = (*worker)->NextShard();
  ASSERT_TRUE(shard.ok() && shard->has_value());
  auto out = ShardOutput::Open(**shard, master.output_dir());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE((*out)->WriteLine("ONE").ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(testing::ReadFileOrEmpty((*out)->final_path()), "ONE\n");
  EXPECT_EQ((*out)->WriteLine("late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*out)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(testing::ReadFileOrEmpty((*out)->final_path()), "ONE\n");
}

}  // namespace
}  // namespace elasticbatch
