// The gRPC adapters over an in-process channel: message conversion, status
// codes, long-poll, heartbeat commands, and the Admin service.
#include <grpcpp/client_context.h>

#include <chrono>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "elasticbatch/v1/admin.grpc.pb.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"
#include "tests/testing/wait.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

class AimasterServiceTest : public ::testing::Test {
 protected:
  AimasterServiceTest()
      : master_(/*files=*/2, /*bytes_each=*/100, /*shard_bytes=*/50, Options()),
        stub_(v1::AIMaster::NewStub(master_.server().InProcessChannel())),
        admin_(v1::Admin::NewStub(master_.server().InProcessChannel())) {}

  static CoordinatorOptions Options() {
    CoordinatorOptions o;
    o.max_attempts = 2;
    o.speculation = false;
    o.job_id = "svc-test";
    o.input_channel = "data";
    o.output_channel = "predictions";
    return o;
  }

  uint64_t Register(uint32_t index) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(index);
    req.set_pid(100 + static_cast<int>(index));
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
    return resp.session_id();
  }

  grpc::Status Acquire(uint64_t session, uint32_t n, v1::AcquireShardsResponse* resp,
                       std::vector<v1::LeaseRef> published = {}, int wait_ms = 0) {
    v1::AcquireShardsRequest req;
    req.set_session_id(session);
    req.set_max_shards(n);
    req.mutable_wait()->set_seconds(wait_ms / 1000);
    req.mutable_wait()->set_nanos((wait_ms % 1000) * 1'000'000);
    for (auto& p : published) *req.add_published() = p;
    grpc::ClientContext ctx;
    return stub_->AcquireShards(&ctx, req, resp);
  }

  static v1::LeaseRef Lease(const v1::Shard& s) {
    v1::LeaseRef l;
    l.set_shard_id(s.shard_id());
    l.set_attempt(s.attempt());
    return l;
  }

  v1::FailShardResponse Fail(uint64_t session, const v1::Shard& s) {
    v1::FailShardRequest req;
    req.set_session_id(session);
    *req.mutable_lease() = Lease(s);
    req.set_error("model crashed");
    v1::FailShardResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->FailShard(&ctx, req, &resp).ok());
    return resp;
  }

  v1::ListShardsResponse ActiveShards() {
    v1::ListShardsRequest req;
    req.set_filter(v1::ListShardsRequest::ACTIVE);
    v1::ListShardsResponse shards;
    grpc::ClientContext ctx;
    EXPECT_TRUE(admin_->ListShards(&ctx, req, &shards).ok());
    return shards;
  }

  v1::CommitResult::Decision Commit(uint64_t session, const v1::Shard& s) {
    v1::CommitShardRequest req;
    req.set_session_id(session);
    *req.add_commits()->mutable_lease() = Lease(s);
    req.mutable_commits(0)->set_records(7);
    v1::CommitShardResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->CommitShard(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.results_size(), 1);
    return resp.results(0).decision();
  }

  MasterFixture master_;
  std::unique_ptr<v1::AIMaster::Stub> stub_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

TEST_F(AimasterServiceTest, RegisterAnswersJobFacts) {
  v1::RegisterWorkerRequest req;
  req.set_task_type("worker");
  req.set_task_index(0);
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
  EXPECT_NE(resp.session_id(), 0u);
  EXPECT_EQ(resp.job().job_id(), "svc-test");
  EXPECT_EQ(resp.job().input_channel(), "data");
  EXPECT_EQ(resp.job().output_channel(), "predictions");
  EXPECT_EQ(resp.job().total_shards(), 4u);
  EXPECT_EQ(resp.job().unit(), v1::SHARD_UNIT_BYTES);
  EXPECT_GT(resp.lease_timeout().seconds(), 0);
}

TEST_F(AimasterServiceTest, BadRequestsGetTheDocumentedCodes) {
  v1::RegisterWorkerRequest req;
  req.set_task_type("chief");
  v1::RegisterWorkerResponse reg;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->RegisterWorker(&ctx, req, &reg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("chief"));

  v1::AcquireShardsResponse resp;
  EXPECT_EQ(Acquire(424242, 1, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  const uint64_t session = Register(0);
  EXPECT_EQ(Acquire(session, 0, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::FailShardRequest fail;
  fail.set_session_id(session);
  fail.mutable_lease()->set_shard_id(1);
  fail.mutable_lease()->set_attempt(9);
  v1::FailShardResponse fail_resp;
  grpc::ClientContext fctx;
  s = stub_->FailShard(&fctx, fail, &fail_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(AimasterServiceTest, ShardsCarryTheirRangeAndTheJobEndsAfterConfirmation) {
  const uint64_t session = Register(0);
  v1::AcquireShardsResponse resp;
  ASSERT_TRUE(Acquire(session, 10, &resp).ok());
  ASSERT_EQ(resp.outcome(), v1::AcquireShardsResponse::SHARDS);
  ASSERT_EQ(resp.shards_size(), 4);
  EXPECT_EQ(resp.shards(0).channel(), "data");
  EXPECT_EQ(resp.shards(0).source(), "f0");
  EXPECT_EQ(resp.shards(1).begin(), 50u);
  EXPECT_EQ(resp.shards(1).end(), 100u);
  EXPECT_EQ(resp.shards(1).unit(), v1::SHARD_UNIT_BYTES);
  EXPECT_EQ(resp.shards(3).output_name(), "part-00003");
  EXPECT_EQ(resp.shards(0).attempt(), 1u);

  std::vector<v1::LeaseRef> published;
  for (const v1::Shard& s : resp.shards()) {
    ASSERT_EQ(Commit(session, s), v1::CommitResult::GRANTED);
    published.push_back(Lease(s));
  }
  v1::AcquireShardsResponse end;
  ASSERT_TRUE(Acquire(session, 1, &end, published).ok());
  EXPECT_EQ(end.outcome(), v1::AcquireShardsResponse::END);
  EXPECT_TRUE(end.job_succeeded());
  // The confirmations are acknowledged once durable: keep sending them until then.
  std::set<uint64_t> acknowledged;
  for (const v1::LeaseRef& l : end.confirmed()) acknowledged.insert(l.shard_id());
  testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
    v1::HeartbeatRequest hb;
    hb.set_session_id(session);
    for (auto& p : published) *hb.add_published() = p;
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status sent = stub_->Heartbeat(&ctx, hb, &resp);
    EXPECT_TRUE(sent.ok()) << sent.error_message();
    for (const v1::LeaseRef& l : resp.confirmed()) acknowledged.insert(l.shard_id());
    return !sent.ok() || acknowledged.size() >= 4;
  });
  EXPECT_EQ(acknowledged.size(), 4u);
  for (int c : master_.CommitsPerShard()) EXPECT_EQ(c, 1);
}

TEST_F(AimasterServiceTest, WaitWhenEverythingIsLeasedAndWakeOnRequeue) {
  const uint64_t a = Register(0);
  const uint64_t b = Register(1);
  v1::AcquireShardsResponse all;
  ASSERT_TRUE(Acquire(a, 10, &all).ok());
  ASSERT_EQ(all.shards_size(), 4);

  v1::AcquireShardsResponse wait;
  ASSERT_TRUE(Acquire(b, 1, &wait).ok());
  EXPECT_EQ(wait.outcome(), v1::AcquireShardsResponse::WAIT);
  EXPECT_GT(wait.retry_after().nanos() + wait.retry_after().seconds(), 0);

  // A long-polling acquire gets the shard that A gives back.
  auto parked = std::async(std::launch::async, [&] {
    v1::AcquireShardsResponse r;
    EXPECT_TRUE(Acquire(b, 1, &r, {}, /*wait_ms=*/20000).ok());
    return r;
  });
  const v1::FailShardResponse fail_resp = Fail(a, all.shards(2));
  EXPECT_EQ(fail_resp.outcome(), v1::FailShardResponse::REQUEUED);
  EXPECT_EQ(fail_resp.failures(), 1u);
  v1::AcquireShardsResponse got = parked.get();
  ASSERT_EQ(got.outcome(), v1::AcquireShardsResponse::SHARDS);
  EXPECT_EQ(got.shards(0).shard_id(), 2u);
  EXPECT_EQ(got.shards(0).attempt(), 2u);
}

TEST_F(AimasterServiceTest, AParkedAcquireKeepsTheCommitDecisionsOfItsFirstTry) {
  const uint64_t a = Register(0);
  const uint64_t b = Register(1);
  v1::AcquireShardsResponse mine, rest;
  ASSERT_TRUE(Acquire(b, 1, &mine).ok());
  ASSERT_EQ(mine.shards_size(), 1);
  ASSERT_TRUE(Acquire(a, 10, &rest).ok());
  ASSERT_EQ(rest.shards_size(), 3);

  // B asks to commit its shard and long-polls for more: the commit is decided
  // at once, the acquire waits for work.
  auto parked = std::async(std::launch::async, [&] {
    v1::AcquireShardsRequest req;
    req.set_session_id(b);
    req.set_max_shards(1);
    req.mutable_wait()->set_seconds(20);
    v1::ShardCompletion* c = req.add_commits();
    *c->mutable_lease() = Lease(mine.shards(0));
    c->set_records(3);
    v1::AcquireShardsResponse r;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->AcquireShards(&ctx, req, &r).ok());
    return r;
  });
  // Wait (bounded) until the grant is visible, so the acquire has parked or is parking.
  bool granted = false;
  for (int i = 0; i < 10000 && !granted; ++i) {
    const v1::ListShardsResponse active = ActiveShards();
    for (const v1::ShardInfo& info : active.shards()) {
      for (const v1::ShardLeaseInfo& l : info.leases()) granted |= l.commit_granted();
    }
    if (!granted) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(granted);

  Fail(a, rest.shards(0));

  v1::AcquireShardsResponse got = parked.get();
  ASSERT_EQ(got.outcome(), v1::AcquireShardsResponse::SHARDS);
  EXPECT_EQ(got.shards(0).shard_id(), rest.shards(0).shard_id());
  ASSERT_EQ(got.commit_results_size(), 1);
  EXPECT_EQ(got.commit_results(0).lease().shard_id(), mine.shards(0).shard_id());
  EXPECT_EQ(got.commit_results(0).decision(), v1::CommitResult::GRANTED);
}

TEST_F(AimasterServiceTest, AWorkerThatDiesCountsAFailureOnlyForTheShardItStarted) {
  const uint64_t a = Register(0);
  v1::AcquireShardsResponse got;
  ASSERT_TRUE(Acquire(a, 2, &got).ok());
  ASSERT_EQ(got.shards_size(), 2);
  v1::HeartbeatRequest hb;
  hb.set_session_id(a);
  v1::ShardProgress* running = hb.add_progress();
  *running->mutable_lease() = Lease(got.shards(0));
  running->set_started(true);
  v1::ShardProgress* prefetched = hb.add_progress();
  *prefetched->mutable_lease() = Lease(got.shards(1));
  prefetched->set_started(false);
  v1::HeartbeatResponse hb_resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, hb, &hb_resp).ok());
  }
  // Another process takes over instance 0: the old one died holding both.
  v1::RegisterWorkerRequest again;
  again.set_task_type("worker");
  again.set_task_index(0);
  again.set_pid(999);
  v1::RegisterWorkerResponse again_resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->RegisterWorker(&ctx, again, &again_resp).ok());
  }
  std::map<uint64_t, uint32_t> failures;
  const v1::ListShardsResponse active = ActiveShards();
  for (const v1::ShardInfo& info : active.shards())
    failures[info.shard().shard_id()] = info.failures();
  EXPECT_EQ(failures[got.shards(0).shard_id()], 1u);
  EXPECT_EQ(failures[got.shards(1).shard_id()], 0u);
}

// The review's attack (issue 10, item 12): RegisterWorker calls that claim
// every shard as held and started, each from "another process" of the same
// index, quarantined every shard and failed the job. A claim alone counts no
// failure now, and a prefetched claim stays prefetched.
TEST_F(AimasterServiceTest, ClaimedLeasesOfSupersededRegistrationsCountNoFailure) {
  const uint64_t total = master_.shards().shard_count();
  for (int round = 0; round < 4; ++round) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(0);
    req.set_pid(1000 + round);
    for (uint64_t id = 0; id < total; ++id) {
      v1::HeldLease* h = req.add_held_leases();
      h->mutable_lease()->set_shard_id(id);
      h->mutable_lease()->set_attempt(static_cast<uint32_t>(round + 1));
      h->set_started(true);
    }
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
  }
  const JobProgress p = master_.coordinator().Progress();
  EXPECT_EQ(p.quarantined_shards, 0u);
  EXPECT_EQ(p.state, JobState::kRunning);
  const v1::ListShardsResponse active = ActiveShards();
  for (const v1::ShardInfo& info : active.shards()) {
    EXPECT_EQ(info.failures(), 0u) << info.shard().shard_id();
  }
}

TEST_F(AimasterServiceTest, AReclaimedLeaseKeepsItsStartedFlag) {
  // A worker holds two leases from "before the restart": one running, one
  // only prefetched. Its crash costs the running shard a failure once it has
  // reported progress here, and the prefetched one none.
  v1::RegisterWorkerRequest req;
  req.set_task_type("worker");
  req.set_task_index(0);
  req.set_pid(42);
  for (uint64_t id : {0, 1}) {
    v1::HeldLease* h = req.add_held_leases();
    h->mutable_lease()->set_shard_id(id);
    h->mutable_lease()->set_attempt(5);
    h->set_started(id == 0);
  }
  v1::RegisterWorkerResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
  }
  ASSERT_EQ(resp.reclaimed_size(), 2);
  v1::HeartbeatRequest hb;
  hb.set_session_id(resp.session_id());
  for (uint64_t id : {0, 1}) {
    v1::ShardProgress* p = hb.add_progress();
    p->mutable_lease()->set_shard_id(id);
    p->mutable_lease()->set_attempt(5);
    p->set_started(id == 0);
    p->set_records_done(id == 0 ? 3 : 0);
  }
  v1::HeartbeatResponse hb_resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, hb, &hb_resp).ok());
  }
  EXPECT_EQ(hb_resp.commands_size(), 0);
  Register(0);  // another process of instance 0: the old one died holding both
  std::map<uint64_t, uint32_t> failures;
  const v1::ListShardsResponse active = ActiveShards();
  for (const v1::ShardInfo& info : active.shards())
    failures[info.shard().shard_id()] = info.failures();
  EXPECT_EQ(failures[0], 1u);
  EXPECT_EQ(failures[1], 0u);
}

// Issue 10, item 8: a 75 MB host string reached the journal (in a quarantine
// record's worker name) and was dropped on replay. Fields are bounded here.
TEST_F(AimasterServiceTest, AnOversizedHostIsRefusedAtRegistration) {
  v1::RegisterWorkerRequest req;
  req.set_task_type("worker");
  req.set_task_index(0);
  req.set_host(std::string(1 << 20, 'h'));
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = stub_->RegisterWorker(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("host"));
  EXPECT_THAT(master_.coordinator().Sessions(), ::testing::IsEmpty());
}

TEST_F(AimasterServiceTest, AHugeErrorIsKeptBoundedInTheQuarantine) {
  const uint64_t a = Register(0);
  for (int attempt = 0; attempt < 2; ++attempt) {
    v1::AcquireShardsResponse got;
    ASSERT_TRUE(Acquire(a, 1, &got).ok());
    ASSERT_EQ(got.shards_size(), 1);
    ASSERT_EQ(got.shards(0).shard_id(), 0u);
    v1::FailShardRequest req;
    req.set_session_id(a);
    *req.mutable_lease() = Lease(got.shards(0));
    req.set_error(std::string(3 << 20, 'e') + " the end");
    v1::FailShardResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->FailShard(&ctx, req, &resp).ok());
  }
  bool truncated = false;
  const std::vector<ShardSnapshot> q = master_.coordinator().Shards(true, 10, &truncated);
  ASSERT_EQ(q.size(), 1u);
  ASSERT_EQ(q[0].errors.size(), 2u);
  for (const std::string& e : q[0].errors) {
    EXPECT_LE(e.size(), RequestLimits{}.max_error_bytes + 64);
    EXPECT_THAT(e, HasSubstr("bytes cut"));
    EXPECT_THAT(e, ::testing::EndsWith("the end"));
  }
  // And the journal replays what it accepted.
  int quarantines = 0;
  JournalReplay replay;
  replay.on_quarantine = [&](const QuarantineRecord& r) {
    ++quarantines;
    EXPECT_EQ(r.errors.size(), 2u);
  };
  ASSERT_TRUE(Journal::Read(master_.state_dir(), replay).ok());
  EXPECT_EQ(quarantines, 1);
}

// A long-polling acquire whose client went away must leave the queue: it
// used to stay parked and take the next requeued shard, which then sat with
// nobody until its lease expired.
TEST_F(AimasterServiceTest, AParkedAcquireWhoseClientLeftGetsNothing) {
  const uint64_t a = Register(0);
  const uint64_t b = Register(1);
  v1::AcquireShardsResponse all;
  ASSERT_TRUE(Acquire(a, 100, &all).ok());
  ASSERT_EQ(all.shards_size(), 4);
  v1::AcquireShardsRequest req;
  req.set_session_id(b);
  req.set_max_shards(1);
  req.mutable_wait()->set_seconds(20);
  v1::AcquireShardsResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::promise<grpc::Status> done;
  stub_->async()->AcquireShards(&ctx, &req, &resp,
                                [&](grpc::Status s) { done.set_value(s); });
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  testing::WaitUntil(give_up, [&] { return master_.server().parked_acquires() != 0; });
  ASSERT_EQ(master_.server().parked_acquires(), 1u);
  ctx.TryCancel();
  EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::CANCELLED);
  testing::WaitUntil(give_up, [&] { return master_.server().parked_acquires() == 0; });
  EXPECT_EQ(master_.server().parked_acquires(), 0u);
  Fail(a, all.shards(0));  // requeued: a parked call would take it now
  for (const SessionInfo& s : master_.coordinator().Sessions()) {
    if (s.session == b) {
      EXPECT_EQ(s.leases_held, 0u);
    }
  }
  v1::AcquireShardsResponse again;
  ASSERT_TRUE(Acquire(b, 1, &again).ok());
  ASSERT_EQ(again.shards_size(), 1);
  EXPECT_EQ(again.shards(0).shard_id(), all.shards(0).shard_id());
}

TEST_F(AimasterServiceTest, CommitDecisionsAndHeartbeatCommands) {
  const uint64_t a = Register(0);
  const uint64_t b = Register(1);
  v1::AcquireShardsResponse got;
  ASSERT_TRUE(Acquire(a, 1, &got).ok());
  const v1::Shard shard = got.shards(0);
  // B may not act on A's lease.
  EXPECT_EQ(Commit(b, shard), v1::CommitResult::LEASE_LOST);
  EXPECT_EQ(Commit(a, shard), v1::CommitResult::GRANTED);

  // A heartbeat naming a lease that is not current is told to cancel it.
  v1::HeartbeatRequest hb;
  hb.set_session_id(b);
  v1::ShardProgress* p = hb.add_progress();
  p->mutable_lease()->set_shard_id(3);
  p->mutable_lease()->set_attempt(5);
  v1::HeartbeatResponse hb_resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Heartbeat(&ctx, hb, &hb_resp).ok());
  ASSERT_EQ(hb_resp.commands_size(), 1);
  EXPECT_EQ(hb_resp.commands(0).kind(), v1::WorkerCommand::CANCEL_SHARD);
  EXPECT_EQ(hb_resp.commands(0).lease().shard_id(), 3u);
  EXPECT_THAT(hb_resp.commands(0).reason(), HasSubstr("not current"));
}

TEST_F(AimasterServiceTest, AdminShowsProgressAndStopEndsTheJob) {
  const uint64_t a = Register(4);
  v1::AcquireShardsResponse got;
  ASSERT_TRUE(Acquire(a, 2, &got).ok());

  v1::JobStatus status;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(admin_->GetJobStatus(&ctx, v1::GetJobStatusRequest(), &status).ok());
  }
  EXPECT_EQ(status.job_id(), "svc-test");
  EXPECT_EQ(status.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(status.total_shards(), 4u);
  EXPECT_EQ(status.leased_shards(), 2u);
  EXPECT_EQ(status.pending_shards(), 2u);

  const v1::ListShardsResponse shards = ActiveShards();
  ASSERT_EQ(shards.shards_size(), 2);
  EXPECT_EQ(shards.shards(0).state(), v1::SHARD_STATE_LEASED);
  ASSERT_EQ(shards.shards(0).leases_size(), 1);
  EXPECT_EQ(shards.shards(0).leases(0).task_index(), 4u);

  v1::ListWorkersResponse workers;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(admin_->ListWorkers(&ctx, v1::ListWorkersRequest(), &workers).ok());
  }
  ASSERT_EQ(workers.instances_size(), 1);
  EXPECT_EQ(workers.instances(0).task_index(), 4u);
  EXPECT_EQ(workers.instances(0).attempts(0).leases_held(), 2u);

  v1::StopJobRequest stop;
  stop.set_reason("maintenance");
  v1::StopJobResponse stopped;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(admin_->StopJob(&ctx, stop, &stopped).ok());
  }
  EXPECT_EQ(stopped.status().state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(stopped.status().reason(), HasSubstr("maintenance"));
  v1::AcquireShardsResponse end;
  ASSERT_TRUE(Acquire(a, 1, &end).ok());
  EXPECT_EQ(end.outcome(), v1::AcquireShardsResponse::END);
  EXPECT_FALSE(end.job_succeeded());
}

}  // namespace
}  // namespace elasticbatch::aimaster
