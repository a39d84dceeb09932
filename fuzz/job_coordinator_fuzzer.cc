// The master's request handling: random sequences of Register, Acquire,
// Heartbeat, Commit and Fail calls from up to four workers (stale sessions,
// stale and made-up leases included), clock jumps and Ticks, against a
// JobCoordinator on a fake clock (no journal: every commit is durable at once).
// Then a well-behaved worker drains the job.
// Invariants, checked after every call:
//  * no shard has two leases holding a commit grant at once;
//  * a committed shard is never handed out again, never granted a commit
//    again, and holds no lease;
//  * committed + quarantined + leased + pending == total;
// and at the end: the job ended, every shard committed or quarantined.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/shard_enumerator.h"
#include "fuzz/fuzz_check.h"

namespace elasticbatch::aimaster {
namespace {

// FUZZ_TRACE=1 in the environment prints every call (to read a crash).
const bool kTrace = std::getenv("FUZZ_TRACE") != nullptr;
#define TRACE(...) \
  if (kTrace) std::fprintf(stderr, __VA_ARGS__)

constexpr uint64_t kUnits = 10;  // records per shard
constexpr uint32_t kWorkers = 4;

struct LeaseLess {
  bool operator()(const LeaseRef& a, const LeaseRef& b) const {
    return a.shard_id != b.shard_id ? a.shard_id < b.shard_id : a.attempt < b.attempt;
  }
};

struct Worker {
  std::optional<SessionId> session;
  std::vector<SessionId> old_sessions;
  // Leases this worker was given, and whether it holds a commit grant.
  std::map<LeaseRef, bool, LeaseLess> held;
};

class Harness {
 public:
  Harness(fuzz::FuzzInput& in, const ShardEnumerator* shards, CoordinatorOptions options)
      : in_(in),
        total_(shards->shard_count()),
        coordinator_(&clock_, shards, nullptr, options) {}

  void Run() {
    for (int step = 0; step < 200 && !in_.empty(); ++step) {
      const uint8_t op = in_.Byte();
      Worker& w = workers_[op >> 5 & (kWorkers - 1)];
      const uint32_t index = op >> 5 & (kWorkers - 1);
      TRACE("[worker %u] ", index);
      switch (op & 7) {
        case 0:
          Register(w, index);
          break;
        case 1:
        case 2:
          Acquire(w);
          break;
        case 3:
          Heartbeat(w);
          break;
        case 4:
          Commit(w);
          break;
        case 5:
          Fail(w);
          break;
        default:
          clock_.Advance(absl::Milliseconds(in_.Range(0, 255) * 250));
          TRACE("advance, tick\n");
          coordinator_.Tick();
          break;
      }
      CheckTable();
    }
    Drain();
  }

 private:
  // The session to call with: mostly the current one, sometimes a stale one.
  SessionId PickSession(Worker& w) {
    if (!w.old_sessions.empty() && (in_.Byte() & 7) == 0) {
      return w.old_sessions[in_.Range(0, w.old_sessions.size() - 1)];
    }
    return w.session.value_or(in_.U32());
  }

  // Some of the worker's leases, and now and then one it never had.
  std::vector<LeaseRef> PickLeases(const Worker& w, bool granted_only) {
    std::vector<LeaseRef> out;
    const uint8_t mask = in_.Byte();
    int i = 0;
    for (const auto& [lease, granted] : w.held) {
      if ((!granted_only || granted) && (mask >> (i++ % 8) & 1)) out.push_back(lease);
    }
    if ((mask & 0xc0) == 0xc0) {
      out.push_back({in_.Range(0, total_ + 1), static_cast<uint32_t>(in_.Range(0, 4))});
    }
    return out;
  }

  std::vector<ProgressReport> Progress(const Worker& w) {
    std::vector<ProgressReport> out;
    for (const LeaseRef& lease : PickLeases(w, false)) {
      ProgressReport p;
      p.lease = lease;
      p.records_done = in_.Range(0, kUnits);
      p.units_done = p.records_done;
      p.started = in_.Bool();
      out.push_back(p);
    }
    return out;
  }

  std::vector<CommitRequest> Commits(const Worker& w) {
    std::vector<CommitRequest> out;
    for (const LeaseRef& lease : PickLeases(w, false)) out.push_back({lease, kUnits});
    return out;
  }

  void Register(Worker& w, uint32_t index) {
    WorkerIdentity who;
    who.task_index = in_.Bool() ? index : index + 100 * in_.Range(0, 2);
    who.attempt = in_.Range(0, 2);
    who.host = "host";
    std::vector<HeldLease> held;
    for (const LeaseRef& lease : PickLeases(w, false)) {
      HeldLease h;
      h.lease = lease;
      h.started = in_.Bool();
      h.published = w.held[lease] && in_.Bool();
      h.records = kUnits;
      held.push_back(h);
    }
    std::vector<LeaseRef> published;
    for (const HeldLease& h : held) {
      if (h.published) published.push_back(h.lease);
    }
    const uint64_t before = CommittedCount();
    absl::StatusOr<Registration> reg = coordinator_.Register(who, held);
    LearnCommitted(w, published, before);
    TRACE("register index %u attempt %u holding %zu: %s\n", who.task_index, who.attempt,
          held.size(), reg.ok() ? "ok" : reg.status().ToString().c_str());
    if (!reg.ok()) return;
    if (w.session) w.old_sessions.push_back(*w.session);
    w.session = reg->session;
    std::map<LeaseRef, bool, LeaseLess> kept;
    for (const LeaseRef& lease : reg->reclaimed) kept[lease] = w.held[lease];
    w.held = kept;
  }

  void Acquire(Worker& w) {
    const SessionId session = PickSession(w);
    const std::vector<LeaseRef> published = PickLeases(w, true);
    const uint32_t max = in_.Range(0, 4);
    const std::vector<ProgressReport> progress = Progress(w);
    const std::vector<CommitRequest> commits = Commits(w);
    const uint64_t before = CommittedCount();
    absl::StatusOr<AcquireResult> r =
        coordinator_.Acquire(session, max, published, progress, commits);
    if (session == w.session) LearnCommitted(w, published, before);
    TRACE("acquire %u published %zu progress %zu commits %zu: %s\n", max,
          published.size(), progress.size(), commits.size(),
          r.ok() ? "ok" : r.status().ToString().c_str());
    for (const LeaseRef& l : published) {
      TRACE("  published %llu/%u\n", (unsigned long long)l.shard_id, l.attempt);
    }
    if (!r.ok()) return;
    for (const GrantedShard& g : r->shards) {
      TRACE("  got %llu/%u%s\n", (unsigned long long)g.leased.shard.id, g.leased.attempt,
            g.leased.speculative ? " speculative" : "");
    }
    Observe(w, r->commit_results, r->confirmed, r->commands);
    for (const GrantedShard& g : r->shards) {
      const uint64_t id = g.leased.shard.id;
      FUZZ_CHECK(id < total_, "shard %llu of %llu handed out",
                 static_cast<unsigned long long>(id),
                 static_cast<unsigned long long>(total_));
      FUZZ_CHECK(!committed_.count(id), "committed shard %llu handed out again",
                 static_cast<unsigned long long>(id));
      if (session == w.session) w.held[{id, g.leased.attempt}] = false;
    }
  }

  void Heartbeat(Worker& w) {
    const SessionId session = PickSession(w);
    const std::vector<ProgressReport> progress = Progress(w);
    const std::vector<LeaseRef> published = PickLeases(w, true);
    const uint64_t before = CommittedCount();
    absl::StatusOr<HeartbeatResult> r =
        coordinator_.Heartbeat(session, progress, published);
    if (session == w.session) LearnCommitted(w, published, before);
    if (r.ok()) Observe(w, {}, r->confirmed, r->commands);
  }

  void Commit(Worker& w) {
    const SessionId session = PickSession(w);
    const std::vector<CommitRequest> commits = Commits(w);
    const std::vector<LeaseRef> published = PickLeases(w, true);
    const uint64_t before = CommittedCount();
    absl::StatusOr<CommitCallResult> r = coordinator_.Commit(session, commits, published);
    if (session == w.session) LearnCommitted(w, published, before);
    TRACE("commit %zu published %zu: %s\n", commits.size(), published.size(),
          r.ok() ? "ok" : r.status().ToString().c_str());
    if (r.ok()) Observe(w, r->results, r->confirmed, r->commands);
  }

  void Fail(Worker& w) {
    std::vector<LeaseRef> leases = PickLeases(w, false);
    if (leases.empty()) return;
    absl::StatusOr<FailResult> r = coordinator_.Fail(PickSession(w), leases[0], "error");
    TRACE("fail %llu/%u: %s\n", (unsigned long long)leases[0].shard_id, leases[0].attempt,
          r.ok() ? "ok" : r.status().ToString().c_str());
    if (r.ok()) {
      w.held.erase(leases[0]);
      Observe(w, {}, {}, r->commands);
    }
  }

  void Observe(Worker& w, const std::vector<CommitResult>& results,
               const std::vector<LeaseRef>& confirmed,
               const std::vector<WorkerCommand>& commands) {
    for (const LeaseRef& lease : confirmed) {
      // Acknowledged, not necessarily committed (a stale lease's is too).
      TRACE("  confirmed %llu/%u\n", (unsigned long long)lease.shard_id, lease.attempt);
    }
    for (const CommitResult& c : results) {
      const uint64_t id = c.lease.shard_id;
      TRACE("  commit %llu/%u: %d %s\n", (unsigned long long)id, c.lease.attempt,
            static_cast<int>(c.decision), c.reason.c_str());
      if (c.decision == CommitDecision::kGranted) {
        FUZZ_CHECK(!committed_.count(id), "commit of committed shard %llu granted again",
                   static_cast<unsigned long long>(id));
        if (w.held.count(c.lease)) w.held[c.lease] = true;
      } else {
        if (c.decision == CommitDecision::kAlreadyCommitted) committed_.insert(id);
      }
    }
    for (const WorkerCommand& c : commands) {
      TRACE("  command %d %llu/%u %s\n", static_cast<int>(c.kind),
            (unsigned long long)c.lease.shard_id, c.lease.attempt, c.reason.c_str());
      if (c.kind == WorkerCommand::Kind::kCancelShard) w.held.erase(c.lease);
    }
  }

  // A call that confirmed `published` committed as many shards as the count
  // grew by: when that is all the granted ones among them, they are known.
  void LearnCommitted(const Worker& w, const std::vector<LeaseRef>& published,
                      uint64_t committed_before) {
    std::set<uint64_t> candidates;
    for (const LeaseRef& lease : published) {
      auto it = w.held.find(lease);
      if (it != w.held.end() && it->second && !committed_.count(lease.shard_id)) {
        candidates.insert(lease.shard_id);
      }
    }
    const uint64_t grew = coordinator_.Progress().committed_shards - committed_before;
    if (grew == candidates.size())
      committed_.insert(candidates.begin(), candidates.end());
  }

  uint64_t CommittedCount() const { return coordinator_.Progress().committed_shards; }

  void CheckTable() {
    bool truncated = false;
    std::map<uint64_t, int> grants;
    for (const ShardSnapshot& s : coordinator_.Shards(false, 1 << 20, &truncated)) {
      const uint64_t id = s.shard.id;
      FUZZ_CHECK(!committed_.count(id) || s.leases.empty(),
                 "committed shard %llu still leased",
                 static_cast<unsigned long long>(id));
      for (const ShardSnapshot::LeaseView& l : s.leases) grants[id] += l.commit_granted;
      FUZZ_CHECK(grants[id] <= 1, "shard %llu has %d commit grants",
                 static_cast<unsigned long long>(id), grants[id]);
    }
    const JobProgress p = coordinator_.Progress();
    FUZZ_CHECK(
        p.committed_shards + p.quarantined_shards + p.leased_shards + p.pending_shards ==
            total_,
        "committed %llu + quarantined %llu + leased %llu + pending %llu != %llu",
        static_cast<unsigned long long>(p.committed_shards),
        static_cast<unsigned long long>(p.quarantined_shards),
        static_cast<unsigned long long>(p.leased_shards),
        static_cast<unsigned long long>(p.pending_shards),
        static_cast<unsigned long long>(total_));
    FUZZ_CHECK(committed_.size() <= p.committed_shards,
               "%zu seen committed, %llu counted", committed_.size(),
               static_cast<unsigned long long>(p.committed_shards));
  }

  // Every other worker goes silent; a new one does the rest of the job.
  void Drain() {
    clock_.Advance(absl::Minutes(10));
    coordinator_.Tick();
    CheckTable();
    WorkerIdentity who;
    who.task_index = 1000;
    absl::StatusOr<Registration> reg = coordinator_.Register(who, {});
    if (!reg.ok()) {
      FUZZ_CHECK(coordinator_.ended(), "register: %s", reg.status().ToString().c_str());
      return;
    }
    Worker w;
    w.session = reg->session;
    bool ended = false;
    for (uint64_t step = 0; step < 20 * total_ + 50 && !ended; ++step) {
      std::vector<LeaseRef> published;
      std::vector<CommitRequest> commits;
      std::vector<ProgressReport> progress;
      for (const auto& [lease, granted] : w.held) {
        if (granted) {
          published.push_back(lease);
        } else {
          commits.push_back({lease, kUnits});
        }
        progress.push_back({lease, kUnits, kUnits, true});
      }
      const uint64_t before = CommittedCount();
      absl::StatusOr<AcquireResult> r =
          coordinator_.Acquire(*w.session, 4, published, progress, commits);
      FUZZ_CHECK(r.ok(), "drain: %s", r.status().ToString().c_str());
      LearnCommitted(w, published, before);
      for (const LeaseRef& lease : published) w.held.erase(lease);
      Observe(w, r->commit_results, r->confirmed, r->commands);
      for (const CommitResult& c : r->commit_results) {
        if (c.decision != CommitDecision::kGranted) w.held.erase(c.lease);
      }
      for (const GrantedShard& g : r->shards) {
        FUZZ_CHECK(!committed_.count(g.leased.shard.id),
                   "committed shard %llu handed out again",
                   static_cast<unsigned long long>(g.leased.shard.id));
        w.held[{g.leased.shard.id, g.leased.attempt}] = false;
      }
      for (const WorkerCommand& c : r->commands) {
        if (c.kind == WorkerCommand::Kind::kStop) ended = true;
      }
      if (r->outcome == AcquireOutcome::kEnd) ended = true;
      if (r->outcome == AcquireOutcome::kWait && w.held.empty()) {
        clock_.Advance(std::min(std::max(r->retry_after, absl::Milliseconds(100)),
                                absl::Seconds(5)));
        coordinator_.Tick();
      }
      CheckTable();
    }
    const JobProgress p = coordinator_.Progress();
    FUZZ_CHECK(ended && coordinator_.ended(), "the job did not end: %llu of %llu done",
               static_cast<unsigned long long>(p.committed_shards + p.quarantined_shards),
               static_cast<unsigned long long>(total_));
    FUZZ_CHECK(p.committed_shards + p.quarantined_shards == total_,
               "ended with %llu committed, %llu quarantined of %llu",
               static_cast<unsigned long long>(p.committed_shards),
               static_cast<unsigned long long>(p.quarantined_shards),
               static_cast<unsigned long long>(total_));
  }

  fuzz::FuzzInput& in_;
  const uint64_t total_;
  FakeClock clock_;
  JobCoordinator coordinator_;
  Worker workers_[kWorkers];
  std::set<uint64_t> committed_;
};

}  // namespace
}  // namespace elasticbatch::aimaster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace elasticbatch::aimaster;
  elasticbatch::fuzz::FuzzInput in(data, size);
  const uint64_t shards = in.Range(1, 12);
  absl::StatusOr<ShardEnumerator> e =
      ShardEnumerator::ForRecords(shards * kUnits, kUnits);
  FUZZ_CHECK(e.ok(), "%s", e.status().ToString().c_str());
  CoordinatorOptions options;
  options.max_attempts = in.Range(1, 4);
  options.max_failed_shards = shards;  // the job ends only once all is done
  options.speculation = in.Bool();
  options.speculation_multiplier = 1.0 + in.Range(0, 4);
  Harness harness(in, &*e, options);
  harness.Run();
  return 0;
}
