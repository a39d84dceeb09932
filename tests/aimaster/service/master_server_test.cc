// MasterServer when its journal fails: the master stops, it never retries and
// carries on, and nothing that was not durable is acknowledged.
#include "aimaster/service/master_server.h"

#include <grpcpp/client_context.h>

#include <cerrno>
#include <memory>
#include <string>

#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

v1::LeaseRef Lease(const v1::Shard& s) {
  v1::LeaseRef l;
  l.set_shard_id(s.shard_id());
  l.set_attempt(s.attempt());
  return l;
}

class MasterServerJournalFailureTest : public ::testing::Test {
 protected:
  MasterServerJournalFailureTest()
      : shards_(*ShardEnumerator::ForRecords(/*records=*/4, /*shard_records=*/1)) {
    CoordinatorOptions options;
    options.speculation = false;
    options.job_id = "fsync-test";
    options.input_channel = "data";
    options.output_channel = "out";
    auto journal = Journal::Open(
        dir_.path() + "/state",
        {shards_.fingerprint(), shards_.shard_count(), "fsync-test", "/out", "data"}, {},
        &fs_);
    EXPECT_TRUE(journal.ok()) << journal.status();
    journal_ = *std::move(journal);
    coordinator_ =
        std::make_unique<JobCoordinator>(&clock_, &shards_, journal_.get(), options);
    MasterServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    server_options.tick_interval = absl::Milliseconds(20);
    auto server = MasterServer::Start(coordinator_.get(), journal_.get(), server_options);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::AIMaster::NewStub(server_->InProcessChannel());
  }
  ~MasterServerJournalFailureTest() override { server_->Shutdown(); }

  grpc::Status Register(uint32_t index, uint64_t* session) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(index);
    req.set_pid(100 + static_cast<int>(index));
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RegisterWorker(&ctx, req, &resp);
    *session = resp.session_id();
    return s;
  }

  testing::TempDir dir_;
  FaultyFileSystem fs_;
  RealClock clock_;
  ShardEnumerator shards_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JobCoordinator> coordinator_;
  std::unique_ptr<MasterServer> server_;
  std::unique_ptr<v1::AIMaster::Stub> stub_;
};

TEST_F(MasterServerJournalFailureTest, AFailedFsyncStopsTheMasterWithoutAcknowledging) {
  uint64_t session = 0;
  ASSERT_TRUE(Register(0, &session).ok());
  v1::AcquireShardsResponse acquired;
  {
    v1::AcquireShardsRequest req;
    req.set_session_id(session);
    req.set_max_shards(2);
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->AcquireShards(&ctx, req, &acquired).ok());
    ASSERT_EQ(acquired.shards_size(), 2);
  }
  const v1::Shard& done = acquired.shards(0);
  const v1::Shard& held = acquired.shards(1);
  {
    v1::CommitShardRequest req;
    req.set_session_id(session);
    *req.add_commits()->mutable_lease() = Lease(done);
    req.mutable_commits(0)->set_records(1);
    v1::CommitShardResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CommitShard(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.results_size(), 1);
    ASSERT_EQ(resp.results(0).decision(), v1::CommitResult::GRANTED);
  }

  // The worker published its output and confirms it; the commit record cannot
  // be made durable.
  fs_.FailSyncs(EIO);
  {
    v1::HeartbeatRequest req;
    req.set_session_id(session);
    *req.add_published() = Lease(done);
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.confirmed_size(), 0);
  }
  const absl::Status ended = server_->WaitForEnd(absl::Seconds(60));
  ASSERT_FALSE(ended.ok());
  EXPECT_THAT(std::string(ended.message()), HasSubstr("fdatasync " + journal_->path()));
  const JobProgress progress = coordinator_->Progress();
  EXPECT_EQ(progress.state, JobState::kFailed);
  EXPECT_THAT(progress.reason, HasSubstr("journal failed"));
  EXPECT_THAT(progress.reason, HasSubstr(journal_->path()));

  // Even with the disk working again nothing is retried or acknowledged, and
  // every call that waits for durability is refused.
  fs_.FailSyncs(0);
  {
    v1::HeartbeatRequest req;
    req.set_session_id(session);
    *req.add_published() = Lease(done);
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    if (stub_->Heartbeat(&ctx, req, &resp).ok()) {
      EXPECT_EQ(resp.confirmed_size(), 0);
    }
  }
  uint64_t other = 0;
  grpc::Status registered = Register(1, &other);
  EXPECT_EQ(registered.error_code(), grpc::StatusCode::UNAVAILABLE)
      << registered.error_message();
  {
    v1::FailShardRequest req;
    req.set_session_id(session);
    *req.mutable_lease() = Lease(held);
    req.set_error("model crashed");
    v1::FailShardResponse resp;
    grpc::ClientContext ctx;
    grpc::Status failed = stub_->FailShard(&ctx, req, &resp);
    EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE)
        << failed.error_message();
  }
  EXPECT_EQ(journal_->durable_seq(), 0u);  // the commit never became durable
  EXPECT_FALSE(journal_->SyncAll().ok());
}

}  // namespace
}  // namespace elasticbatch::aimaster
