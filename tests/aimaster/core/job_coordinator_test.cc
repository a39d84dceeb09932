// JobCoordinator: sessions, leases, commits, failures, speculation, restarts.
#include "aimaster/core/job_coordinator.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::TempDir;

constexpr uint64_t kUnits = 100;  // records per shard

std::vector<uint64_t> Ids(const std::vector<GrantedShard>& shards) {
  std::vector<uint64_t> out;
  for (const GrantedShard& g : shards) out.push_back(g.leased.shard.id);
  return out;
}

LeaseRef Ref(const GrantedShard& g) { return {g.leased.shard.id, g.leased.attempt}; }

std::string Message(const absl::Status& s) { return std::string(s.message()); }

const WorkerCommand* FindCommand(const HeartbeatResult& hb, WorkerCommand::Kind kind,
                                 std::optional<LeaseRef> lease = std::nullopt) {
  for (const WorkerCommand& c : hb.commands) {
    if (c.kind == kind && (!lease || c.lease == *lease)) return &c;
  }
  return nullptr;
}

class JobCoordinatorTest : public ::testing::Test {
 protected:
  // A job of `shards` shards, with a journal in a new state dir unless told
  // otherwise. `restart` reuses the last state dir instead: the journal is
  // replayed into the new coordinator as the server does it.
  void Make(uint64_t shards, CoordinatorOptions options = {}, bool with_journal = true,
            bool restart = false) {
    coordinator_.reset();
    journal_.reset();
    if (!restart) state_dir_ = absl::StrCat(dir_.path(), "/state", ++state_dirs_);
    absl::StatusOr<ShardEnumerator> e =
        ShardEnumerator::ForRecords(shards * kUnits, kUnits);
    ASSERT_TRUE(e.ok()) << e.status();
    enumerator_.emplace(*std::move(e));
    replayed_commits_.clear();
    replayed_quarantines_.clear();
    if (with_journal) {
      JournalReplay replay;
      replay.on_commit = [this](const CommitRecord& c) {
        replayed_commits_.push_back(c);
      };
      replay.on_quarantine = [this](const QuarantineRecord& q) {
        replayed_quarantines_.push_back(q);
      };
      auto j = Journal::Open(state_dir(),
                             {enumerator_->fingerprint(), shards, options.job_id, "/out",
                              options.input_channel},
                             replay);
      ASSERT_TRUE(j.ok()) << j.status();
      journal_ = *std::move(j);
    }
    coordinator_ =
        std::make_unique<JobCoordinator>(&clock_, &*enumerator_, journal_.get(), options);
    for (const CommitRecord& c : replayed_commits_) coordinator_->RestoreCommitted(c);
    for (const QuarantineRecord& q : replayed_quarantines_)
      coordinator_->RestoreQuarantined(q);
  }
  void SetUp() override { Make(5); }

  const std::string& state_dir() const { return state_dir_; }

  SessionId Register(uint32_t index, int32_t pid = 100,
                     const std::vector<HeldLease>& held = {}) {
    WorkerIdentity who;
    who.task_index = index;
    who.pid = pid;
    who.host = "host-a";
    absl::StatusOr<Registration> reg = coordinator_->Register(who, held);
    EXPECT_TRUE(reg.ok()) << reg.status();
    if (!reg.ok()) return 0;
    Sync(reg->durable_seq);
    return reg->session;
  }
  AcquireResult Acquire(SessionId s, uint32_t n,
                        const std::vector<LeaseRef>& published = {},
                        const std::vector<ProgressReport>& progress = {}) {
    absl::StatusOr<AcquireResult> r = coordinator_->Acquire(s, n, published, progress);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    Sync(r->durable_seq);
    return *r;
  }
  std::vector<GrantedShard> AcquireShards(SessionId s, uint32_t n,
                                          const std::vector<LeaseRef>& published = {}) {
    AcquireResult r = Acquire(s, n, published);
    EXPECT_EQ(r.outcome, AcquireOutcome::kShards);
    return r.shards;
  }
  HeartbeatResult Heartbeat(SessionId s, const std::vector<ProgressReport>& progress = {},
                            const std::vector<LeaseRef>& published = {}) {
    absl::StatusOr<HeartbeatResult> r = coordinator_->Heartbeat(s, progress, published);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    Sync(r->durable_seq);
    return *r;
  }
  CommitResult Commit(SessionId s, LeaseRef lease, uint64_t records = kUnits,
                      const std::vector<LeaseRef>& published = {}) {
    absl::StatusOr<CommitCallResult> r =
        coordinator_->Commit(s, {{lease, records}}, published);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->results.size() != 1) {
      ADD_FAILURE() << "no commit result";
      return {};
    }
    Sync(r->durable_seq);
    return r->results[0];
  }
  // Grant and confirm in two calls, like a worker publishing in between.
  void CommitAndPublish(SessionId s, LeaseRef lease, uint64_t records = kUnits) {
    CommitResult c = Commit(s, lease, records);
    ASSERT_EQ(c.decision, CommitDecision::kGranted) << c.reason;
    Heartbeat(s, {}, {lease});
  }
  void Sync(uint64_t seq) {
    if (journal_ != nullptr && seq > 0) {
      ASSERT_TRUE(journal_->Sync(seq).ok());
    }
  }
  // Everything the journal holds on disk now.
  std::pair<std::vector<CommitRecord>, std::vector<QuarantineRecord>> OnDisk() {
    std::pair<std::vector<CommitRecord>, std::vector<QuarantineRecord>> out;
    JournalReplay replay;
    replay.on_commit = [&](const CommitRecord& c) { out.first.push_back(c); };
    replay.on_quarantine = [&](const QuarantineRecord& q) { out.second.push_back(q); };
    EXPECT_TRUE(Journal::Read(state_dir(), replay).ok());
    return out;
  }
  void ExpectCountersConsistent() {
    JobProgress p = coordinator_->Progress();
    EXPECT_EQ(
        p.committed_shards + p.quarantined_shards + p.leased_shards + p.pending_shards,
        p.total_shards);
  }

  TempDir dir_;
  int state_dirs_ = 0;
  std::string state_dir_;
  FakeClock clock_;
  std::optional<ShardEnumerator> enumerator_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JobCoordinator> coordinator_;
  std::vector<CommitRecord> replayed_commits_;
  std::vector<QuarantineRecord> replayed_quarantines_;
};

TEST_F(JobCoordinatorTest, RegisterRejectsAnUnknownTaskType) {
  WorkerIdentity who;
  who.task_type = "ps";
  absl::StatusOr<Registration> reg = coordinator_->Register(who, {});
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(reg.status()), HasSubstr("'ps'"));
  EXPECT_THAT(coordinator_->Sessions(), IsEmpty());
  EXPECT_EQ(coordinator_->Progress().live_sessions, 0u);
}

// Session ids are random: a restarted master (whose journal may even have
// lost its tail) never hands out an id of an earlier run, and nobody can
// guess another worker's.
TEST_F(JobCoordinatorTest, SessionIdsAreRandomAndUnknownToAnotherMasterRun) {
  const SessionId a = Register(0);
  const SessionId b = Register(1);
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_NE(b, a + 1);  // not sequential (fails once in 2^64 runs)
  Make(5, CoordinatorOptions());
  const SessionId c = Register(0);
  EXPECT_NE(c, a);
  // Sessions of the earlier master run are unknown to this one.
  EXPECT_EQ(coordinator_->Acquire(a, 1, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  std::optional<WorkerIdentity> who = coordinator_->SessionIdentity(c);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->task_index, 0u);
  EXPECT_EQ(who->host, "host-a");
  EXPECT_FALSE(coordinator_->SessionIdentity(a).has_value());
}

TEST_F(JobCoordinatorTest, AcquireCommitConfirmRunsTheJobToTheEnd) {
  const SessionId w0 = Register(0);
  const SessionId w1 = Register(1);
  std::map<uint64_t, uint32_t> committed_by;  // shard -> task index
  std::vector<LeaseRef> to_publish[2];
  const SessionId sessions[2] = {w0, w1};
  bool ended[2] = {false, false};
  for (int round = 0; round < 20 && !(ended[0] && ended[1]); ++round) {
    for (int w = 0; w < 2; ++w) {
      if (ended[w]) continue;
      AcquireResult r = Acquire(sessions[w], 2, to_publish[w]);
      to_publish[w].clear();
      if (r.outcome == AcquireOutcome::kEnd) {
        EXPECT_TRUE(r.job_succeeded);
        EXPECT_EQ(r.end_reason, "all shards committed");
        ended[w] = true;
        continue;
      }
      if (r.outcome == AcquireOutcome::kWait) continue;
      for (const GrantedShard& g : r.shards) {
        EXPECT_EQ(g.output_name, enumerator_->OutputName(g.leased.shard.id));
        EXPECT_EQ(g.leased.attempt, 1u);
        EXPECT_FALSE(g.leased.speculative);
        clock_.Advance(absl::Milliseconds(300));
        CommitResult c = Commit(sessions[w], Ref(g), g.leased.shard.id * 10);
        EXPECT_EQ(c.decision, CommitDecision::kGranted) << c.reason;
        EXPECT_EQ(c.lease, Ref(g));
        EXPECT_TRUE(committed_by.emplace(g.leased.shard.id, w).second);
        to_publish[w].push_back(Ref(g));
      }
      ExpectCountersConsistent();
    }
  }
  ASSERT_TRUE(ended[0] && ended[1]);
  EXPECT_EQ(committed_by.size(), 5u);
  EXPECT_TRUE(coordinator_->ended());
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kSucceeded);
  EXPECT_EQ(p.committed_shards, 5u);
  EXPECT_EQ(p.pending_shards, 0u);
  EXPECT_EQ(p.leased_shards, 0u);
  EXPECT_EQ(p.committed_records, 0u + 10 + 20 + 30 + 40);
  EXPECT_EQ(p.eta, absl::ZeroDuration());
  EXPECT_TRUE(coordinator_->AllSessionsToldEnd());

  // Every commit is in the journal, attributed to its worker.
  auto [commits, quarantines] = OnDisk();
  EXPECT_THAT(quarantines, IsEmpty());
  ASSERT_EQ(commits.size(), 5u);
  for (const CommitRecord& c : commits) {
    EXPECT_EQ(c.records, c.shard_id * 10);
    EXPECT_EQ(c.attempt, 1u);
    EXPECT_EQ(c.task_index, committed_by[c.shard_id]);
  }
  uint64_t by_sessions = 0;
  for (const SessionInfo& info : coordinator_->Sessions())
    by_sessions += info.shards_committed;
  EXPECT_EQ(by_sessions, 5u);

  // Afterwards a heartbeat tells the worker to stop.
  HeartbeatResult hb = Heartbeat(w0);
  const WorkerCommand* stop = FindCommand(hb, WorkerCommand::Kind::kStop);
  ASSERT_NE(stop, nullptr);
  EXPECT_TRUE(stop->job_finished);
  EXPECT_EQ(stop->reason, "all shards committed");
}

TEST_F(JobCoordinatorTest, ConfirmationsAreJournalledBeforeTheyAreAcknowledged) {
  const SessionId w = Register(0);
  const GrantedShard g = AcquireShards(w, 1)[0];
  ASSERT_EQ(Commit(w, Ref(g), 42).decision, CommitDecision::kGranted);
  // The grant alone journals nothing.
  EXPECT_THAT(OnDisk().first, IsEmpty());
  absl::StatusOr<HeartbeatResult> hb = coordinator_->Heartbeat(w, {}, {Ref(g)});
  ASSERT_TRUE(hb.ok());
  EXPECT_GT(hb->durable_seq, 0u);
  // Not on disk yet: not acknowledged yet.
  EXPECT_THAT(hb->confirmed, IsEmpty());
  ASSERT_TRUE(journal_->Sync(hb->durable_seq).ok());
  auto commits = OnDisk().first;
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].shard_id, g.leased.shard.id);
  EXPECT_EQ(commits[0].records, 42u);
  // A repeated confirmation journals nothing new.
  absl::StatusOr<HeartbeatResult> again = coordinator_->Heartbeat(w, {}, {Ref(g)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->durable_seq, 0u);
  EXPECT_EQ(coordinator_->Progress().committed_shards, 1u);
  // Durable now: acknowledged (once).
  EXPECT_THAT(again->confirmed, ElementsAre(Ref(g)));
  absl::StatusOr<HeartbeatResult> later = coordinator_->Heartbeat(w, {}, {});
  EXPECT_THAT(later->confirmed, IsEmpty());
}

TEST_F(JobCoordinatorTest, HeartbeatConfirmingALeaseItAlsoReportsDoesNotCancelIt) {
  // A worker lists every lease it holds, granted and unconfirmed ones
  // included, and confirms in the same heartbeat.
  const SessionId w = Register(0);
  std::vector<GrantedShard> got = AcquireShards(w, 2);
  ASSERT_EQ(Commit(w, Ref(got[0])).decision, CommitDecision::kGranted);
  HeartbeatResult hb =
      Heartbeat(w, {{Ref(got[0]), 100, 100}, {Ref(got[1]), 5, 5}}, {Ref(got[0])});
  EXPECT_GT(hb.durable_seq, 0u);
  EXPECT_THAT(hb.commands, IsEmpty()) << hb.commands[0].reason;
  EXPECT_EQ(coordinator_->Progress().committed_shards, 1u);
}

TEST_F(JobCoordinatorTest, CommitCanConfirmEarlierShardsInTheSameCall) {
  const SessionId w = Register(0);
  std::vector<GrantedShard> got = AcquireShards(w, 2);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(Commit(w, Ref(got[0])).decision, CommitDecision::kGranted);
  absl::StatusOr<CommitCallResult> r =
      coordinator_->Commit(w, {{Ref(got[1]), 5}}, /*published=*/{Ref(got[0])});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->results.size(), 1u);
  EXPECT_EQ(r->results[0].decision, CommitDecision::kGranted);
  EXPECT_GT(r->durable_seq, 0u);
  EXPECT_EQ(coordinator_->Progress().committed_shards, 1u);
}

TEST_F(JobCoordinatorTest, AcquireWaitsWhenEverythingIsLeased) {
  CoordinatorOptions options;
  options.speculation = false;
  Make(2, options);
  const SessionId w0 = Register(0);
  const SessionId w1 = Register(1);
  std::vector<GrantedShard> got = AcquireShards(w0, 5);
  ASSERT_EQ(got.size(), 2u);
  AcquireResult wait = Acquire(w1, 1);
  EXPECT_EQ(wait.outcome, AcquireOutcome::kWait);
  EXPECT_THAT(wait.shards, IsEmpty());
  // No shard time known yet: the default hint.
  EXPECT_EQ(wait.retry_after, absl::Milliseconds(250));
  // A 4s shard: a quarter of the median.
  ASSERT_TRUE(coordinator_->Heartbeat(w0, {{Ref(got[0]), 0, 0}}, {}).ok());
  clock_.Advance(absl::Seconds(4));
  CommitAndPublish(w0, Ref(got[0]));
  wait = Acquire(w1, 1);
  EXPECT_EQ(wait.outcome, AcquireOutcome::kWait);
  EXPECT_EQ(wait.retry_after, absl::Seconds(1));
  EXPECT_FALSE(coordinator_->ended());
}

TEST_F(JobCoordinatorTest, RetryHintIsClamped) {
  CoordinatorOptions options;
  options.speculation = false;
  Make(3, options);
  const SessionId w0 = Register(0);
  const SessionId w1 = Register(1);
  std::vector<GrantedShard> got = AcquireShards(w0, 3);
  // One very quick shard: the hint does not drop below 50ms.
  clock_.Advance(absl::Milliseconds(10));
  CommitAndPublish(w0, Ref(got[0]));
  EXPECT_EQ(Acquire(w1, 1).retry_after, absl::Milliseconds(50));
  // Two very slow ones: the hint does not exceed 2s.
  clock_.Advance(absl::Minutes(5));
  CommitAndPublish(w0, Ref(got[1]));
  EXPECT_EQ(Acquire(w1, 1).retry_after, absl::Seconds(2));
}

TEST_F(JobCoordinatorTest, ZeroMaxShardsIsInvalid) {
  const SessionId w = Register(0);
  EXPECT_EQ(coordinator_->Acquire(w, 0, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobCoordinatorTest, UnknownSessionIsNotFound) {
  Register(0);
  const SessionId bogus = 42;
  EXPECT_EQ(coordinator_->Acquire(bogus, 1, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->Heartbeat(bogus, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->Commit(bogus, {}, {}).status().code(),
            absl::StatusCode::kNotFound);
  absl::Status fail = coordinator_->Fail(bogus, {0, 1}, "x").status();
  EXPECT_EQ(fail.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(fail), HasSubstr("register again"));
}

TEST_F(JobCoordinatorTest, SupersededSessionIsRefusedAndItsLeasesRequeued) {
  const SessionId old_session = Register(0, /*pid=*/100);
  std::vector<GrantedShard> got = AcquireShards(old_session, 2);
  ASSERT_THAT(Ids(got), ElementsAre(0, 1));
  Heartbeat(old_session, {{Ref(got[0]), 10, 10}});
  const uint64_t epoch = coordinator_->work_epoch();

  // The same process registers again (e.g. it lost its connection).
  const SessionId new_session = Register(0, /*pid=*/100);
  EXPECT_NE(new_session, old_session);
  EXPECT_GT(coordinator_->work_epoch(), epoch);
  absl::StatusOr<AcquireResult> refused = coordinator_->Acquire(old_session, 1, {}, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(refused.status()), HasSubstr("superseded"));
  EXPECT_EQ(coordinator_->Heartbeat(old_session, {}, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(coordinator_->Commit(old_session, {{Ref(got[0]), 1}}, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(coordinator_->Fail(old_session, Ref(got[0]), "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectCountersConsistent();
  EXPECT_EQ(coordinator_->Progress().leased_shards, 0u);
  EXPECT_EQ(coordinator_->Progress().live_sessions, 1u);

  // Its shards come back first, as new attempts; no failure was counted.
  std::vector<GrantedShard> again = AcquireShards(new_session, 3);
  EXPECT_THAT(Ids(again), ElementsAre(0, 1, 2));
  EXPECT_EQ(again[0].leased.attempt, 2u);
  EXPECT_EQ(again[1].leased.attempt, 2u);
  bool truncated;
  for (const ShardSnapshot& s : coordinator_->Shards(false, 100, &truncated)) {
    EXPECT_THAT(s.errors, IsEmpty()) << "shard " << s.shard.id;
  }
  std::vector<SessionInfo> sessions = coordinator_->Sessions();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_FALSE(sessions[0].live);
  EXPECT_THAT(sessions[0].ended_reason, HasSubstr("superseded"));
  EXPECT_TRUE(sessions[1].live);
  EXPECT_EQ(sessions[1].leases_held, 3u);
}

TEST_F(JobCoordinatorTest, ReplacementByAnotherProcessCountsStartedShardsAsFailed) {
  CoordinatorOptions options;
  options.max_attempts = 1;
  options.max_failed_shards = 5;
  Make(5, options);
  const SessionId old_session = Register(0, /*pid=*/100);
  std::vector<GrantedShard> got = AcquireShards(old_session, 2);
  Heartbeat(old_session, {{Ref(got[0]), 10, 10}});  // shard 0 started, shard 1 not
  absl::StatusOr<Registration> reg =
      coordinator_->Register({"worker", 0, 1, "host-a", 200}, {});
  ASSERT_TRUE(reg.ok());
  EXPECT_GT(reg->durable_seq, 0u);
  Sync(reg->durable_seq);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.quarantined_shards, 1u);
  EXPECT_EQ(p.pending_shards, 4u);
  auto quarantines = OnDisk().second;
  ASSERT_EQ(quarantines.size(), 1u);
  EXPECT_EQ(quarantines[0].shard_id, 0u);
  ASSERT_EQ(quarantines[0].errors.size(), 1u);
  EXPECT_THAT(quarantines[0].errors[0], HasSubstr("superseded"));
  EXPECT_THAT(Ids(AcquireShards(reg->session, 1)), ElementsAre(1));
}

TEST_F(JobCoordinatorTest, SilentWorkerLosesItsLeasesAfterTheTimeout) {
  const SessionId silent = Register(0);
  const SessionId alive = Register(1);
  std::vector<GrantedShard> got = AcquireShards(silent, 2);
  ASSERT_EQ(got.size(), 2u);
  Heartbeat(silent, {{Ref(got[0]), 1, 1}});
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(coordinator_->Tick(), 0u);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 2u);  // not yet
  Heartbeat(alive);
  clock_.Advance(absl::Seconds(11));  // silent for 31s, alive for 11s
  const uint64_t epoch = coordinator_->work_epoch();
  EXPECT_EQ(coordinator_->Tick(), 0u);  // nothing quarantined: nothing to journal
  EXPECT_GT(coordinator_->work_epoch(), epoch);
  EXPECT_EQ(coordinator_->Progress().leased_shards, 0u);
  EXPECT_EQ(coordinator_->Progress().pending_shards, 5u);
  ExpectCountersConsistent();

  // The stale worker comes back: its commit is refused, saying why.
  CommitResult c = Commit(silent, Ref(got[0]));
  EXPECT_EQ(c.decision, CommitDecision::kLeaseLost);
  EXPECT_THAT(c.reason, HasSubstr("expired"));
  // Its heartbeat about the lost lease cancels the shard.
  HeartbeatResult hb = Heartbeat(silent, {{Ref(got[1]), 5, 5}});
  const WorkerCommand* cancel =
      FindCommand(hb, WorkerCommand::Kind::kCancelShard, Ref(got[1]));
  ASSERT_NE(cancel, nullptr);
  EXPECT_THAT(cancel->reason, HasSubstr("expired"));
  EXPECT_EQ(FindCommand(hb, WorkerCommand::Kind::kStop), nullptr);

  // The shards go to the live worker as new attempts.
  std::vector<GrantedShard> redo = AcquireShards(alive, 2);
  EXPECT_THAT(Ids(redo), ElementsAre(0, 1));
  EXPECT_EQ(redo[0].leased.attempt, 2u);
  // A started shard's expiry counted as a failure; an unstarted one's did not.
  bool truncated;
  std::map<uint64_t, std::vector<std::string>> errors;
  for (const ShardSnapshot& s : coordinator_->Shards(false, 100, &truncated)) {
    errors[s.shard.id] = s.errors;
  }
  ASSERT_EQ(errors[0].size(), 1u);
  EXPECT_THAT(errors[0][0], HasSubstr("expired"));
  EXPECT_THAT(errors[1], IsEmpty());
}

TEST_F(JobCoordinatorTest, ExpiryOfAStartedShardCanQuarantineIt) {
  CoordinatorOptions options;
  options.max_attempts = 1;
  Make(3, options);
  const SessionId w = Register(0);
  const GrantedShard g = AcquireShards(w, 1)[0];
  Heartbeat(w, {{Ref(g), 1, 1}});
  clock_.Advance(absl::Seconds(31));
  const uint64_t seq = coordinator_->Tick();
  EXPECT_GT(seq, 0u);
  Sync(seq);
  EXPECT_EQ(OnDisk().second.size(), 1u);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.quarantined_shards, 1u);
  EXPECT_EQ(p.state, JobState::kFailed);  // max_failed_shards = 0
  EXPECT_THAT(p.reason, HasSubstr("quarantined"));
}

TEST_F(JobCoordinatorTest, LeaseTimeoutIsExclusive) {
  const SessionId w = Register(0);
  AcquireShards(w, 1);
  clock_.Advance(absl::Seconds(30));
  coordinator_->Tick();
  EXPECT_EQ(coordinator_->Progress().leased_shards, 1u);
  clock_.Advance(absl::Milliseconds(1));
  coordinator_->Tick();
  EXPECT_EQ(coordinator_->Progress().leased_shards, 0u);
}

TEST_F(JobCoordinatorTest, ProgressReportsRatesAndEta) {
  const SessionId w = Register(0);
  coordinator_->Tick();
  std::vector<GrantedShard> got = AcquireShards(w, 2);
  CommitAndPublish(w, Ref(got[0]), 30);
  CommitAndPublish(w, Ref(got[1]), 70);
  clock_.Advance(absl::Seconds(10));
  coordinator_->Tick();
  JobProgress p = coordinator_->Progress();
  EXPECT_DOUBLE_EQ(p.shards_per_second, 0.2);
  EXPECT_DOUBLE_EQ(p.records_per_second, 10.0);
  ASSERT_TRUE(p.eta.has_value());
  EXPECT_EQ(*p.eta, absl::Seconds(15));  // 3 shards left at 0.2/s
  EXPECT_EQ(p.elapsed, absl::Seconds(10));
  EXPECT_EQ(p.live_sessions, 1u);
}

TEST_F(JobCoordinatorTest, HeartbeatsRenewTheLeasesTheyList) {
  const SessionId w = Register(0);
  std::vector<GrantedShard> got = AcquireShards(w, 2);
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Seconds(25));
    // Only the first lease is listed (prefetched, not started).
    Heartbeat(w, {{Ref(got[0]), 0, 0, /*started=*/false}});
    coordinator_->Tick();
  }
  // The unlisted lease expired although the session kept calling.
  EXPECT_EQ(coordinator_->Progress().leased_shards, 1u);
  EXPECT_EQ(Commit(w, Ref(got[0])).decision, CommitDecision::kGranted);
  const CommitResult lost = Commit(w, Ref(got[1]));
  EXPECT_EQ(lost.decision, CommitDecision::kLeaseLost);
  EXPECT_THAT(lost.reason, HasSubstr("expired"));
}

TEST_F(JobCoordinatorTest, HeartbeatCancelsLeasesThatAreNotCurrent) {
  const SessionId w0 = Register(0);
  const SessionId w1 = Register(1);
  const GrantedShard mine = AcquireShards(w0, 1)[0];
  const GrantedShard theirs = AcquireShards(w1, 1)[0];
  HeartbeatResult hb =
      Heartbeat(w0, {{Ref(mine), 3, 3}, {Ref(theirs), 1, 1}, {{4, 9}, 0, 0}});
  EXPECT_EQ(FindCommand(hb, WorkerCommand::Kind::kCancelShard, Ref(mine)), nullptr);
  const WorkerCommand* other =
      FindCommand(hb, WorkerCommand::Kind::kCancelShard, Ref(theirs));
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->reason, HasSubstr("belongs to another worker"));
  EXPECT_NE(FindCommand(hb, WorkerCommand::Kind::kCancelShard, LeaseRef{4, 9}), nullptr);
  EXPECT_EQ(hb.commands.size(), 2u);
}

TEST_F(JobCoordinatorTest, CommitOfAStaleLeaseIsLostNotAnError) {
  const SessionId w = Register(0);
  const GrantedShard g = AcquireShards(w, 1)[0];
  ASSERT_TRUE(coordinator_->Fail(w, Ref(g), "reader crashed").ok());
  CommitResult c = Commit(w, Ref(g));
  EXPECT_EQ(c.decision, CommitDecision::kLeaseLost);
  EXPECT_THAT(c.reason, HasSubstr("reader crashed"));
  absl::StatusOr<FailResult> again = coordinator_->Fail(w, Ref(g), "again");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobCoordinatorTest, FailuresAreAttributedAndRequeued) {
  const SessionId w = Register(3, /*pid=*/777);
  const GrantedShard g = AcquireShards(w, 1)[0];
  const uint64_t epoch = coordinator_->work_epoch();
  absl::StatusOr<FailResult> f = coordinator_->Fail(w, Ref(g), "bad record at line 7");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->quarantined);
  EXPECT_EQ(f->failures, 1u);
  EXPECT_EQ(f->durable_seq, 0u);
  EXPECT_GT(coordinator_->work_epoch(), epoch);
  bool truncated;
  std::vector<ShardSnapshot> snap = coordinator_->Shards(false, 10, &truncated);
  ASSERT_EQ(snap.size(), 1u);
  ASSERT_EQ(snap[0].errors.size(), 1u);
  EXPECT_THAT(snap[0].errors[0], HasSubstr("worker 3"));
  EXPECT_THAT(snap[0].errors[0], HasSubstr("pid 777"));
  EXPECT_THAT(snap[0].errors[0], HasSubstr("bad record at line 7"));
  const GrantedShard redo = AcquireShards(w, 1)[0];
  EXPECT_EQ(redo.leased.shard.id, g.leased.shard.id);
  EXPECT_EQ(redo.leased.attempt, 2u);
}

TEST_F(JobCoordinatorTest, QuarantinesBeyondMaxFailedShardsFailTheJob) {
  CoordinatorOptions options;
  options.max_attempts = 1;
  options.max_failed_shards = 1;
  Make(4, options);
  const SessionId w = Register(0);
  std::vector<GrantedShard> got = AcquireShards(w, 4);
  absl::StatusOr<FailResult> f0 = coordinator_->Fail(w, Ref(got[0]), "boom 0");
  ASSERT_TRUE(f0.ok());
  EXPECT_TRUE(f0->quarantined);
  EXPECT_GT(f0->durable_seq, 0u);
  Sync(f0->durable_seq);
  EXPECT_FALSE(coordinator_->ended());  // one is tolerated
  absl::StatusOr<FailResult> f1 = coordinator_->Fail(w, Ref(got[1]), "boom 1");
  ASSERT_TRUE(f1.ok());
  EXPECT_TRUE(f1->quarantined);
  Sync(f1->durable_seq);
  EXPECT_TRUE(coordinator_->ended());
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kFailed);
  EXPECT_THAT(p.reason, HasSubstr("2 shard(s) quarantined"));
  EXPECT_THAT(p.reason, HasSubstr("max-failed-shards=1"));
  AcquireResult end = Acquire(w, 1);
  EXPECT_EQ(end.outcome, AcquireOutcome::kEnd);
  EXPECT_FALSE(end.job_succeeded);
  EXPECT_EQ(end.end_reason, p.reason);
  HeartbeatResult hb = Heartbeat(w);
  const WorkerCommand* stop = FindCommand(hb, WorkerCommand::Kind::kStop);
  ASSERT_NE(stop, nullptr);
  EXPECT_FALSE(stop->job_finished);
  auto quarantines = OnDisk().second;
  ASSERT_EQ(quarantines.size(), 2u);
  EXPECT_THAT(quarantines[0].errors[0], HasSubstr("boom 0"));
  bool truncated;
  EXPECT_EQ(coordinator_->Shards(true, 10, &truncated).size(), 2u);
}

TEST_F(JobCoordinatorTest, QuarantinesWithinTheLimitStillSucceed) {
  CoordinatorOptions options;
  options.max_attempts = 1;
  options.max_failed_shards = 1;
  Make(2, options);
  const SessionId w = Register(0);
  std::vector<GrantedShard> got = AcquireShards(w, 2);
  ASSERT_TRUE(coordinator_->Fail(w, Ref(got[0]), "boom").ok());
  CommitAndPublish(w, Ref(got[1]));
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kSucceeded);
  EXPECT_THAT(p.reason, HasSubstr("1 quarantined"));
  AcquireResult end = Acquire(w, 1);
  EXPECT_EQ(end.outcome, AcquireOutcome::kEnd);
  EXPECT_TRUE(end.job_succeeded);
}

TEST_F(JobCoordinatorTest, StopFailsTheJob) {
  const SessionId w = Register(0);
  AcquireShards(w, 1);
  const uint64_t epoch = coordinator_->work_epoch();
  coordinator_->Stop("operator asked");
  EXPECT_TRUE(coordinator_->ended());
  EXPECT_GT(coordinator_->work_epoch(), epoch);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kFailed);
  EXPECT_EQ(p.reason, "stopped: operator asked");
  coordinator_->Stop("again");  // idempotent
  EXPECT_EQ(coordinator_->Progress().reason, "stopped: operator asked");
  AcquireResult end = Acquire(w, 1);
  EXPECT_EQ(end.outcome, AcquireOutcome::kEnd);
  EXPECT_FALSE(end.job_succeeded);
  EXPECT_EQ(end.end_reason, "stopped: operator asked");
  EXPECT_TRUE(coordinator_->AllSessionsToldEnd());
}

TEST_F(JobCoordinatorTest, StopAfterAllDataIsDoneKeepsTheSuccess) {
  Make(1);
  const SessionId w = Register(0);
  const GrantedShard g = AcquireShards(w, 1)[0];
  CommitAndPublish(w, Ref(g));
  coordinator_->Stop("shutting down");
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
}

TEST_F(JobCoordinatorTest, AllSessionsToldEndOnlyWhenEveryLiveWorkerKnows) {
  Make(1);
  const SessionId w0 = Register(0);
  const SessionId w1 = Register(1);
  const GrantedShard g = AcquireShards(w0, 1)[0];
  EXPECT_FALSE(coordinator_->AllSessionsToldEnd());
  CommitAndPublish(w0, Ref(g));  // w0 hears STOP on that heartbeat
  EXPECT_TRUE(coordinator_->ended());
  EXPECT_FALSE(coordinator_->AllSessionsToldEnd());
  EXPECT_EQ(Acquire(w1, 1).outcome, AcquireOutcome::kEnd);
  EXPECT_TRUE(coordinator_->AllSessionsToldEnd());
}

TEST_F(JobCoordinatorTest, SilentWorkersCountAsToldOnceTheirLeasesExpired) {
  Make(1);
  const SessionId w0 = Register(0);
  Register(1);  // never calls again
  const GrantedShard g = AcquireShards(w0, 1)[0];
  clock_.Advance(absl::Seconds(20));
  CommitAndPublish(w0, Ref(g));
  EXPECT_TRUE(coordinator_->ended());
  coordinator_->Tick();
  EXPECT_FALSE(coordinator_->AllSessionsToldEnd());
  clock_.Advance(absl::Seconds(11));
  coordinator_->Tick();
  EXPECT_TRUE(coordinator_->AllSessionsToldEnd());
}

TEST_F(JobCoordinatorTest, RestartRestoresProgressFromTheJournal) {
  CoordinatorOptions options;
  options.max_attempts = 1;
  options.max_failed_shards = 1;
  Make(5, options);
  {
    const SessionId w = Register(2);
    std::vector<GrantedShard> got = AcquireShards(w, 3);
    ASSERT_THAT(Ids(got), ElementsAre(0, 1, 2));
    ASSERT_EQ(Commit(w, Ref(got[0]), 11).decision, CommitDecision::kGranted);
    ASSERT_EQ(Commit(w, Ref(got[2]), 33).decision, CommitDecision::kGranted);
    Heartbeat(w, {}, {Ref(got[0]), Ref(got[2])});
    absl::StatusOr<FailResult> f = coordinator_->Fail(w, Ref(got[1]), "poison");
    ASSERT_TRUE(f.ok());
    Sync(f->durable_seq);
  }
  // The master dies and comes back on the same state dir.
  Make(5, options, true, /*restart=*/true);
  ASSERT_EQ(replayed_commits_.size(), 2u);
  ASSERT_EQ(replayed_quarantines_.size(), 1u);
  EXPECT_EQ(journal_->replay_stats().previous_opens, 1u);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.committed_shards, 2u);
  EXPECT_EQ(p.quarantined_shards, 1u);
  EXPECT_EQ(p.committed_records, 44u);
  EXPECT_EQ(p.pending_shards, 2u);
  EXPECT_EQ(p.state, JobState::kRunning);
  bool truncated;
  std::vector<ShardSnapshot> q = coordinator_->Shards(true, 10, &truncated);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_THAT(q[0].errors[0], HasSubstr("poison"));

  // Committed and quarantined shards are never handed out again.
  const SessionId w = Register(2);
  std::vector<GrantedShard> rest = AcquireShards(w, 10);
  EXPECT_THAT(Ids(rest), ElementsAre(3, 4));
  for (const GrantedShard& g : rest) CommitAndPublish(w, Ref(g));
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
  EXPECT_EQ(OnDisk().first.size(), 4u);

  // Restarting a finished job ends it at once.
  Make(5, options, true, /*restart=*/true);
  EXPECT_TRUE(coordinator_->ended());
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
  const SessionId late = Register(0);
  AcquireResult end = Acquire(late, 1);
  EXPECT_EQ(end.outcome, AcquireOutcome::kEnd);
  EXPECT_TRUE(end.job_succeeded);
}

TEST_F(JobCoordinatorTest, WorkerHoldingShardsGetsNoDuplicate) {
  Make(4);
  const SessionId slow = Register(0);
  const SessionId fast = Register(1);
  const GrantedShard straggler = AcquireShards(slow, 1)[0];
  Heartbeat(slow, {{Ref(straggler), 0, 0}});
  std::vector<LeaseRef> publish;
  for (int i = 0; i < 2; ++i) {
    const GrantedShard g = AcquireShards(fast, 1, publish)[0];
    Heartbeat(fast, {{Ref(g), 0, 0}});
    clock_.Advance(absl::Seconds(1));
    ASSERT_EQ(Commit(fast, Ref(g)).decision, CommitDecision::kGranted);
    publish = {Ref(g)};
  }
  Heartbeat(slow, {{Ref(straggler), 1, 1}});
  const GrantedShard last = AcquireShards(fast, 1, publish)[0];  // the last fresh shard
  EXPECT_EQ(last.leased.shard.id, 3u);
  // fast still holds shard 3: it gets no duplicate of the straggler.
  EXPECT_EQ(Acquire(fast, 1).outcome, AcquireOutcome::kWait);
  // Once it has nothing left, it does.
  CommitAndPublish(fast, Ref(last));
  AcquireResult r = Acquire(fast, 1);
  ASSERT_EQ(r.outcome, AcquireOutcome::kShards);
  EXPECT_EQ(r.shards[0].leased.shard.id, straggler.leased.shard.id);
  EXPECT_TRUE(r.shards[0].leased.speculative);
}

TEST_F(JobCoordinatorTest, RestoringTheSameCommitTwiceCountsItOnce) {
  Make(3, {}, /*with_journal=*/false);
  coordinator_->RestoreCommitted({1, 1, 10, 0});
  coordinator_->RestoreCommitted({1, 2, 10, 0});
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.committed_shards, 1u);
  EXPECT_EQ(p.committed_records, 10u);
}

TEST_F(JobCoordinatorTest, WorkersReconnectingAfterARestartKeepTheirShards) {
  Make(5);
  // A fresh master: workers report what they held under the previous one.
  const SessionId a = Register(0, 100, {{{2, 3}, false, 0}, {{4, 1}, true, 7}});
  const std::vector<SessionInfo> sessions = coordinator_->Sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].leases_held, 1u);
  EXPECT_EQ(sessions[0].shards_committed, 1u);
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.committed_shards, 1u);
  EXPECT_EQ(p.committed_records, 7u);
  auto commits = OnDisk().first;
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].shard_id, 4u);
  EXPECT_EQ(commits[0].attempt, 1u);
  // Another worker claiming the same shard is refused.
  absl::StatusOr<Registration> b = coordinator_->Register(
      {"worker", 1, 0, "host-b", 5}, {{{2, 3}, false, 0}, {{4, 1}, true, 7}});
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(b->reclaimed, IsEmpty());
  EXPECT_THAT(b->refused, ElementsAre(LeaseRef{2, 3}));  // 4 is simply done
  EXPECT_THAT(Ids(AcquireShards(b->session, 10)), ElementsAre(0, 1, 3));
  // The reclaiming worker finishes its shard under its old attempt.
  CommitAndPublish(a, {2, 3});
  EXPECT_EQ(coordinator_->Progress().committed_shards, 2u);
}

TEST_F(JobCoordinatorTest, SameWorkerReconnectingKeepsItsShards) {
  const SessionId first = Register(0, /*pid=*/100);
  std::vector<GrantedShard> got = AcquireShards(first, 2);
  Heartbeat(first, {{Ref(got[0]), 1, 1}});
  ASSERT_EQ(Commit(first, Ref(got[1]), 9).decision, CommitDecision::kGranted);
  // The connection broke after shard 1 was published but before it was
  // confirmed; the same process registers again and reports both.
  absl::StatusOr<Registration> reg = coordinator_->Register(
      {"worker", 0, 0, "host-a", 100}, {{Ref(got[0]), false, 0}, {Ref(got[1]), true, 9}});
  ASSERT_TRUE(reg.ok());
  Sync(reg->durable_seq);
  EXPECT_THAT(reg->reclaimed, ElementsAre(Ref(got[0])));
  EXPECT_THAT(reg->refused, IsEmpty());
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.committed_shards, 1u);
  EXPECT_EQ(p.committed_records, 9u);
  EXPECT_EQ(p.leased_shards, 1u);
  EXPECT_EQ(OnDisk().first.size(), 1u);
  // Shard 0 is not handed out again while the worker still has it.
  EXPECT_THAT(Ids(AcquireShards(Register(1), 10)), ElementsAre(2, 3, 4));
  CommitAndPublish(reg->session, Ref(got[0]));
  EXPECT_EQ(coordinator_->Progress().committed_shards, 2u);
}

TEST_F(JobCoordinatorTest, RegistrationReportsReclaimedAndRefusedLeases) {
  Make(5);
  absl::StatusOr<Registration> reg = coordinator_->Register(
      {"worker", 0, 0, "", 1}, {{{1, 2}, false, 0}, {{9, 1}, false, 0}});
  ASSERT_TRUE(reg.ok());
  EXPECT_THAT(reg->reclaimed, ElementsAre(LeaseRef{1, 2}));
  EXPECT_THAT(reg->refused, ElementsAre(LeaseRef{9, 1}));
  EXPECT_EQ(reg->durable_seq, 0u);
}

TEST_F(JobCoordinatorTest, ConcurrentWorkersCommitEveryShardExactlyOnce) {
  constexpr uint64_t kShards = 300;
  constexpr int kWorkers = 4;
  Make(kShards);
  std::vector<SessionId> sessions;
  for (int w = 0; w < kWorkers; ++w) sessions.push_back(Register(w));
  std::vector<int> errors(kWorkers, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      const SessionId me = sessions[w];
      std::vector<LeaseRef> publish;
      bool ended = false;
      for (int round = 0; round < 200'000 && !ended; ++round) {
        absl::StatusOr<AcquireResult> r =
            coordinator_->Acquire(me, 1 + round % 3, publish, {});
        if (!r.ok() || !journal_->Sync(r->durable_seq).ok()) {
          ++errors[w];
          return;
        }
        publish.clear();
        if (r->outcome == AcquireOutcome::kEnd) {
          ended = r->job_succeeded;
          if (!ended) ++errors[w];
          break;
        }
        if (r->outcome == AcquireOutcome::kWait) {
          std::this_thread::yield();
          continue;
        }
        for (const GrantedShard& g : r->shards) {
          if (round % 7 == 0) clock_.Advance(absl::Milliseconds(1));
          absl::StatusOr<HeartbeatResult> hb =
              coordinator_->Heartbeat(me, {{Ref(g), 1, 1}}, {});
          if (!hb.ok()) {
            ++errors[w];
            return;
          }
          absl::StatusOr<CommitCallResult> c =
              coordinator_->Commit(me, {{Ref(g), g.leased.shard.id}}, {});
          if (!c.ok() || c->results.size() != 1) {
            ++errors[w];
            return;
          }
          if (c->results[0].decision == CommitDecision::kGranted)
            publish.push_back(Ref(g));
        }
      }
      if (!ended) ++errors[w];
    });
  }
  for (std::thread& t : threads) t.join();
  for (int w = 0; w < kWorkers; ++w) EXPECT_EQ(errors[w], 0) << "worker " << w;
  JobProgress p = coordinator_->Progress();
  EXPECT_EQ(p.state, JobState::kSucceeded);
  EXPECT_EQ(p.committed_shards, kShards);
  auto [commits, quarantines] = OnDisk();
  EXPECT_TRUE(quarantines.empty());
  ASSERT_EQ(commits.size(), kShards);
  std::set<uint64_t> ids;
  for (const CommitRecord& c : commits) {
    EXPECT_EQ(c.records, c.shard_id);
    ids.insert(c.shard_id);
  }
  EXPECT_EQ(ids.size(), kShards);
}

class SpeculationTest : public JobCoordinatorTest {
 protected:
  void SetUp() override { Prepare({}); }

  // Three shards: `slow_` holds shard 0 with 1% done after 2s while `fast_`
  // did shards 1 and 2 in 1s each (the second still to be confirmed in
  // `publish_`), so `fast_` is idle with a straggler around.
  void Prepare(CoordinatorOptions options) {
    Make(3, options);
    slow_ = Register(0);
    fast_ = Register(1);
    slow_lease_ = Ref(AcquireShards(slow_, 1)[0]);
    ASSERT_EQ(slow_lease_.shard_id, 0u);
    Heartbeat(slow_, {{slow_lease_, 0, 0}});
    std::vector<LeaseRef> publish;
    for (uint64_t want : {1, 2}) {
      std::vector<GrantedShard> got = AcquireShards(fast_, 1, publish);
      ASSERT_EQ(got.size(), 1u);
      ASSERT_EQ(got[0].leased.shard.id, want);
      Heartbeat(fast_, {{Ref(got[0]), 0, 0}});
      clock_.Advance(absl::Seconds(1));
      ASSERT_EQ(Commit(fast_, Ref(got[0])).decision, CommitDecision::kGranted);
      publish = {Ref(got[0])};
    }
    Heartbeat(slow_, {{slow_lease_, 1, 1}});
    publish_ = publish;
  }

  SessionId slow_ = 0, fast_ = 0;
  LeaseRef slow_lease_;
  std::vector<LeaseRef> publish_;
};

TEST_F(SpeculationTest, IdleWorkerGetsADuplicateAndTheFirstConfirmWins) {
  AcquireResult r = Acquire(fast_, 4, publish_);
  ASSERT_EQ(r.outcome, AcquireOutcome::kShards);
  ASSERT_EQ(r.shards.size(), 1u);
  const GrantedShard dup = r.shards[0];
  EXPECT_EQ(dup.leased.shard.id, 0u);
  EXPECT_EQ(dup.leased.attempt, 2u);
  EXPECT_TRUE(dup.leased.speculative);
  EXPECT_EQ(dup.output_name, enumerator_->OutputName(0));
  EXPECT_EQ(coordinator_->Progress().speculative_leases, 1u);
  EXPECT_EQ(coordinator_->Progress().committed_shards, 2u);
  ExpectCountersConsistent();

  // The duplicate finishes first.
  Heartbeat(fast_, {{Ref(dup), 0, 0}});
  clock_.Advance(absl::Seconds(1));
  CommitAndPublish(fast_, Ref(dup));
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
  EXPECT_EQ(coordinator_->Progress().speculative_leases, 0u);

  // The slow worker is told to drop its attempt, and cannot commit it.
  HeartbeatResult hb = Heartbeat(slow_, {{slow_lease_, 2, 2}});
  const WorkerCommand* cancel =
      FindCommand(hb, WorkerCommand::Kind::kCancelShard, slow_lease_);
  ASSERT_NE(cancel, nullptr);
  EXPECT_THAT(cancel->reason, HasSubstr("committed"));
  // Reported once even though both the revocation and the progress report name it.
  EXPECT_EQ(std::count_if(hb.commands.begin(), hb.commands.end(),
                          [&](const WorkerCommand& c) {
                            return c.kind == WorkerCommand::Kind::kCancelShard;
                          }),
            1);
  EXPECT_NE(FindCommand(hb, WorkerCommand::Kind::kStop), nullptr);
  CommitResult late = Commit(slow_, slow_lease_);
  EXPECT_EQ(late.decision, CommitDecision::kAlreadyCommitted);

  auto commits = OnDisk().first;
  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[2].shard_id, 0u);
  EXPECT_EQ(commits[2].attempt, 2u);
  EXPECT_EQ(commits[2].task_index, 1u);
}

TEST_F(SpeculationTest, OriginalFinishingFirstCancelsTheDuplicate) {
  const GrantedShard dup = AcquireShards(fast_, 1, publish_)[0];
  ASSERT_TRUE(dup.leased.speculative);
  CommitAndPublish(slow_, slow_lease_);
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
  HeartbeatResult hb = Heartbeat(fast_);
  const WorkerCommand* cancel =
      FindCommand(hb, WorkerCommand::Kind::kCancelShard, Ref(dup));
  ASSERT_NE(cancel, nullptr);
  EXPECT_THAT(cancel->reason, HasSubstr("committed first"));
  // Commands are delivered once.
  EXPECT_EQ(FindCommand(Heartbeat(fast_), WorkerCommand::Kind::kCancelShard), nullptr);
  EXPECT_EQ(Commit(fast_, Ref(dup)).decision, CommitDecision::kAlreadyCommitted);
  auto commits = OnDisk().first;
  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[2].attempt, 1u);
  EXPECT_EQ(commits[2].task_index, 0u);
}

TEST_F(SpeculationTest, LoserOfTheCommitRaceIsTold) {
  const GrantedShard dup = AcquireShards(fast_, 1, publish_)[0];
  ASSERT_EQ(Commit(fast_, Ref(dup)).decision, CommitDecision::kGranted);
  CommitResult late = Commit(slow_, slow_lease_);
  EXPECT_EQ(late.decision, CommitDecision::kAlreadyCommitted);
  EXPECT_THAT(late.reason, HasSubstr("holds the commit grant"));
  Heartbeat(fast_, {}, {Ref(dup)});
  EXPECT_EQ(coordinator_->Progress().state, JobState::kSucceeded);
  EXPECT_EQ(OnDisk().first.size(), 3u);
}

TEST_F(SpeculationTest, NoDuplicateWhenSpeculationIsOff) {
  CoordinatorOptions options;
  options.speculation = false;
  Prepare(options);
  AcquireResult r = Acquire(fast_, 4, publish_);
  EXPECT_EQ(r.outcome, AcquireOutcome::kWait);
  EXPECT_EQ(coordinator_->Progress().speculative_leases, 0u);
  EXPECT_EQ(coordinator_->Progress().committed_shards, 2u);
}

TEST_F(SpeculationTest, NoDuplicateOfAShardThatIsAboutAsFastAsUsual) {
  CoordinatorOptions options;
  options.speculation_multiplier = 1000;
  Prepare(options);
  EXPECT_EQ(Acquire(fast_, 4, publish_).outcome, AcquireOutcome::kWait);
}

TEST_F(SpeculationTest, NoDuplicateForAWorkerThatStillHoldsShards) {
  // Confirm without acquiring: the worker holds nothing, then takes a lease
  // that it keeps.
  Heartbeat(fast_, {}, publish_);
  const SessionId third = Register(2);
  AcquireResult r = Acquire(third, 1);
  ASSERT_EQ(r.outcome, AcquireOutcome::kShards);
  ASSERT_TRUE(r.shards[0].leased.speculative);
  // `third` now holds a (speculative) lease: no second duplicate for it.
  AcquireResult again = Acquire(third, 1);
  EXPECT_EQ(again.outcome, AcquireOutcome::kWait);
  // And none for fast_ either: the straggler is already duplicated.
  EXPECT_EQ(Acquire(fast_, 1).outcome, AcquireOutcome::kWait);
}

// Work stealing: `holder_` runs shard 0 and has shard 1 prefetched, while
// `idle_` has done shards 2 and 3 in 1s each and has nothing left to do.
class CoordinatorStealTest : public JobCoordinatorTest {
 protected:
  void SetUp() override {
    Make(4);
    holder_ = Register(0);
    idle_ = Register(1);
    std::vector<GrantedShard> held = AcquireShards(holder_, 2);
    ASSERT_THAT(Ids(held), ElementsAre(0, 1));
    running_ = Ref(held[0]);
    prefetched_ = Ref(held[1]);
    Heartbeat(holder_, {{running_, 0, 0}});
    for (uint64_t want : {2, 3}) {
      std::vector<GrantedShard> got = AcquireShards(idle_, 1, publish_);
      ASSERT_THAT(Ids(got), ElementsAre(want));
      Heartbeat(idle_, {{Ref(got[0]), 0, 0}});
      clock_.Advance(absl::Seconds(1));
      ASSERT_EQ(Commit(idle_, Ref(got[0])).decision, CommitDecision::kGranted);
      publish_ = {Ref(got[0])};
    }
  }

  SessionId holder_ = 0, idle_ = 0;
  LeaseRef running_, prefetched_;
  std::vector<LeaseRef> publish_;
};

TEST_F(CoordinatorStealTest, TheHolderHearsOfTheStealInItsNextCommitAnswer) {
  std::vector<GrantedShard> stolen = AcquireShards(idle_, 1, publish_);
  ASSERT_THAT(Ids(stolen), ElementsAre(1));
  EXPECT_EQ(stolen[0].leased.attempt, 2u);
  EXPECT_FALSE(stolen[0].leased.speculative);

  absl::StatusOr<CommitCallResult> done =
      coordinator_->Commit(holder_, {{running_, kUnits}}, {});
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->results.size(), 1u);
  EXPECT_EQ(done->results[0].decision, CommitDecision::kGranted);
  ASSERT_EQ(done->commands.size(), 1u);
  EXPECT_EQ(done->commands[0].kind, WorkerCommand::Kind::kCancelShard);
  EXPECT_EQ(done->commands[0].lease, prefetched_);
  // Delivered once: the next heartbeat does not repeat it.
  EXPECT_EQ(FindCommand(Heartbeat(holder_), WorkerCommand::Kind::kCancelShard), nullptr);
  EXPECT_EQ(Commit(holder_, prefetched_).decision, CommitDecision::kLeaseLost);
}

TEST_F(CoordinatorStealTest, TheHolderHearsOfTheStealInItsNextAcquireAnswer) {
  ASSERT_THAT(Ids(AcquireShards(idle_, 1, publish_)), ElementsAre(1));
  absl::StatusOr<AcquireResult> r = coordinator_->Acquire(holder_, 1, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, AcquireOutcome::kWait);
  ASSERT_EQ(r->commands.size(), 1u);
  EXPECT_EQ(r->commands[0].lease, prefetched_);
}

TEST_F(CoordinatorStealTest, TheHolderHearsOfTheStealWhenItsRunningShardFails) {
  ASSERT_THAT(Ids(AcquireShards(idle_, 1, publish_)), ElementsAre(1));
  absl::StatusOr<FailResult> failed =
      coordinator_->Fail(holder_, running_, "model crashed");
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->commands.size(), 1u);
  EXPECT_EQ(failed->commands[0].lease, prefetched_);
}

TEST_F(CoordinatorStealTest, AnAcquireListingALeaseThatIsGoneIsToldToDropIt) {
  ASSERT_THAT(Ids(AcquireShards(idle_, 1, publish_)), ElementsAre(1));
  // The queued cancellation went out with a heartbeat whose answer was lost.
  ASSERT_NE(FindCommand(Heartbeat(holder_), WorkerCommand::Kind::kCancelShard), nullptr);
  ProgressReport still_held{prefetched_, 0, 0};
  still_held.started = false;
  absl::StatusOr<AcquireResult> r =
      coordinator_->Acquire(holder_, 1, {}, {{running_, 0, 0}, still_held});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->commands.size(), 1u);
  EXPECT_EQ(r->commands[0].kind, WorkerCommand::Kind::kCancelShard);
  EXPECT_EQ(r->commands[0].lease, prefetched_);
}

TEST_F(CoordinatorStealTest, NothingIsStolenWhileTheHolderIsAboutToStartIt) {
  // Shard 0 is nearly done: its holder will start shard 1 sooner than a
  // median shard time, so taking it would gain nothing.
  Heartbeat(holder_, {{running_, kUnits - 1, kUnits - 1}});
  EXPECT_EQ(Acquire(idle_, 1, publish_).outcome, AcquireOutcome::kWait);
}

}  // namespace
}  // namespace elasticbatch::aimaster
