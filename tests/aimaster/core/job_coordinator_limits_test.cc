// JobCoordinator under hostile or buggy requests: every RequestLimits bound
// refuses or trims, changes nothing when it refuses, and forgets sessions.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

class JobCoordinatorLimitsTest : public ::testing::Test {
 protected:
  void Make(uint64_t shards, RequestLimits limits) {
    coordinator_.reset();
    enumerator_.emplace(*ShardEnumerator::ForRecords(shards * 10, 10));
    CoordinatorOptions options;
    options.limits = limits;
    coordinator_ =
        std::make_unique<JobCoordinator>(&clock_, &*enumerator_, nullptr, options);
  }
  absl::StatusOr<Registration> Register(uint32_t index, int32_t pid,
                                        absl::string_view peer = "ipv4:10.0.0.1",
                                        const std::vector<HeldLease>& held = {}) {
    WorkerIdentity who;
    who.task_index = index;
    who.pid = pid;
    who.host = "host-a";
    return coordinator_->Register(who, held, peer);
  }
  SessionId MustRegister(uint32_t index, int32_t pid) {
    absl::StatusOr<Registration> reg = Register(index, pid);
    EXPECT_TRUE(reg.ok()) << reg.status();
    return reg.ok() ? reg->session : 0;
  }

  FakeClock clock_;
  std::optional<ShardEnumerator> enumerator_;
  std::unique_ptr<JobCoordinator> coordinator_;
};

TEST_F(JobCoordinatorLimitsTest, HugeMaxShardsIsCappedPerCall) {
  RequestLimits limits;
  limits.max_shards_per_call = 8;
  Make(1000, limits);
  const SessionId s = MustRegister(0, 1);
  absl::StatusOr<AcquireResult> r = coordinator_->Acquire(s, UINT32_MAX, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->shards.size(), 8u);
  EXPECT_EQ(coordinator_->Progress().pending_shards, 992u);
}

TEST_F(JobCoordinatorLimitsTest, AnswerIsBoundedInBytes) {
  RequestLimits limits;
  limits.max_answer_bytes = 200;  // a shard costs ~80 bytes here
  Make(1000, limits);
  const SessionId s = MustRegister(0, 1);
  absl::StatusOr<AcquireResult> r = coordinator_->Acquire(s, 64, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->shards.size(), 1u);
  EXPECT_LE(r->shards.size(), 4u);
  // Even a budget smaller than one shard hands out one.
  limits.max_answer_bytes = 1;
  Make(10, limits);
  const SessionId t = MustRegister(0, 1);
  r = coordinator_->Acquire(t, 64, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->shards.size(), 1u);
}

TEST_F(JobCoordinatorLimitsTest, SessionHoldsAtMostMaxLeases) {
  RequestLimits limits;
  limits.max_shards_per_call = 8;
  limits.max_leases_per_session = 10;
  Make(100, limits);
  const SessionId s = MustRegister(0, 1);
  EXPECT_EQ(coordinator_->Acquire(s, 8, {}, {})->shards.size(), 8u);
  EXPECT_EQ(coordinator_->Acquire(s, 8, {}, {})->shards.size(), 2u);
  absl::StatusOr<AcquireResult> r = coordinator_->Acquire(s, 8, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, AcquireOutcome::kWait);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 10u);
}

TEST_F(JobCoordinatorLimitsTest, LeaseListsLongerThanASessionHoldsAreRefused) {
  RequestLimits limits;
  limits.max_leases_per_session = 4;
  Make(100, limits);
  const SessionId s = MustRegister(0, 1);
  std::vector<GrantedShard> got = coordinator_->Acquire(s, 2, {}, {})->shards;
  ASSERT_EQ(got.size(), 2u);
  const LeaseRef lease{got[0].leased.shard.id, got[0].leased.attempt};
  std::vector<ProgressReport> progress(5, ProgressReport{lease, 1, 1, true});
  absl::StatusOr<HeartbeatResult> hb = coordinator_->Heartbeat(s, progress, {});
  EXPECT_EQ(hb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(hb.status().message(), HasSubstr("--max-leases-per-session"));
  std::vector<CommitRequest> commits(5, CommitRequest{lease, 10});
  absl::StatusOr<CommitCallResult> c = coordinator_->Commit(s, commits, {});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<LeaseRef> published(9, lease);
  absl::StatusOr<AcquireResult> a = coordinator_->Acquire(s, 1, published, {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<HeldLease> held(5, HeldLease{lease, false, 0, true});
  absl::StatusOr<Registration> reg = Register(1, 2, "ipv4:10.0.0.1", held);
  EXPECT_EQ(reg.status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing changed: the refused commits granted nothing, no session was added.
  EXPECT_EQ(coordinator_->Progress().committed_shards, 0u);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 2u);
  EXPECT_EQ(coordinator_->Sessions().size(), 1u);
  // At the bound itself, lists are fine.
  progress.resize(4);
  EXPECT_TRUE(coordinator_->Heartbeat(s, progress, {}).ok());
}

TEST_F(JobCoordinatorLimitsTest, SessionsPerIndexAreBoundedAndForgotten) {
  RequestLimits limits;
  limits.max_sessions_per_index = 3;
  limits.session_retention = absl::Minutes(10);
  Make(100, limits);
  const SessionId first = MustRegister(0, 1);
  MustRegister(0, 2);
  const SessionId third = MustRegister(0, 3);
  absl::StatusOr<Registration> fourth = Register(0, 4);
  EXPECT_EQ(fourth.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(fourth.status().message(), HasSubstr("--max-sessions-per-index"));
  EXPECT_EQ(coordinator_->Sessions().size(), 3u);
  // Other indices are not affected.
  MustRegister(1, 5);
  // A superseded session hears "over" until it is forgotten, then NOT_FOUND.
  EXPECT_EQ(coordinator_->Acquire(first, 1, {}, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  clock_.Advance(absl::Minutes(5));
  coordinator_->Heartbeat(third, {}, {}).IgnoreError();
  clock_.Advance(absl::Minutes(5));
  coordinator_->Tick();
  EXPECT_EQ(coordinator_->Acquire(first, 1, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  // The live session that kept calling is remembered, the index has room again.
  EXPECT_TRUE(coordinator_->Acquire(third, 1, {}, {}).ok());
  MustRegister(0, 6);
}

TEST_F(JobCoordinatorLimitsTest, TotalSessionsAreBounded) {
  RequestLimits limits;
  limits.max_sessions = 5;
  limits.registrations_per_second = 0;
  Make(100, limits);
  std::vector<SessionId> ids;
  for (uint32_t i = 0; i < 5; ++i) ids.push_back(MustRegister(i, 1));
  absl::StatusOr<Registration> more = Register(5, 1);
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(more.status().message(), HasSubstr("--max-sessions"));
  // A session silent past the retention is forgotten once its leases expired;
  // one that keeps calling is kept.
  ASSERT_EQ(coordinator_->Acquire(ids[0], 1, {}, {})->shards.size(), 1u);
  for (int minute = 0; minute < 10; ++minute) {
    clock_.Advance(absl::Minutes(1));
    ASSERT_TRUE(coordinator_->Heartbeat(ids[4], {}, {}).ok());
    coordinator_->Tick();
  }
  EXPECT_EQ(coordinator_->Sessions().size(), 1u);
  EXPECT_EQ(coordinator_->Acquire(ids[0], 1, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 0u);
  MustRegister(5, 1);
}

TEST_F(JobCoordinatorLimitsTest, RegistrationsPerPeerAreRateLimited) {
  RequestLimits limits;
  limits.registrations_per_second = 1;
  limits.registration_burst = 3;
  Make(100, limits);
  for (uint32_t i = 0; i < 3; ++i) MustRegister(i, 1);
  absl::StatusOr<Registration> flood = Register(3, 1);
  EXPECT_EQ(flood.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(flood.status().message(), HasSubstr("too many registrations"));
  EXPECT_EQ(coordinator_->Sessions().size(), 3u);
  // Another peer has its own budget; an unnamed peer is not limited.
  EXPECT_TRUE(Register(3, 1, "ipv4:10.0.0.2").ok());
  EXPECT_TRUE(Register(4, 1, "").ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Register(5, 1).ok());
  EXPECT_FALSE(Register(6, 1).ok());
}

TEST_F(JobCoordinatorLimitsTest, FloodKeepsSessionsBounded) {
  RequestLimits limits;
  limits.max_sessions = 1000;
  limits.max_sessions_per_index = 4;
  limits.registrations_per_second = 0;
  Make(100, limits);
  int refused = 0;
  for (uint32_t i = 0; i < 50000; ++i) {
    absl::StatusOr<Registration> reg = Register(i % 2000, static_cast<int32_t>(i));
    if (!reg.ok()) {
      ASSERT_EQ(reg.status().code(), absl::StatusCode::kResourceExhausted);
      ++refused;
    }
    if (i % 100 == 0) {
      ASSERT_LE(coordinator_->Sessions().size(), 1000u) << i;
    }
    if (i % 1000 == 0) {
      clock_.Advance(absl::Minutes(1));
      coordinator_->Tick();
    }
  }
  EXPECT_GT(refused, 0);
}

TEST_F(JobCoordinatorLimitsTest, ErrorsAndReasonsAreCapped) {
  RequestLimits limits;
  limits.max_error_bytes = 1024;
  Make(100, limits);
  const SessionId s = MustRegister(0, 1);
  std::vector<GrantedShard> got = coordinator_->Acquire(s, 1, {}, {})->shards;
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(coordinator_
                  ->Fail(s, {got[0].leased.shard.id, got[0].leased.attempt},
                         std::string(1 << 20, 'e') + " the end")
                  .ok());
  bool truncated = false;
  for (const ShardSnapshot& snap : coordinator_->Shards(false, 10, &truncated)) {
    for (const std::string& e : snap.errors) {
      EXPECT_LE(e.size(), 1024u + 64);
      EXPECT_THAT(e, HasSubstr("the end"));
    }
  }
  coordinator_->Stop(std::string(1 << 20, 'r'));
  EXPECT_LE(coordinator_->Progress().reason.size(), 1024u + 64);
}

}  // namespace
}  // namespace elasticbatch::aimaster
