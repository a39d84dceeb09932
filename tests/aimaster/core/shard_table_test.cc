// ShardTable: leases, fencing, the commit protocol, failures and speculation.
#include "aimaster/core/shard_table.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kUnits = 100;  // records per shard in these tests

std::vector<uint64_t> Ids(const std::vector<LeasedShard>& leased) {
  std::vector<uint64_t> out;
  for (const LeasedShard& l : leased) out.push_back(l.shard.id);
  return out;
}

LeaseRef Ref(const LeasedShard& l) { return {l.shard.id, l.attempt}; }

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Checks that the table's counters agree with each other and with what its
// snapshots, per-session views and per-shard queries say.
void ExpectConsistent(const ShardTable& t, const std::set<SessionId>& sessions,
                      absl::Time now) {
  const uint64_t total = t.total();
  ASSERT_LE(t.committed(), total);
  ASSERT_LE(t.quarantined(), total);
  ASSERT_LE(t.leased_shards(), total);
  ASSERT_LE(t.pending(), total);
  ASSERT_EQ(t.committed() + t.quarantined() + t.leased_shards() + t.pending(), total);
  EXPECT_EQ(t.finished(), t.committed() + t.quarantined() == total);

  uint64_t committed = 0;
  for (uint64_t id = 0; id < total; ++id) committed += t.IsCommitted(id) ? 1 : 0;
  EXPECT_EQ(committed, t.committed());

  bool truncated = true;
  const std::vector<ShardSnapshot> active =
      t.Snapshot(false, std::numeric_limits<size_t>::max(), now, &truncated);
  EXPECT_FALSE(truncated);
  uint64_t leased = 0;
  uint64_t speculative = 0;
  uint64_t leases = 0;
  std::map<SessionId, size_t> per_session;
  for (const ShardSnapshot& s : active) {
    EXPECT_FALSE(t.IsCommitted(s.shard.id)) << s.shard.id;
    EXPECT_FALSE(s.quarantined);
    if (s.leases.empty()) {
      // A shard with a history but no lease waits in the queue.
      EXPECT_TRUE(s.queued) << "shard " << s.shard.id << " is neither leased nor queued";
    } else {
      ++leased;
      EXPECT_FALSE(s.queued) << "leased shard " << s.shard.id << " is also queued";
    }
    int grants = 0;
    std::set<uint32_t> attempts;
    std::set<SessionId> holders;
    for (const ShardSnapshot::LeaseView& l : s.leases) {
      ++leases;
      speculative += l.speculative ? 1 : 0;
      grants += l.commit_granted ? 1 : 0;
      per_session[l.session] += 1;
      EXPECT_TRUE(attempts.insert(l.lease.attempt).second) << "duplicate attempt";
      EXPECT_TRUE(holders.insert(l.session).second) << "session leases a shard twice";
      EXPECT_EQ(l.lease.shard_id, s.shard.id);
      EXPECT_TRUE(sessions.count(l.session)) << "lease of unknown session " << l.session;
    }
    EXPECT_LE(grants, 1) << "shard " << s.shard.id << " has two commit grants";
  }
  EXPECT_EQ(leased, t.leased_shards());
  EXPECT_EQ(speculative, t.speculative_leases());

  const std::vector<ShardSnapshot> quarantined =
      t.Snapshot(true, std::numeric_limits<size_t>::max(), now, &truncated);
  EXPECT_EQ(quarantined.size(), t.quarantined());
  for (const ShardSnapshot& s : quarantined) {
    EXPECT_TRUE(s.quarantined);
    EXPECT_FALSE(t.IsCommitted(s.shard.id));
  }

  uint64_t sum = 0;
  for (SessionId session : sessions) {
    const std::vector<LeaseRef> of = t.LeasesOf(session);
    EXPECT_EQ(of.size(), t.LeaseCount(session)) << "session " << session;
    EXPECT_EQ(of.size(), per_session[session]) << "session " << session;
    for (const LeaseRef& l : of) {
      EXPECT_TRUE(t.CheckLease(session, l).ok()) << t.CheckLease(session, l);
    }
    sum += of.size();
  }
  EXPECT_EQ(sum, leases);
}

class ShardTableTest : public ::testing::Test {
 protected:
  void Make(uint64_t shards, uint32_t max_attempts = 3) {
    table_.reset();
    absl::StatusOr<ShardEnumerator> e =
        ShardEnumerator::ForRecords(shards * kUnits, kUnits);
    ASSERT_TRUE(e.ok()) << e.status();
    enumerator_.emplace(*std::move(e));
    table_ = std::make_unique<ShardTable>(&*enumerator_, ShardTableOptions{max_attempts});
  }
  void SetUp() override { Make(10); }

  absl::Time now() const { return clock_.Now(); }
  SessionId NewSession() {
    const SessionId s = next_session_++;
    sessions_.insert(s);
    return s;
  }
  std::vector<LeasedShard> Acquire(SessionId s, uint32_t n) {
    return table_->Acquire(s, n, now());
  }
  LeasedShard AcquireOne(SessionId s) {
    std::vector<LeasedShard> got = Acquire(s, 1);
    EXPECT_EQ(got.size(), 1u);
    return got.empty() ? LeasedShard{} : got[0];
  }
  // Commits `lease` for `s`: grant, then confirm.
  PublishedShard CommitFully(SessionId s, LeaseRef lease, uint64_t records = 1) {
    CommitOutcome c = table_->RequestCommit(s, lease, records, now());
    EXPECT_EQ(c.decision, CommitDecision::kGranted) << c.reason;
    absl::StatusOr<PublishedShard> p = table_->ConfirmPublished(s, lease, now());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : PublishedShard{};
  }
  void Check() {
    SCOPED_TRACE("invariants");
    ExpectConsistent(*table_, sessions_, now());
  }

  FakeClock clock_;
  std::optional<ShardEnumerator> enumerator_;
  std::unique_ptr<ShardTable> table_;
  std::set<SessionId> sessions_;
  SessionId next_session_ = 1;
};

TEST_F(ShardTableTest, LeasesExpireUnlessRenewedAndOnlyStartedOnesCountAsFailures) {
  const SessionId s = NewSession();
  const LeasedShard started = AcquireOne(s);
  const LeasedShard prefetched = AcquireOne(s);
  const LeasedShard renewed = AcquireOne(s);
  ASSERT_TRUE(table_->RecordProgress(s, Ref(started), 3, 30, now()).ok());
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(table_->Renew(s, Ref(renewed), now()).ok());
  clock_.Advance(absl::Seconds(11));
  FailOutcome expired = table_->ExpireLeases(now(), absl::Seconds(30));
  Check();
  EXPECT_EQ(expired.failures, 1u);  // only the started one failed
  EXPECT_THAT(expired.quarantined, IsEmpty());
  EXPECT_EQ(table_->leased_shards(), 1u);
  EXPECT_THAT(Message(table_->CheckLease(s, Ref(started))), HasSubstr("expired"));
  EXPECT_THAT(Message(table_->CheckLease(s, Ref(prefetched))), HasSubstr("expired"));
  EXPECT_TRUE(table_->CheckLease(s, Ref(renewed)).ok());
  // The expired shards come back first, in shard order.
  EXPECT_THAT(Ids(Acquire(NewSession(), 2)),
              ElementsAre(started.shard.id, prefetched.shard.id));
  Check();
}

TEST_F(ShardTableTest, FreshTableHasEverythingPending) {
  EXPECT_EQ(table_->total(), 10u);
  EXPECT_EQ(table_->pending(), 10u);
  EXPECT_EQ(table_->committed(), 0u);
  EXPECT_FALSE(table_->finished());
  EXPECT_FALSE(table_->MedianShardTime().has_value());
  Check();
}

TEST_F(ShardTableTest, AcquireHandsOutFreshShardsInOrder) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  std::vector<LeasedShard> got = Acquire(a, 3);
  EXPECT_THAT(Ids(got), ElementsAre(0, 1, 2));
  for (const LeasedShard& l : got) {
    EXPECT_EQ(l.attempt, 1u);
    EXPECT_FALSE(l.speculative);
    EXPECT_EQ(l.shard.begin, l.shard.id * kUnits);
    EXPECT_EQ(l.shard.end, (l.shard.id + 1) * kUnits);
    EXPECT_EQ(l.shard.unit, ShardUnit::kRecords);
  }
  Check();
  EXPECT_THAT(Ids(Acquire(b, 4)), ElementsAre(3, 4, 5, 6));
  EXPECT_EQ(table_->leased_shards(), 7u);
  EXPECT_EQ(table_->pending(), 3u);
  Check();
  EXPECT_THAT(Ids(Acquire(b, 100)), ElementsAre(7, 8, 9));
  EXPECT_THAT(Acquire(a, 5), IsEmpty());
  EXPECT_EQ(table_->pending(), 0u);
  EXPECT_THAT(table_->LeasesOf(a),
              ElementsAre(LeaseRef{0, 1}, LeaseRef{1, 1}, LeaseRef{2, 1}));
  EXPECT_EQ(table_->LeaseCount(b), 7u);
  Check();
}

TEST_F(ShardTableTest, RequeuedShardsComeFirstInFifoOrder) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  std::vector<LeasedShard> got = Acquire(a, 6);
  ASSERT_EQ(got.size(), 6u);
  ASSERT_TRUE(table_->Fail(a, Ref(got[3]), "e3", now()).ok());
  ASSERT_TRUE(table_->Fail(a, Ref(got[1]), "e1", now()).ok());
  Check();
  EXPECT_EQ(table_->pending(), 6u);
  std::vector<LeasedShard> next = Acquire(b, 3);
  EXPECT_THAT(Ids(next), ElementsAre(3, 1, 6));
  EXPECT_EQ(next[0].attempt, 2u);
  EXPECT_EQ(next[1].attempt, 2u);
  EXPECT_EQ(next[2].attempt, 1u);
  Check();
  // Releasing a session requeues its shards in id order, behind earlier ones.
  ASSERT_TRUE(table_->Fail(b, Ref(next[2]), "e6", now()).ok());
  FailOutcome released = table_->ReleaseSession(a, "worker a died", false, now());
  EXPECT_EQ(released.failures, 0u);
  EXPECT_THAT(released.quarantined, IsEmpty());
  Check();
  EXPECT_THAT(Ids(Acquire(b, 10)), ElementsAre(6, 0, 2, 4, 5, 7, 8, 9));
  Check();
}

TEST_F(ShardTableTest, StaleLeaseAfterReleaseSessionIsFencedWithTheReason) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  ASSERT_TRUE(table_->RecordProgress(a, lease, 5, 5, now()).ok());
  table_->ReleaseSession(a, "worker a vanished", false, now());
  Check();

  absl::Status check = table_->CheckLease(a, lease);
  EXPECT_EQ(check.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(check), HasSubstr("worker a vanished"));
  EXPECT_THAT(Message(check), HasSubstr("queued"));
  EXPECT_EQ(table_->RecordProgress(a, lease, 6, 6, now()).code(),
            absl::StatusCode::kFailedPrecondition);
  CommitOutcome c = table_->RequestCommit(a, lease, 1, now());
  EXPECT_EQ(c.decision, CommitDecision::kLeaseLost);
  EXPECT_THAT(c.reason, HasSubstr("worker a vanished"));
  EXPECT_EQ(table_->ConfirmPublished(a, lease, now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(table_->Fail(a, lease, "x", now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Check();

  // Re-leased elsewhere: the old attempt stays fenced and says who has it.
  const LeasedShard again = AcquireOne(b);
  EXPECT_EQ(again.shard.id, lease.shard_id);
  EXPECT_EQ(again.attempt, 2u);
  check = table_->CheckLease(a, lease);
  EXPECT_THAT(Message(check), HasSubstr("worker a vanished"));
  EXPECT_THAT(Message(check), HasSubstr("now leased as attempt 2"));
  // Even the session that holds the new attempt cannot use the old one.
  EXPECT_EQ(table_->CheckLease(b, lease).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(table_->RequestCommit(b, lease, 1, now()).decision,
            CommitDecision::kLeaseLost);
  // The released session cannot use the new one either.
  EXPECT_EQ(table_->RequestCommit(a, Ref(again), 1, now()).decision,
            CommitDecision::kLeaseLost);
  Check();
}

TEST_F(ShardTableTest, LeaseOfAnotherSessionIsRejected) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  absl::Status check = table_->CheckLease(b, lease);
  EXPECT_EQ(check.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(check), HasSubstr("belongs to another worker"));
  EXPECT_EQ(table_->RecordProgress(b, lease, 1, 1, now()).code(),
            absl::StatusCode::kFailedPrecondition);
  CommitOutcome c = table_->RequestCommit(b, lease, 1, now());
  EXPECT_EQ(c.decision, CommitDecision::kLeaseLost);
  EXPECT_THAT(c.reason, HasSubstr("belongs to another worker"));
  EXPECT_FALSE(table_->ConfirmPublished(b, lease, now()).ok());
  EXPECT_FALSE(table_->Fail(b, lease, "not mine", now()).ok());
  // Nothing happened to a's lease.
  EXPECT_TRUE(table_->CheckLease(a, lease).ok());
  EXPECT_EQ(table_->LeaseCount(b), 0u);
  Check();
  EXPECT_EQ(CommitFully(a, lease).newly_committed, true);
  Check();
}

TEST_F(ShardTableTest, UnknownShardsAndAttemptsAreRejected) {
  const SessionId a = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  absl::Status s = table_->CheckLease(a, {10, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("names no shard"));
  s = table_->CheckLease(a, {~uint64_t{0}, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  s = table_->CheckLease(a, {5, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("never leased"));
  s = table_->CheckLease(a, {lease.shard_id, 7});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("unknown"));
  EXPECT_EQ(table_->RequestCommit(a, {10, 1}, 1, now()).decision,
            CommitDecision::kLeaseLost);
  EXPECT_EQ(table_->RequestCommit(a, {lease.shard_id, 0}, 1, now()).decision,
            CommitDecision::kLeaseLost);
  EXPECT_FALSE(table_->ConfirmPublished(a, {10, 1}, now()).ok());
  EXPECT_FALSE(table_->Fail(a, {10, 1}, "x", now()).ok());
  EXPECT_FALSE(table_->RecordProgress(a, {10, 1}, 1, 1, now()).ok());
  Check();
}

TEST_F(ShardTableTest, LeasesOfDoneShardsSayWhy) {
  Make(3, /*max_attempts=*/1);
  const SessionId a = NewSession();
  const LeaseRef l0 = Ref(AcquireOne(a));
  const LeaseRef l1 = Ref(AcquireOne(a));
  CommitFully(a, l0);
  absl::Status s = table_->CheckLease(a, l0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("already committed"));
  ASSERT_TRUE(table_->Fail(a, l1, "bad input", now()).ok());
  s = table_->CheckLease(a, l1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("quarantined"));
  EXPECT_EQ(table_->RequestCommit(a, l1, 1, now()).decision, CommitDecision::kLeaseLost);
  EXPECT_FALSE(table_->ConfirmPublished(a, l1, now()).ok());
  Check();
}

TEST_F(ShardTableTest, OnlyOneAttemptOfAShardGetsTheGrant) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef first = Ref(AcquireOne(a));
  const LeasedShard dup = table_->LeaseDuplicate(first.shard_id, b, now());
  EXPECT_TRUE(dup.speculative);
  EXPECT_EQ(dup.attempt, 2u);
  Check();

  CommitOutcome ca = table_->RequestCommit(a, first, 100, now());
  EXPECT_EQ(ca.decision, CommitDecision::kGranted);
  // A retried request of the winner is granted again.
  EXPECT_EQ(table_->RequestCommit(a, first, 100, now()).decision,
            CommitDecision::kGranted);
  Check();
  CommitOutcome cb = table_->RequestCommit(b, Ref(dup), 100, now());
  EXPECT_EQ(cb.decision, CommitDecision::kAlreadyCommitted);
  EXPECT_THAT(cb.reason, HasSubstr("holds the commit grant"));
  // The loser's lease is gone.
  EXPECT_EQ(table_->LeaseCount(b), 0u);
  EXPECT_EQ(table_->speculative_leases(), 0u);
  EXPECT_THAT(Message(table_->CheckLease(b, Ref(dup))),
              HasSubstr("lost the commit race"));
  EXPECT_FALSE(table_->ConfirmPublished(b, Ref(dup), now()).ok());
  Check();

  absl::StatusOr<PublishedShard> p = table_->ConfirmPublished(a, first, now());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->newly_committed);
  EXPECT_EQ(p->record.shard_id, first.shard_id);
  EXPECT_EQ(p->record.attempt, first.attempt);
  EXPECT_EQ(p->record.records, 100u);
  EXPECT_EQ(p->record.task_index, 0u);
  EXPECT_THAT(p->revoked, IsEmpty());
  EXPECT_TRUE(table_->IsCommitted(first.shard_id));
  EXPECT_EQ(table_->committed(), 1u);
  Check();

  // Any later attempt to commit the shard is told it is done.
  CommitOutcome late = table_->RequestCommit(b, Ref(dup), 100, now());
  EXPECT_EQ(late.decision, CommitDecision::kAlreadyCommitted);
  EXPECT_THAT(late.reason, HasSubstr("already committed"));
}

TEST_F(ShardTableTest, ConfirmWithoutGrantIsRejected) {
  const SessionId a = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  absl::StatusOr<PublishedShard> p = table_->ConfirmPublished(a, lease, now());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(p.status()), HasSubstr("without a commit grant"));
  EXPECT_TRUE(table_->CheckLease(a, lease).ok());
  EXPECT_EQ(table_->committed(), 0u);
  Check();
}

TEST_F(ShardTableTest, ConfirmPublishedIsIdempotent) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  ASSERT_EQ(table_->RequestCommit(a, lease, 7, now()).decision, CommitDecision::kGranted);
  absl::StatusOr<PublishedShard> first = table_->ConfirmPublished(a, lease, now());
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->newly_committed);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<PublishedShard> again = table_->ConfirmPublished(a, lease, now());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->newly_committed);
    EXPECT_THAT(again->revoked, IsEmpty());
  }
  // A duplicate from someone else is just as harmless.
  absl::StatusOr<PublishedShard> other = table_->ConfirmPublished(b, lease, now());
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->newly_committed);
  EXPECT_EQ(table_->committed(), 1u);
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->pending(), 9u);
  Check();
}

TEST_F(ShardTableTest, GrantedAttemptOfADeadWorkerGoesBackToTheQueue) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef lease = Ref(AcquireOne(a));
  ASSERT_EQ(table_->RequestCommit(a, lease, 5, now()).decision, CommitDecision::kGranted);
  FailOutcome out =
      table_->ReleaseSession(a, "worker a died before confirming", false, now());
  EXPECT_THAT(out.quarantined, IsEmpty());
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->pending(), 10u);
  Check();
  // Its late confirmation is refused: the grant died with the lease.
  absl::StatusOr<PublishedShard> late = table_->ConfirmPublished(a, lease, now());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(late.status()), HasSubstr("worker a died before confirming"));

  const LeasedShard redo = AcquireOne(b);
  EXPECT_EQ(redo.shard.id, lease.shard_id);
  EXPECT_EQ(redo.attempt, 2u);
  PublishedShard p = CommitFully(b, Ref(redo), 6);
  EXPECT_TRUE(p.newly_committed);
  EXPECT_EQ(p.record.attempt, 2u);
  EXPECT_EQ(p.record.records, 6u);
  // After the redo committed, a's confirmation is a harmless duplicate.
  absl::StatusOr<PublishedShard> after = table_->ConfirmPublished(a, lease, now());
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->newly_committed);
  Check();
}

TEST_F(ShardTableTest, FailRequeuesUntilMaxAttemptsThenQuarantinesWithEveryError) {
  const SessionId a = NewSession();
  const LeasedShard l1 = AcquireOne(a);
  absl::StatusOr<FailOutcome> f1 = table_->Fail(a, Ref(l1), "error one", now());
  ASSERT_TRUE(f1.ok());
  EXPECT_EQ(f1->failures, 1u);
  EXPECT_THAT(f1->quarantined, IsEmpty());
  Check();
  const LeasedShard l2 = AcquireOne(a);
  ASSERT_EQ(l2.shard.id, l1.shard.id);
  ASSERT_EQ(l2.attempt, 2u);
  absl::StatusOr<FailOutcome> f2 = table_->Fail(a, Ref(l2), "error two", now());
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(f2->failures, 2u);
  EXPECT_THAT(f2->quarantined, IsEmpty());
  Check();
  // The failing attempt's own reason fences it.
  EXPECT_THAT(Message(table_->CheckLease(a, Ref(l2))), HasSubstr("error two"));
  const LeasedShard l3 = AcquireOne(a);
  ASSERT_EQ(l3.shard.id, l1.shard.id);
  ASSERT_EQ(l3.attempt, 3u);
  const std::string weird = std::string("bytes\0\xff\n\"", 9);
  absl::StatusOr<FailOutcome> f3 = table_->Fail(a, Ref(l3), weird, now());
  ASSERT_TRUE(f3.ok());
  EXPECT_EQ(f3->failures, 3u);
  ASSERT_EQ(f3->quarantined.size(), 1u);
  EXPECT_EQ(f3->quarantined[0].shard_id, l1.shard.id);
  EXPECT_THAT(f3->quarantined[0].errors, ElementsAre("error one", "error two", weird));
  EXPECT_THAT(f3->revoked, IsEmpty());
  EXPECT_EQ(table_->quarantined(), 1u);
  EXPECT_FALSE(table_->IsCommitted(l1.shard.id));
  Check();

  bool truncated = true;
  std::vector<ShardSnapshot> q = table_->Snapshot(true, 10, now(), &truncated);
  EXPECT_FALSE(truncated);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].shard.id, l1.shard.id);
  EXPECT_THAT(q[0].errors, ElementsAre("error one", "error two", weird));
  // Never handed out again.
  std::vector<LeasedShard> rest = Acquire(a, 100);
  EXPECT_EQ(rest.size(), 9u);
  for (const LeasedShard& l : rest) EXPECT_NE(l.shard.id, l1.shard.id);
  Check();
}

TEST_F(ShardTableTest, ZeroMaxAttemptsMeansOne) {
  Make(2, /*max_attempts=*/0);
  const SessionId a = NewSession();
  absl::StatusOr<FailOutcome> f = table_->Fail(a, Ref(AcquireOne(a)), "once", now());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->quarantined.size(), 1u);
  Check();
}

TEST_F(ShardTableTest, QuarantineRevokesTheOtherLeasesOfTheShard) {
  Make(3, /*max_attempts=*/1);
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef original = Ref(AcquireOne(a));
  const LeasedShard dup = table_->LeaseDuplicate(original.shard_id, b, now());
  Check();
  absl::StatusOr<FailOutcome> f = table_->Fail(b, Ref(dup), "dup failed", now());
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->quarantined.size(), 1u);
  ASSERT_EQ(f->revoked.size(), 1u);
  EXPECT_EQ(f->revoked[0].session, a);
  EXPECT_EQ(f->revoked[0].lease, original);
  EXPECT_THAT(f->revoked[0].reason, HasSubstr("quarantined"));
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->speculative_leases(), 0u);
  Check();
}

TEST_F(ShardTableTest, FailureNeverQuarantinesAShardWhoseCommitIsGranted) {
  Make(3, /*max_attempts=*/1);
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef original = Ref(AcquireOne(a));
  const LeasedShard dup = table_->LeaseDuplicate(original.shard_id, b, now());
  // The duplicate holds the grant and may already have published its output.
  ASSERT_EQ(table_->RequestCommit(b, Ref(dup), 8, now()).decision,
            CommitDecision::kGranted);
  absl::StatusOr<FailOutcome> f = table_->Fail(a, original, "original crashed", now());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->failures, 1u);
  EXPECT_THAT(f->quarantined, IsEmpty());
  EXPECT_THAT(f->revoked, IsEmpty());
  EXPECT_EQ(table_->quarantined(), 0u);
  Check();
  absl::StatusOr<PublishedShard> p = table_->ConfirmPublished(b, Ref(dup), now());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->newly_committed);
  EXPECT_TRUE(table_->IsCommitted(original.shard_id));
  Check();

  // Same when the failure comes from a released session.
  const LeaseRef second = Ref(AcquireOne(a));
  ASSERT_TRUE(table_->RecordProgress(a, second, 1, 1, now()).ok());
  const LeasedShard dup2 = table_->LeaseDuplicate(second.shard_id, b, now());
  ASSERT_EQ(table_->RequestCommit(b, Ref(dup2), 8, now()).decision,
            CommitDecision::kGranted);
  FailOutcome out = table_->ReleaseSession(a, "worker a expired", true, now());
  EXPECT_THAT(out.quarantined, IsEmpty());
  Check();
  ASSERT_TRUE(table_->ConfirmPublished(b, Ref(dup2), now()).ok());
  EXPECT_TRUE(table_->IsCommitted(second.shard_id));

  // Once the grant holder is gone too, the recorded failures quarantine it on
  // the next failure.
  const LeaseRef third = Ref(AcquireOne(a));
  const LeasedShard dup3 = table_->LeaseDuplicate(third.shard_id, b, now());
  ASSERT_EQ(table_->RequestCommit(b, Ref(dup3), 8, now()).decision,
            CommitDecision::kGranted);
  ASSERT_TRUE(table_->Fail(a, third, "first", now()).ok());
  EXPECT_EQ(table_->quarantined(), 0u);
  table_->ReleaseSession(b, "b died before confirming", false, now());
  Check();
  const LeasedShard redo = AcquireOne(a);
  ASSERT_EQ(redo.shard.id, third.shard_id);
  absl::StatusOr<FailOutcome> last = table_->Fail(a, Ref(redo), "second", now());
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->quarantined.size(), 1u);
  EXPECT_THAT(last->quarantined[0].errors, ElementsAre("first", "second"));
  Check();
}

TEST_F(ShardTableTest, FailingADuplicateLeavesTheOriginalRunning) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef original = Ref(AcquireOne(a));
  const LeasedShard dup = table_->LeaseDuplicate(original.shard_id, b, now());
  absl::StatusOr<FailOutcome> f = table_->Fail(b, Ref(dup), "dup failed", now());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->failures, 1u);
  EXPECT_THAT(f->revoked, IsEmpty());
  EXPECT_TRUE(table_->CheckLease(a, original).ok());
  EXPECT_EQ(table_->leased_shards(), 1u);
  EXPECT_EQ(table_->speculative_leases(), 0u);
  Check();
  // Not queued while the original still runs.
  for (const LeasedShard& l : Acquire(b, 100)) EXPECT_NE(l.shard.id, original.shard_id);
  Check();
}

TEST_F(ShardTableTest, ReleaseSessionCountsOnlyStartedLeasesAsFailures) {
  Make(6, /*max_attempts=*/1);
  const SessionId a = NewSession();
  std::vector<LeasedShard> got = Acquire(a, 3);
  ASSERT_EQ(got.size(), 3u);
  // Shard 0 reported progress, shard 1 asked for its commit, shard 2 never started.
  ASSERT_TRUE(table_->RecordProgress(a, Ref(got[0]), 1, 1, now()).ok());
  ASSERT_EQ(table_->RequestCommit(a, Ref(got[1]), 3, now()).decision,
            CommitDecision::kGranted);
  FailOutcome out = table_->ReleaseSession(a, "lease expired", true, now());
  ASSERT_EQ(out.quarantined.size(), 2u);
  EXPECT_EQ(out.quarantined[0].shard_id, 0u);
  EXPECT_EQ(out.quarantined[1].shard_id, 1u);
  EXPECT_THAT(out.quarantined[0].errors, ElementsAre("lease expired"));
  EXPECT_EQ(out.failures, 1u);
  EXPECT_EQ(table_->quarantined(), 2u);
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  Check();
  // Shard 2 is simply back in the queue, ahead of fresh shards.
  const LeasedShard next = AcquireOne(NewSession());
  EXPECT_EQ(next.shard.id, 2u);
  EXPECT_EQ(next.attempt, 2u);
  Check();
}

TEST_F(ShardTableTest, ReleaseSessionFailuresAccumulateAcrossAttempts) {
  Make(2, /*max_attempts=*/3);
  const SessionId a = NewSession();
  const LeasedShard l = AcquireOne(a);
  ASSERT_TRUE(table_->RecordProgress(a, Ref(l), 1, 1, now()).ok());
  FailOutcome out = table_->ReleaseSession(a, "expired once", true, now());
  EXPECT_EQ(out.failures, 1u);
  EXPECT_THAT(out.quarantined, IsEmpty());
  bool truncated;
  std::vector<ShardSnapshot> snap = table_->Snapshot(false, 10, now(), &truncated);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_TRUE(snap[0].queued);
  EXPECT_THAT(snap[0].errors, ElementsAre("expired once"));
  Check();
  // Without count_as_failure nothing is counted.
  const SessionId b = NewSession();
  const LeasedShard l2 = AcquireOne(b);
  ASSERT_EQ(l2.shard.id, l.shard.id);
  ASSERT_TRUE(table_->RecordProgress(b, Ref(l2), 1, 1, now()).ok());
  out = table_->ReleaseSession(b, "superseded", false, now());
  EXPECT_EQ(out.failures, 0u);
  snap = table_->Snapshot(false, 10, now(), &truncated);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_THAT(snap[0].errors, ElementsAre("expired once"));
  // Two more counted failures quarantine it with every error.
  const SessionId c = NewSession();
  ASSERT_TRUE(table_->Fail(c, Ref(AcquireOne(c)), "explicit", now()).ok());
  const LeasedShard l4 = AcquireOne(c);
  ASSERT_EQ(l4.shard.id, l.shard.id);
  ASSERT_TRUE(table_->RecordProgress(c, Ref(l4), 1, 1, now()).ok());
  out = table_->ReleaseSession(c, "expired twice", true, now());
  ASSERT_EQ(out.quarantined.size(), 1u);
  EXPECT_THAT(out.quarantined[0].errors,
              ElementsAre("expired once", "explicit", "expired twice"));
  EXPECT_EQ(out.failures, 3u);
  Check();
}

TEST_F(ShardTableTest, ReleaseOfAnUnknownSessionDoesNothing) {
  FailOutcome out = table_->ReleaseSession(12345, "nobody", true, now());
  EXPECT_EQ(out.failures, 0u);
  EXPECT_THAT(out.quarantined, IsEmpty());
  EXPECT_THAT(out.revoked, IsEmpty());
  Check();
}

TEST_F(ShardTableTest, ReclaimAfterRestartTakesOverAFreeShard) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  EXPECT_TRUE(table_->Reclaim(a, {5, 3}, /*started=*/true, now()));
  EXPECT_THAT(table_->LeasesOf(a), ElementsAre(LeaseRef{5, 3}));
  EXPECT_EQ(table_->leased_shards(), 1u);
  EXPECT_EQ(table_->pending(), 9u);
  Check();
  // A retried registration reclaims again; anyone else is refused.
  EXPECT_TRUE(table_->Reclaim(a, {5, 3}, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(b, {5, 3}, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(b, {5, 4}, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(a, {5, 2}, /*started=*/true, now()));
  EXPECT_EQ(table_->LeaseCount(a), 1u);
  Check();
  // The reclaimed shard is not handed out as a fresh one.
  std::vector<LeasedShard> rest = Acquire(b, 100);
  EXPECT_THAT(Ids(rest), ElementsAre(0, 1, 2, 3, 4, 6, 7, 8, 9));
  Check();
  // Later attempts continue above the reclaimed one.
  table_->ReleaseSession(a, "gone", false, now());
  const LeasedShard next = AcquireOne(b);
  EXPECT_EQ(next.shard.id, 5u);
  EXPECT_EQ(next.attempt, 4u);
  Check();
}

TEST_F(ShardTableTest, ReclaimOfAQueuedShardTakesItOutOfTheQueue) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef l = Ref(AcquireOne(a));
  ASSERT_TRUE(table_->Fail(a, l, "oops", now()).ok());
  EXPECT_TRUE(table_->Reclaim(b, l, /*started=*/true, now()));
  Check();
  std::vector<LeasedShard> rest = Acquire(a, 100);
  EXPECT_EQ(rest.size(), 9u);
  for (const LeasedShard& x : rest) EXPECT_NE(x.shard.id, l.shard_id);
  Check();
  EXPECT_TRUE(CommitFully(b, l).newly_committed);
  Check();
}

TEST_F(ShardTableTest, ReclaimRefusesDoneShardsAndBadLeases) {
  Make(4, /*max_attempts=*/1);
  const SessionId a = NewSession();
  const LeaseRef l0 = Ref(AcquireOne(a));
  const LeaseRef l1 = Ref(AcquireOne(a));
  CommitFully(a, l0);
  ASSERT_TRUE(table_->Fail(a, l1, "bad", now()).ok());
  EXPECT_FALSE(table_->Reclaim(a, l0, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(a, l1, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(a, {2, 0}, /*started=*/true, now()));
  EXPECT_FALSE(table_->Reclaim(a, {4, 1}, /*started=*/true, now()));
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  Check();
}

// After a master restart a prefetched shard stays prefetched: an idle worker
// may take it, and its holder's death costs it no failure.
TEST_F(ShardTableTest, AReclaimedPrefetchedShardStaysUnstarted) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  ASSERT_TRUE(table_->Reclaim(a, {5, 3}, /*started=*/false, now()));
  ASSERT_TRUE(table_->Reclaim(a, {6, 2}, /*started=*/true, now()));
  // b finishes a shard so that the table knows a median shard time, and a
  // keeps working on shard 6: shard 5 will not start for a long while.
  const LeaseRef x = Ref(AcquireOne(b));
  clock_.Advance(absl::Seconds(1));
  CommitFully(b, x);
  ASSERT_TRUE(table_->RecordProgress(a, {6, 2}, 1, 0, now()).ok());
  EXPECT_EQ(table_->PickStealable(b, absl::Milliseconds(100), now()), 5u);
  // Released by a crash: neither reclaimed shard counts a failure, the one a
  // never reported progress on included.
  FailOutcome out =
      table_->ReleaseSession(a, "crashed", /*count_as_failure=*/true, now());
  EXPECT_EQ(out.failures, 1u);  // shard 6: progress was reported to this master
  Check();
}

// The review's attack: registrations that claim every shard as held, then a
// "new process" of the same index, again and again, quarantined the job.
TEST_F(ShardTableTest, ClaimedLeasesCountNoFailureWithoutProgress) {
  Make(4, /*max_attempts=*/3);
  for (int round = 0; round < 5; ++round) {
    const SessionId s = NewSession();
    for (uint64_t id = 0; id < 4; ++id) {
      table_->Reclaim(s, {id, static_cast<uint32_t>(round + 1)}, /*started=*/true, now());
    }
    FailOutcome out = table_->ReleaseSession(s, "superseded", true, now());
    EXPECT_EQ(out.failures, 0u);
    EXPECT_THAT(out.quarantined, IsEmpty());
    clock_.Advance(absl::Seconds(60));
    EXPECT_EQ(table_->ExpireLeases(now(), absl::Seconds(30)).failures, 0u);
  }
  EXPECT_EQ(table_->quarantined(), 0u);
  Check();
}

TEST_F(ShardTableTest, AbsurdClaimedAttemptsAreRefused) {
  const SessionId a = NewSession();
  EXPECT_FALSE(table_->Reclaim(a, {1, 0xFFFFFFFFu}, true, now()));
  EXPECT_FALSE(table_->AdoptPublished(a, {2, 0xFFFFFFFFu}, 5, now()).has_value());
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  Check();
}

TEST_F(ShardTableTest, RestoredShardsAreNeverHandedOut) {
  table_->RestoreCommitted(0);
  table_->RestoreCommitted(3);
  table_->RestoreCommitted(3);  // replayed twice
  table_->RestoreQuarantined(4, {"e1", "e2"});
  table_->RestoreQuarantined(0, {"ignored: already committed"});
  table_->RestoreCommitted(99);  // out of range: ignored
  EXPECT_EQ(table_->committed(), 2u);
  EXPECT_EQ(table_->quarantined(), 1u);
  EXPECT_EQ(table_->pending(), 7u);
  EXPECT_TRUE(table_->IsCommitted(0));
  EXPECT_FALSE(table_->IsCommitted(4));
  Check();
  const SessionId a = NewSession();
  EXPECT_THAT(Ids(Acquire(a, 100)), ElementsAre(1, 2, 5, 6, 7, 8, 9));
  Check();
}

TEST_F(ShardTableTest, AdoptPublishedCommitsAFreeShard) {
  const SessionId a = NewSession();
  std::optional<PublishedShard> p = table_->AdoptPublished(a, {7, 2}, 42, now());
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->newly_committed);
  EXPECT_EQ(p->record.shard_id, 7u);
  EXPECT_EQ(p->record.attempt, 2u);
  EXPECT_EQ(p->record.records, 42u);
  EXPECT_THAT(p->revoked, IsEmpty());
  EXPECT_TRUE(table_->IsCommitted(7));
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  Check();
  // Done: adopting again is refused.
  EXPECT_FALSE(table_->AdoptPublished(a, {7, 2}, 42, now()).has_value());
  EXPECT_FALSE(table_->AdoptPublished(a, {8, 0}, 1, now()).has_value());
  EXPECT_FALSE(table_->AdoptPublished(a, {10, 1}, 1, now()).has_value());
  std::vector<LeasedShard> rest = Acquire(a, 100);
  EXPECT_EQ(rest.size(), 9u);
  for (const LeasedShard& x : rest) EXPECT_NE(x.shard.id, 7u);
  Check();
}

TEST_F(ShardTableTest, AdoptPublishedRevokesUngrantedLeasesOfOthers) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef other = Ref(AcquireOne(b));  // shard 0, attempt 1 of this master
  std::optional<PublishedShard> p = table_->AdoptPublished(a, {0, 5}, 9, now());
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->newly_committed);
  EXPECT_EQ(p->record.attempt, 5u);
  ASSERT_EQ(p->revoked.size(), 1u);
  EXPECT_EQ(p->revoked[0].session, b);
  EXPECT_EQ(p->revoked[0].lease, other);
  EXPECT_EQ(table_->LeaseCount(b), 0u);
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->RequestCommit(b, other, 1, now()).decision,
            CommitDecision::kAlreadyCommitted);
  Check();
}

TEST_F(ShardTableTest, AdoptPublishedIsRefusedWhenAnotherLeaseHoldsTheGrant) {
  const SessionId a = NewSession();
  const SessionId b = NewSession();
  const LeaseRef granted = Ref(AcquireOne(b));
  ASSERT_EQ(table_->RequestCommit(b, granted, 1, now()).decision,
            CommitDecision::kGranted);
  EXPECT_FALSE(table_->AdoptPublished(a, {0, 9}, 9, now()).has_value());
  EXPECT_TRUE(table_->CheckLease(b, granted).ok());
  EXPECT_FALSE(table_->IsCommitted(0));
  EXPECT_EQ(table_->leased_shards(), 1u);
  Check();
  // The grant holder itself may adopt (e.g. it re-registered after publishing).
  std::optional<PublishedShard> p = table_->AdoptPublished(b, granted, 11, now());
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->newly_committed);
  EXPECT_EQ(p->record.records, 11u);
  Check();
}

TEST_F(ShardTableTest, AdoptPublishedOfAReclaimedLease) {
  const SessionId a = NewSession();
  ASSERT_TRUE(table_->Reclaim(a, {3, 2}, /*started=*/true, now()));
  std::optional<PublishedShard> p = table_->AdoptPublished(a, {3, 2}, 4, now());
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->newly_committed);
  EXPECT_THAT(p->revoked, IsEmpty());
  EXPECT_EQ(table_->LeaseCount(a), 0u);
  EXPECT_EQ(table_->leased_shards(), 0u);
  Check();
}

TEST_F(ShardTableTest, SnapshotListsActiveShardsInIdOrderUpToTheLimit) {
  const SessionId a = NewSession();
  std::vector<LeasedShard> got = Acquire(a, 4);
  ASSERT_TRUE(table_->Fail(a, Ref(got[1]), "e", now()).ok());
  CommitFully(a, Ref(got[3]));
  clock_.Advance(absl::Seconds(5));
  bool truncated = false;
  std::vector<ShardSnapshot> all = table_->Snapshot(false, 10, now(), &truncated);
  EXPECT_FALSE(truncated);
  ASSERT_EQ(all.size(), 3u);  // 0 and 2 leased, 1 queued with its error
  EXPECT_EQ(all[0].shard.id, 0u);
  EXPECT_EQ(all[1].shard.id, 1u);
  EXPECT_TRUE(all[1].queued);
  EXPECT_TRUE(all[1].leases.empty());
  EXPECT_THAT(all[1].errors, ElementsAre("e"));
  EXPECT_EQ(all[2].shard.id, 2u);
  ASSERT_EQ(all[0].leases.size(), 1u);
  EXPECT_EQ(all[0].leases[0].session, a);
  EXPECT_EQ(all[0].leases[0].age, absl::Seconds(5));
  std::vector<ShardSnapshot> two = table_->Snapshot(false, 2, now(), &truncated);
  EXPECT_TRUE(truncated);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].shard.id, 1u);
}

TEST_F(ShardTableTest, MedianShardTimeIsFromStartToCommitRequest) {
  const SessionId a = NewSession();
  for (int secs : {5, 1, 3}) {
    const LeaseRef l = Ref(AcquireOne(a));
    ASSERT_TRUE(table_->RecordProgress(a, l, 0, 0, now()).ok());
    clock_.Advance(absl::Seconds(secs));
    CommitFully(a, l);
  }
  ASSERT_TRUE(table_->MedianShardTime().has_value());
  EXPECT_EQ(*table_->MedianShardTime(), absl::Seconds(3));
  // Without progress, the time counts from the lease.
  const LeaseRef l = Ref(AcquireOne(a));
  clock_.Advance(absl::Seconds(10));
  CommitFully(a, l);
  const LeaseRef l2 = Ref(AcquireOne(a));
  clock_.Advance(absl::Seconds(10));
  CommitFully(a, l2);
  EXPECT_EQ(*table_->MedianShardTime(), absl::Seconds(5));
  Check();
}

class StragglerTest : public ShardTableTest {
 protected:
  // Three quick shards (1s each) make the median; then `slow` and `fast` each
  // start a shard and run for 10s: slow gets 1% done, fast 95%.
  void SetUp() override {
    Make(20);
    quick_ = NewSession();
    slow_ = NewSession();
    fast_ = NewSession();
    idle_ = NewSession();
    for (int i = 0; i < 3; ++i) {
      const LeaseRef l = Ref(AcquireOne(quick_));
      ASSERT_TRUE(table_->RecordProgress(quick_, l, 0, 0, now()).ok());
      clock_.Advance(absl::Seconds(1));
      CommitFully(quick_, l);
    }
    ASSERT_EQ(*table_->MedianShardTime(), absl::Seconds(1));
    slow_lease_ = Ref(AcquireOne(slow_));
    fast_lease_ = Ref(AcquireOne(fast_));
    ASSERT_TRUE(table_->RecordProgress(slow_, slow_lease_, 0, 0, now()).ok());
    ASSERT_TRUE(table_->RecordProgress(fast_, fast_lease_, 0, 0, now()).ok());
    clock_.Advance(absl::Seconds(10));
    ASSERT_TRUE(table_->RecordProgress(slow_, slow_lease_, 1, kUnits / 100, now()).ok());
    ASSERT_TRUE(
        table_->RecordProgress(fast_, fast_lease_, 95, kUnits * 95 / 100, now()).ok());
    Check();
  }

  SessionId quick_, slow_, fast_, idle_;
  LeaseRef slow_lease_, fast_lease_;
};

TEST_F(StragglerTest, NoMedianNoStraggler) {
  Make(5);
  const SessionId a = NewSession();
  const LeaseRef l = Ref(AcquireOne(a));
  ASSERT_TRUE(table_->RecordProgress(a, l, 0, 1, now()).ok());
  clock_.Advance(absl::Hours(1));
  EXPECT_FALSE(table_->PickStraggler(NewSession(), 3.0, now()).has_value());
}

TEST_F(StragglerTest, SlowShardWithLittleProgressIsPicked) {
  std::optional<uint64_t> pick = table_->PickStraggler(idle_, 3.0, now());
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(*pick, slow_lease_.shard_id);
}

TEST_F(StragglerTest, FastShardIsNotPicked) {
  // Only the fast worker remains in flight once the slow one is done.
  CommitFully(slow_, slow_lease_);
  EXPECT_FALSE(table_->PickStraggler(idle_, 3.0, now()).has_value());
  // Nor is anything while time is within the multiplier.
  EXPECT_FALSE(table_->PickStraggler(idle_, 1e6, now()).has_value());
}

TEST_F(StragglerTest, CallersOwnLeaseIsNeverPicked) {
  EXPECT_FALSE(table_->PickStraggler(slow_, 3.0, now()).has_value());
  EXPECT_EQ(table_->PickStraggler(fast_, 3.0, now()), slow_lease_.shard_id);
}

TEST_F(StragglerTest, DuplicatedShardIsNeverPickedAgain) {
  CommitFully(fast_, fast_lease_);  // the slow shard is the only candidate
  ASSERT_EQ(table_->PickStraggler(idle_, 3.0, now()), slow_lease_.shard_id);
  const LeasedShard dup = table_->LeaseDuplicate(slow_lease_.shard_id, idle_, now());
  EXPECT_TRUE(dup.speculative);
  EXPECT_EQ(dup.attempt, 2u);
  EXPECT_EQ(dup.shard.id, slow_lease_.shard_id);
  EXPECT_EQ(table_->speculative_leases(), 1u);
  Check();
  const SessionId other = NewSession();
  EXPECT_FALSE(table_->PickStraggler(other, 3.0, now()).has_value());
  clock_.Advance(absl::Minutes(10));
  EXPECT_FALSE(table_->PickStraggler(other, 3.0, now()).has_value());
}

TEST_F(StragglerTest, GrantedShardIsNeverPicked) {
  ASSERT_EQ(table_->RequestCommit(slow_, slow_lease_, 1, now()).decision,
            CommitDecision::kGranted);
  EXPECT_FALSE(table_->PickStraggler(idle_, 3.0, now()).has_value());
}

TEST_F(StragglerTest, ShardQueuedBehindASlowOneIsPicked) {
  // The slow worker also holds an unstarted shard: it waits for the slow one.
  const LeaseRef queued = Ref(AcquireOne(slow_));
  std::optional<uint64_t> pick = table_->PickStraggler(idle_, 3.0, now());
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(*pick, queued.shard_id);
}

TEST_F(StragglerTest, FirstCommitOfADuplicateRevokesTheOriginal) {
  const LeasedShard dup = table_->LeaseDuplicate(slow_lease_.shard_id, idle_, now());
  Check();
  clock_.Advance(absl::Seconds(1));
  PublishedShard p = CommitFully(idle_, Ref(dup), 100);
  EXPECT_TRUE(p.newly_committed);
  EXPECT_EQ(p.record.attempt, 2u);
  ASSERT_EQ(p.revoked.size(), 1u);
  EXPECT_EQ(p.revoked[0].session, slow_);
  EXPECT_EQ(p.revoked[0].lease, slow_lease_);
  EXPECT_THAT(p.revoked[0].reason, HasSubstr("committed first"));
  EXPECT_EQ(table_->speculative_leases(), 0u);
  EXPECT_EQ(table_->LeaseCount(slow_), 0u);
  EXPECT_EQ(table_->leased_shards(), 1u);  // the fast one
  Check();
  CommitOutcome late = table_->RequestCommit(slow_, slow_lease_, 100, now());
  EXPECT_EQ(late.decision, CommitDecision::kAlreadyCommitted);
}

TEST_F(StragglerTest, FirstCommitOfTheOriginalRevokesTheDuplicate) {
  const LeasedShard dup = table_->LeaseDuplicate(slow_lease_.shard_id, idle_, now());
  PublishedShard p = CommitFully(slow_, slow_lease_, 100);
  EXPECT_TRUE(p.newly_committed);
  ASSERT_EQ(p.revoked.size(), 1u);
  EXPECT_EQ(p.revoked[0].session, idle_);
  EXPECT_EQ(p.revoked[0].lease, Ref(dup));
  EXPECT_EQ(table_->speculative_leases(), 0u);
  EXPECT_EQ(table_->LeaseCount(idle_), 0u);
  Check();
}

TEST_F(StragglerTest, ReleasingTheOriginalLeavesTheDuplicateInCharge) {
  const LeasedShard dup = table_->LeaseDuplicate(slow_lease_.shard_id, idle_, now());
  table_->ReleaseSession(slow_, "slow worker died", false, now());
  EXPECT_EQ(table_->leased_shards(), 2u);
  EXPECT_EQ(table_->pending(), 15u);
  Check();
  // Not requeued: the duplicate still runs it.
  for (const LeasedShard& l : Acquire(NewSession(), 100)) {
    EXPECT_NE(l.shard.id, slow_lease_.shard_id);
  }
  Check();
  EXPECT_TRUE(CommitFully(idle_, Ref(dup)).newly_committed);
  Check();
}

// A model-based random test: many sessions doing random operations, the
// model predicting every outcome and the table's state checked after each step.
TEST_F(ShardTableTest, RandomizedOperationsKeepEveryInvariant) {
  constexpr uint64_t kShards = 1000;
  constexpr uint32_t kMaxAttempts = 3;
  Make(kShards, kMaxAttempts);
  std::mt19937_64 rng(0x5eed1234);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  struct ModelLease {
    uint32_t attempt = 0;
    bool started = false;
    bool granted = false;
    bool speculative = false;
  };
  // session -> shard -> lease
  std::map<SessionId, std::map<uint64_t, ModelLease>> held;
  std::vector<SessionId> live;
  for (int i = 0; i < 6; ++i) {
    live.push_back(NewSession());
    held[live.back()];
  }
  struct Dead {
    SessionId session;
    LeaseRef lease;
  };
  std::vector<Dead> dead;
  std::vector<int> commits(kShards, 0), quarantines(kShards, 0), failures(kShards, 0);
  std::vector<uint32_t> last_attempt(kShards, 0);
  int spec_count = 0;

  auto holders = [&](uint64_t id) {
    std::vector<std::pair<SessionId, ModelLease*>> out;
    for (auto& [s, leases] : held) {
      auto it = leases.find(id);
      if (it != leases.end()) out.push_back({s, &it->second});
    }
    return out;
  };
  auto kill = [&](SessionId s, uint64_t id) {
    auto it = held[s].find(id);
    ASSERT_NE(it, held[s].end()) << "session " << s << " did not hold " << id;
    dead.push_back({s, {id, it->second.attempt}});
    held[s].erase(it);
  };
  auto on_revoked = [&](const std::vector<RevokedLease>& revoked) {
    for (const RevokedLease& r : revoked) {
      auto it = held[r.session].find(r.lease.shard_id);
      ASSERT_NE(it, held[r.session].end());
      EXPECT_EQ(it->second.attempt, r.lease.attempt);
      kill(r.session, r.lease.shard_id);
    }
  };
  // Records a counted failure in the model; true when it quarantines: after
  // max_attempts failures, unless another attempt holds the commit grant.
  auto model_failure = [&](uint64_t id) {
    bool granted = false;
    for (auto& [other, l] : holders(id)) granted = granted || l->granted;
    return ++failures[id] >= int{kMaxAttempts} && !granted;
  };
  auto on_quarantined = [&](const std::vector<QuarantineRecord>& q,
                            const std::set<uint64_t>& expected) {
    std::set<uint64_t> got;
    for (const QuarantineRecord& r : q) {
      got.insert(r.shard_id);
      ++quarantines[r.shard_id];
      EXPECT_EQ(r.errors.size(), static_cast<size_t>(failures[r.shard_id]))
          << "shard " << r.shard_id;
      EXPECT_GE(r.errors.size(), kMaxAttempts) << "shard " << r.shard_id;
    }
    EXPECT_EQ(got, expected);
  };
  auto random_lease = [&](SessionId s) -> std::optional<uint64_t> {
    if (held[s].empty()) return std::nullopt;
    auto it = held[s].begin();
    std::advance(it, pick(held[s].size()));
    return it->first;
  };
  auto compare_with_model = [&]() {
    std::set<uint64_t> leased;
    for (auto& [s, leases] : held) {
      std::vector<LeaseRef> want;
      for (auto& [id, l] : leases) {
        want.push_back({id, l.attempt});
        leased.insert(id);
      }
      ASSERT_EQ(table_->LeasesOf(s), want) << "session " << s;
    }
    ASSERT_EQ(table_->leased_shards(), leased.size());
    uint64_t c = 0, q = 0;
    for (uint64_t id = 0; id < kShards; ++id) {
      ASSERT_LE(commits[id] + quarantines[id], 1) << "shard " << id << " finished twice";
      c += commits[id];
      q += quarantines[id];
    }
    ASSERT_EQ(table_->committed(), c);
    ASSERT_EQ(table_->quarantined(), q);
  };

  int step = 0;
  for (; step < 15000 && !table_->finished(); ++step) {
    SCOPED_TRACE(absl::StrCat("step ", step));
    const SessionId s = live[pick(live.size())];
    const int op = static_cast<int>(rng() % 100);
    if (op < 12) {  // acquire
      std::vector<LeasedShard> got = Acquire(s, 1 + static_cast<uint32_t>(pick(3)));
      for (const LeasedShard& l : got) {
        const uint64_t id = l.shard.id;
        EXPECT_FALSE(l.speculative);
        EXPECT_EQ(commits[id] + quarantines[id], 0)
            << "handed out a finished shard " << id;
        EXPECT_TRUE(holders(id).empty()) << "handed out a leased shard " << id;
        EXPECT_EQ(l.attempt, last_attempt[id] + 1);
        last_attempt[id] = l.attempt;
        held[s][id] = ModelLease{l.attempt};
      }
    } else if (op < 26) {  // progress
      if (auto id = random_lease(s)) {
        ModelLease& l = held[s][*id];
        EXPECT_TRUE(table_
                        ->RecordProgress(s, {*id, l.attempt}, 1 + pick(kUnits),
                                         1 + pick(kUnits), now())
                        .ok());
        l.started = true;
      }
    } else if (op < 44) {  // request commit
      if (auto id = random_lease(s)) {
        ModelLease& l = held[s][*id];
        bool other_granted = false;
        for (auto& [other, ol] : holders(*id)) {
          if (other != s && ol->granted) other_granted = true;
        }
        CommitOutcome c = table_->RequestCommit(s, {*id, l.attempt}, *id, now());
        if (other_granted) {
          EXPECT_EQ(c.decision, CommitDecision::kAlreadyCommitted) << c.reason;
          kill(s, *id);
        } else {
          EXPECT_EQ(c.decision, CommitDecision::kGranted) << c.reason;
          l.granted = true;
          l.started = true;
        }
      }
    } else if (op < 60) {  // confirm published, usually of a granted lease
      std::optional<uint64_t> id = random_lease(s);
      for (auto& [gid, gl] : held[s]) {
        if (gl.granted && rng() % 4 != 0) id = gid;
      }
      if (id) {
        ModelLease l = held[s][*id];
        absl::StatusOr<PublishedShard> p =
            table_->ConfirmPublished(s, {*id, l.attempt}, now());
        if (!l.granted) {
          EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
        } else {
          ASSERT_TRUE(p.ok()) << p.status();
          EXPECT_TRUE(p->newly_committed);
          EXPECT_EQ(p->record.shard_id, *id);
          EXPECT_EQ(p->record.attempt, l.attempt);
          EXPECT_EQ(p->record.records, *id);
          ++commits[*id];
          held[s].erase(*id);
          size_t others = holders(*id).size();
          EXPECT_EQ(p->revoked.size(), others);
          on_revoked(p->revoked);
        }
      }
    } else if (op < 63) {  // fail
      if (auto id = random_lease(s)) {
        const uint32_t attempt = held[s][*id].attempt;
        kill(s, *id);
        const bool quarantine = model_failure(*id);
        absl::StatusOr<FailOutcome> f = table_->Fail(s, {*id, attempt}, "failed", now());
        ASSERT_TRUE(f.ok()) << f.status();
        EXPECT_EQ(f->failures, static_cast<uint32_t>(failures[*id]));
        on_quarantined(f->quarantined,
                       quarantine ? std::set<uint64_t>{*id} : std::set<uint64_t>{});
        if (quarantine) {
          EXPECT_EQ(f->revoked.size(), holders(*id).size());
          on_revoked(f->revoked);
        } else {
          EXPECT_THAT(f->revoked, IsEmpty());
        }
      }
    } else if (op < 65) {  // the session ends
      const bool count = rng() % 2 == 0;
      std::set<uint64_t> expect_quarantined;
      std::vector<uint64_t> ids;
      for (auto& [id, l] : held[s]) ids.push_back(id);
      for (uint64_t id : ids) {
        const bool started = held[s][id].started || held[s][id].granted;
        kill(s, id);
        if (count && started && model_failure(id)) expect_quarantined.insert(id);
      }
      FailOutcome out = table_->ReleaseSession(s, "session ended", count, now());
      on_quarantined(out.quarantined, expect_quarantined);
      on_revoked(out.revoked);
      if (rng() % 2 == 0) {  // replaced by a new worker
        live.erase(std::find(live.begin(), live.end(), s));
        live.push_back(NewSession());
        held[live.back()];
      }
    } else if (op < 72) {  // speculation
      if (std::optional<uint64_t> id = table_->PickStraggler(s, 1.0, now())) {
        auto h = holders(*id);
        ASSERT_EQ(h.size(), 1u) << "picked a duplicated shard " << *id;
        EXPECT_NE(h[0].first, s) << "picked the caller's own shard";
        EXPECT_FALSE(h[0].second->granted) << "picked a granted shard";
        LeasedShard dup = table_->LeaseDuplicate(*id, s, now());
        ++spec_count;
        EXPECT_TRUE(dup.speculative);
        EXPECT_EQ(dup.attempt, last_attempt[*id] + 1);
        last_attempt[*id] = dup.attempt;
        held[s][*id] = ModelLease{dup.attempt, false, false, true};
      }
    } else if (op < 82) {  // a zombie uses a dead lease
      if (!dead.empty()) {
        const Dead& d = dead[pick(dead.size())];
        EXPECT_FALSE(table_->CheckLease(d.session, d.lease).ok());
        EXPECT_FALSE(table_->RecordProgress(d.session, d.lease, 1, 1, now()).ok());
        CommitOutcome c = table_->RequestCommit(d.session, d.lease, 1, now());
        EXPECT_NE(c.decision, CommitDecision::kGranted);
        if (commits[d.lease.shard_id] == 1) {
          EXPECT_EQ(c.decision, CommitDecision::kAlreadyCommitted);
        } else {
          EXPECT_EQ(c.decision, CommitDecision::kLeaseLost);
        }
        absl::StatusOr<PublishedShard> p =
            table_->ConfirmPublished(d.session, d.lease, now());
        if (p.ok()) {
          EXPECT_EQ(commits[d.lease.shard_id], 1);
          EXPECT_FALSE(p->newly_committed);
        }
        EXPECT_FALSE(table_->Fail(d.session, d.lease, "zombie", now()).ok());
      }
    } else if (op < 90) {  // another session's lease
      const SessionId owner = live[pick(live.size())];
      if (owner != s) {
        if (auto id = random_lease(owner)) {
          const LeaseRef ref{*id, held[owner][*id].attempt};
          absl::Status st = table_->CheckLease(s, ref);
          EXPECT_THAT(Message(st), HasSubstr("belongs to another worker"));
          EXPECT_EQ(table_->RequestCommit(s, ref, 1, now()).decision,
                    CommitDecision::kLeaseLost);
          EXPECT_FALSE(table_->Fail(s, ref, "not mine", now()).ok());
        }
      }
    } else {
      clock_.Advance(absl::Milliseconds(static_cast<int64_t>(pick(5000))));
    }
    if (HasFailure()) break;
    compare_with_model();
    Check();
    if (HasFailure()) break;
  }
  ASSERT_FALSE(HasFailure());

  // Drain: every live session finishes what it holds, then one worker takes
  // whatever is left.
  auto finish = [&](SessionId s) {
    std::vector<uint64_t> ids;
    for (auto& [id, l] : held[s]) ids.push_back(id);
    for (uint64_t id : ids) {
      if (!held[s].count(id)) continue;  // revoked meanwhile
      const LeaseRef ref{id, held[s][id].attempt};
      CommitOutcome c = table_->RequestCommit(s, ref, id, now());
      if (c.decision != CommitDecision::kGranted) {
        EXPECT_EQ(c.decision, CommitDecision::kAlreadyCommitted);
        kill(s, id);
        continue;
      }
      absl::StatusOr<PublishedShard> p = table_->ConfirmPublished(s, ref, now());
      ASSERT_TRUE(p.ok()) << p.status();
      ASSERT_TRUE(p->newly_committed);
      ++commits[id];
      held[s].erase(id);
      on_revoked(p->revoked);
    }
  };
  for (SessionId s : live) finish(s);
  const SessionId last = NewSession();
  for (int round = 0; round < 1000 && !table_->finished(); ++round) {
    for (const LeasedShard& l : Acquire(last, 7)) held[last][l.shard.id] = {l.attempt};
    finish(last);
    compare_with_model();
  }
  for (auto& [s, leases] : held) {
    for (auto& [id, l] : leases) {
      // A shard can only still be held if a lease lingers: finish it too.
      ADD_FAILURE() << "session " << s << " still holds " << id;
    }
  }
  Check();
  EXPECT_TRUE(table_->finished());
  EXPECT_EQ(table_->pending(), 0u);
  EXPECT_EQ(table_->leased_shards(), 0u);
  EXPECT_EQ(table_->speculative_leases(), 0u);
  uint64_t q = 0;
  for (uint64_t id = 0; id < kShards; ++id) {
    EXPECT_EQ(commits[id] + quarantines[id], 1) << "shard " << id;
    EXPECT_EQ(table_->IsCommitted(id), commits[id] == 1) << "shard " << id;
    q += quarantines[id];
  }
  EXPECT_EQ(table_->quarantined(), q);
  EXPECT_EQ(table_->committed(), kShards - q);
  // Sanity: the run exercised the interesting paths.
  EXPECT_GT(q, 0u);
  EXPECT_LT(q, kShards);
  EXPECT_GT(spec_count, 0);
  EXPECT_GT(dead.size(), 0u);
}

}  // namespace
}  // namespace elasticbatch::aimaster

namespace elasticbatch::aimaster {
namespace {

class StealTest : public ::testing::Test {
 protected:
  StealTest()
      : shards_(*ShardEnumerator::ForRecords(100 * 10, 100)),
        table_(&shards_, ShardTableOptions{3}) {}
  LeaseRef Ref(const LeasedShard& l) { return {l.shard.id, l.attempt}; }
  // Commits a few quick shards so the median shard time is `d`.
  void SetMedian(SessionId s, absl::Duration d) {
    for (int i = 0; i < 3; ++i) {
      LeasedShard l = table_.Acquire(s, 1, clock_.Now())[0];
      ASSERT_TRUE(table_.RecordProgress(s, Ref(l), 1, 1, clock_.Now()).ok());
      clock_.Advance(d);
      ASSERT_EQ(table_.RequestCommit(s, Ref(l), 1, clock_.Now()).decision,
                CommitDecision::kGranted);
      ASSERT_TRUE(table_.ConfirmPublished(s, Ref(l), clock_.Now()).ok());
    }
  }
  FakeClock clock_;
  ShardEnumerator shards_;
  ShardTable table_;
};

TEST_F(StealTest, AnIdleSessionTakesAnUnstartedShardFromABusyOne) {
  SetMedian(1, absl::Seconds(1));
  // Session 2 runs a slow shard (1% done after 10s) and has one prefetched.
  std::vector<LeasedShard> held = table_.Acquire(2, 2, clock_.Now());
  ASSERT_EQ(held.size(), 2u);
  ASSERT_TRUE(table_.RecordProgress(2, Ref(held[0]), 1, 1, clock_.Now()).ok());
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(table_.RecordProgress(2, Ref(held[0]), 1, 1, clock_.Now()).ok());
  ASSERT_TRUE(table_.Renew(2, Ref(held[1]), clock_.Now()).ok());

  std::optional<uint64_t> id = table_.PickStealable(3, absl::Seconds(1), clock_.Now());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, held[1].shard.id);  // the unstarted one, never the running one
  RevokedLease revoked;
  LeasedShard stolen = table_.Steal(*id, 3, clock_.Now(), &revoked);
  EXPECT_EQ(stolen.shard.id, held[1].shard.id);
  EXPECT_EQ(stolen.attempt, held[1].attempt + 1);
  EXPECT_FALSE(stolen.speculative);
  EXPECT_EQ(revoked.session, 2u);
  EXPECT_EQ(revoked.lease, Ref(held[1]));
  // The old holder is fenced off with the reason; the new one holds it alone.
  EXPECT_THAT(std::string(table_.CheckLease(2, Ref(held[1])).message()),
              ::testing::HasSubstr("handed to an idle worker"));
  EXPECT_TRUE(table_.CheckLease(3, Ref(stolen)).ok());
  EXPECT_EQ(table_.leased_shards(), 2u);
  EXPECT_EQ(table_.committed() + table_.leased_shards() + table_.pending(),
            table_.total());
}

TEST_F(StealTest, NothingIsStolenFromAnIdleHolderOrSoonFreeOne) {
  SetMedian(1, absl::Seconds(1));
  // Held but nothing started: its holder will start it at once.
  std::vector<LeasedShard> held = table_.Acquire(2, 2, clock_.Now());
  EXPECT_FALSE(table_.PickStealable(3, absl::Seconds(1), clock_.Now()).has_value());
  // Started and nearly done (90%): the prefetched one starts soon.
  ASSERT_TRUE(table_.RecordProgress(2, Ref(held[0]), 90, 90, clock_.Now()).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(table_.RecordProgress(2, Ref(held[0]), 90, 90, clock_.Now()).ok());
  EXPECT_FALSE(table_.PickStealable(3, absl::Seconds(1), clock_.Now()).has_value());
  // Never from oneself.
  EXPECT_FALSE(table_.PickStealable(2, absl::Seconds(0), clock_.Now()).has_value());
}

}  // namespace
}  // namespace elasticbatch::aimaster
