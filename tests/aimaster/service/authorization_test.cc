// Every RPC of both services is authenticated: the hostile client of issue 12
// (no token, a wrong token, a worker token stopping the job) is refused and
// changes nothing.
#include "aimaster/service/authorization.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/auth/token.h"
#include "elasticbatch/v1/admin.grpc.pb.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"

namespace elasticbatch::aimaster {
namespace {

const std::string kWorkerToken = auth::GenerateToken();
const std::string kAdminToken = auth::GenerateToken();

class AuthorizationTest : public ::testing::Test {
 protected:
  AuthorizationTest()
      : master_(MasterFixture::Generated(2, 100), /*shard_bytes=*/50, Options(),
                absl::Milliseconds(20), ServerOptions()),
        stub_(v1::AIMaster::NewStub(master_.server().InProcessChannel())),
        admin_(v1::Admin::NewStub(master_.server().InProcessChannel())) {}

  static CoordinatorOptions Options() {
    CoordinatorOptions o;
    o.job_id = "auth-test";
    o.input_channel = "data";
    o.output_channel = "predictions";
    return o;
  }
  static MasterServerOptions ServerOptions() {
    MasterServerOptions o;
    o.worker_token = kWorkerToken;
    o.admin_token = kAdminToken;
    return o;
  }

  // A context carrying `token` (none when empty).
  static std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", auth::BearerHeader(token));
    return ctx;
  }

  grpc::Status Register(const std::string& token, v1::RegisterWorkerResponse* resp) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(0);
    req.set_pid(100);
    return stub_->RegisterWorker(As(token).get(), req, resp);
  }

  MasterFixture master_;
  std::unique_ptr<v1::AIMaster::Stub> stub_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

TEST_F(AuthorizationTest,
       ACallWithoutOrWithAWrongTokenIsUnauthenticatedAndChangesNothing) {
  v1::RegisterWorkerResponse resp;
  EXPECT_EQ(Register("", &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Register(auth::GenerateToken(), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(master_.coordinator().Sessions().empty());

  // Every worker RPC checks, not only registration.
  v1::AcquireShardsRequest acquire;
  acquire.set_session_id(1);
  acquire.set_max_shards(1000);
  v1::AcquireShardsResponse acquired;
  EXPECT_EQ(stub_->AcquireShards(As("").get(), acquire, &acquired).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::HeartbeatRequest hb;
  v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(stub_->Heartbeat(As("").get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::CommitShardRequest commit;
  v1::CommitShardResponse commit_resp;
  EXPECT_EQ(stub_->CommitShard(As("").get(), commit, &commit_resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::FailShardRequest fail;
  v1::FailShardResponse fail_resp;
  EXPECT_EQ(stub_->FailShard(As("").get(), fail, &fail_resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::JobStatus status;
  EXPECT_EQ(admin_->GetJobStatus(As("").get(), {}, &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::StopJobResponse stopped;
  EXPECT_EQ(admin_->StopJob(As("").get(), {}, &stopped).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(master_.coordinator().Progress().state, JobState::kRunning);
  EXPECT_EQ(master_.coordinator().Progress().leased_shards, 0u);
}

TEST_F(AuthorizationTest, TheWorkerTokenRunsWorkersAndReadsStatusButCannotStopTheJob) {
  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(kWorkerToken, &reg).ok());
  v1::AcquireShardsRequest acquire;
  acquire.set_session_id(reg.session_id());
  acquire.set_max_shards(1);
  v1::AcquireShardsResponse acquired;
  ASSERT_TRUE(stub_->AcquireShards(As(kWorkerToken).get(), acquire, &acquired).ok());
  EXPECT_EQ(acquired.shards_size(), 1);

  v1::JobStatus status;
  EXPECT_TRUE(admin_->GetJobStatus(As(kWorkerToken).get(), {}, &status).ok());
  v1::ListWorkersResponse workers;
  EXPECT_TRUE(admin_->ListWorkers(As(kWorkerToken).get(), {}, &workers).ok());
  v1::StopJobResponse stopped;
  grpc::Status stop = admin_->StopJob(As(kWorkerToken).get(), {}, &stopped);
  EXPECT_EQ(stop.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << stop.error_message();
  EXPECT_EQ(master_.coordinator().Progress().state, JobState::kRunning);
}

TEST_F(AuthorizationTest, TheAdminTokenStopsTheJob) {
  v1::StopJobRequest req;
  req.set_reason("operator");
  v1::StopJobResponse stopped;
  ASSERT_TRUE(admin_->StopJob(As(kAdminToken).get(), req, &stopped).ok());
  EXPECT_EQ(master_.coordinator().Progress().state, JobState::kFailed);
}

// Two authorization headers could be read differently by a proxy in front
// and by the master: refused whatever they hold.
TEST_F(AuthorizationTest, TwoAuthorizationHeadersAreRefused) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", auth::BearerHeader(kWorkerToken));
  ctx.AddMetadata("authorization", auth::BearerHeader(kAdminToken));
  v1::JobStatus status;
  EXPECT_EQ(admin_->GetJobStatus(&ctx, {}, &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(AuthorizerTest, WithoutTokensEveryCallPasses) {
  Authorizer open(auth::Authenticator("", ""));
  EXPECT_FALSE(open.enabled());
}

}  // namespace
}  // namespace elasticbatch::aimaster
