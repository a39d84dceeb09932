// DurabilityQueue over a journal on a file system that fails on request: calls
// are answered only once durable, and a failed fsync fails every call for good.
#include "aimaster/service/durability_queue.h"

#include <cerrno>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "aimaster/core/journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

class DurabilityQueueTest : public ::testing::Test {
 protected:
  DurabilityQueueTest() {
    auto j = Journal::Open(dir_.path(), {1, 4, "job", "/out", "data"}, {}, &fs_);
    EXPECT_TRUE(j.ok()) << j.status();
    if (j.ok()) journal_ = *std::move(j);
    queue_ =
        std::make_unique<DurabilityQueue>(journal_.get(), [this](const absl::Status& s) {
          absl::MutexLock lock(&mu_);
          failures_.push_back(s);
        });
  }

  uint64_t Append(uint64_t shard) { return journal_->AppendCommit({shard, 1, 1, 0}); }

  // Asks for `seq` and waits for the answer.
  absl::Status AnswerFor(uint64_t seq) {
    absl::Notification done;
    absl::Status got;
    queue_->AfterDurable(seq, [&](absl::Status s) {
      got = s;
      done.Notify();
    });
    done.WaitForNotification();
    return got;
  }

  std::vector<absl::Status> failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }

  testing::TempDir dir_;
  FaultyFileSystem fs_;
  std::unique_ptr<Journal> journal_;
  absl::Mutex mu_;
  std::vector<absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<DurabilityQueue> queue_;
};

TEST_F(DurabilityQueueTest, CallsAreAnsweredOnceTheirRecordsAreDurable) {
  const uint64_t first = Append(0);
  EXPECT_TRUE(AnswerFor(first).ok());
  EXPECT_GE(journal_->durable_seq(), first);
  EXPECT_TRUE(AnswerFor(0).ok());      // nothing to wait for
  EXPECT_TRUE(AnswerFor(first).ok());  // durable already
  const uint64_t second = Append(1);
  queue_->RequestSync(second);
  EXPECT_TRUE(AnswerFor(second).ok());

  // Destroying the queue syncs and answers whoever still waits.
  const uint64_t third = Append(2);
  absl::Status last = absl::UnknownError("never answered");
  queue_->AfterDurable(third, [&](absl::Status s) { last = s; });
  queue_.reset();
  EXPECT_TRUE(last.ok()) << last;
  EXPECT_GE(journal_->durable_seq(), third);
  EXPECT_TRUE(failures().empty());
}

// After a failed fsync the kernel may have dropped the dirty pages: retrying
// and carrying on would acknowledge records that are not on disk.
TEST_F(DurabilityQueueTest, AFailedSyncFailsEveryCallForGoodEvenOnceTheDiskRecovers) {
  const uint64_t durable = Append(0);
  ASSERT_TRUE(AnswerFor(durable).ok());

  fs_.FailSyncs(EIO);
  const uint64_t a = Append(1);
  const uint64_t b = Append(2);
  absl::Notification a_done, b_done;
  absl::Status a_got, b_got;
  queue_->AfterDurable(a, [&](absl::Status s) {
    a_got = s;
    a_done.Notify();
  });
  queue_->AfterDurable(b, [&](absl::Status s) {
    b_got = s;
    b_done.Notify();
  });
  a_done.WaitForNotification();
  b_done.WaitForNotification();
  for (const absl::Status& s : {a_got, b_got}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("fdatasync " + journal_->path()));
  }
  ASSERT_EQ(failures().size(), 1u);
  EXPECT_THAT(std::string(failures()[0].message()), HasSubstr(journal_->path()));

  // The disk works again: nothing succeeds any more, nothing is retried.
  fs_.FailSyncs(0);
  const int syncs = fs_.syncs();
  const uint64_t later = Append(3);
  queue_->RequestSync(later);
  EXPECT_EQ(AnswerFor(later).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(AnswerFor(durable).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(AnswerFor(0).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(journal_->durable_seq(), durable);
  EXPECT_EQ(fs_.syncs(), syncs);
  EXPECT_EQ(failures().size(), 1u);  // on_failure ran exactly once
  EXPECT_FALSE(journal_->SyncAll().ok());
}

TEST_F(DurabilityQueueTest, AFailedWriteFailsEveryCallForGood) {
  fs_.FailAppend(1, ENOSPC, /*partial=*/5);
  const uint64_t seq = Append(0);
  absl::Status s = AnswerFor(seq);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("No space left on device"));
  EXPECT_EQ(AnswerFor(Append(1)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failures().size(), 1u);
}

// The master shuts down after a journal failure: the queue must stop even
// though syncs were requested that can never be made.
TEST_F(DurabilityQueueTest, StopsAfterAFailureWithSyncsStillRequested) {
  fs_.FailSyncs(EIO);
  const uint64_t seq = Append(0);
  queue_->RequestSync(seq);
  EXPECT_EQ(AnswerFor(seq).code(), absl::StatusCode::kUnavailable);
  queue_->RequestSync(Append(1));
  queue_.reset();  // must return
  EXPECT_EQ(failures().size(), 1u);
}

}  // namespace
}  // namespace elasticbatch::aimaster
