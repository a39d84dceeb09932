// core_bench: the coordinator's own cost per shard, without gRPC.
//
//   BM_Cycle/<pending>/<batch>: one worker's acquire(batch) + commit request +
//     publish confirmation of every shard, through JobCoordinator, with a real
//     journal (appends only; syncing is the durability thread's job). The
//     time per iteration divided by the batch is the cost per shard; it must
//     not grow with the number of pending shards (1k, 1M, 10M).
//   BM_IdleAcquire/<workers>: an idle worker's acquire near the end of a job,
//     when nothing is pending and `workers` busy workers each run one shard
//     and hold three prefetched: the speculation and handover decisions are
//     made (and decline) on every such call, so their cost is the call's.
//   BM_JournalAppend: one commit record appended (encoding and CRC).
//   BM_Describe: shard id -> (source, range) over 100k files (prefix sums).
//
// Run: ./build/bin/core_bench  (Google Benchmark flags apply).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"

namespace elasticbatch::aimaster {
namespace {

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        std::filesystem::temp_directory_path().string() + "/ebbench-XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One job of `pending` shards with one registered worker.
struct Job {
  Job(uint64_t pending) : shards(*ShardEnumerator::ForRecords(pending, 1)) {
    journal = std::move(*Journal::Open(
        dir.path(), {shards.fingerprint(), shards.shard_count(), "", "", ""}, {}));
    CoordinatorOptions options;
    options.speculation = false;
    coordinator =
        std::make_unique<JobCoordinator>(&clock, &shards, journal.get(), options);
    session = coordinator->Register({"worker", 0, 0, "bench", 1}, {})->session;
  }
  ScratchDir dir;
  RealClock clock;
  ShardEnumerator shards;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<JobCoordinator> coordinator;
  SessionId session = 0;
};

void BM_Cycle(benchmark::State& state) {
  const uint64_t pending = static_cast<uint64_t>(state.range(0));
  const uint32_t batch = static_cast<uint32_t>(state.range(1));
  auto job = std::make_unique<Job>(pending);
  std::vector<LeaseRef> published;
  std::vector<CommitRequest> commits;
  uint64_t cycles_left = pending / batch - 2;
  for (auto _ : state) {
    if (cycles_left-- == 0) {
      // The job is nearly done: start a fresh one of the same size, untimed.
      state.PauseTiming();
      job = std::make_unique<Job>(pending);
      published.clear();
      commits.clear();
      cycles_left = pending / batch - 2;
      state.ResumeTiming();
    }
    auto got = job->coordinator->Acquire(job->session, batch, published, {}, commits);
    published.clear();
    for (const CommitResult& r : got->commit_results) {
      if (r.decision == CommitDecision::kGranted) published.push_back(r.lease);
    }
    commits.clear();
    for (const GrantedShard& g : got->shards) {
      commits.push_back({{g.leased.shard.id, g.leased.attempt}, 1});
    }
    // The durability thread syncs continuously; a sync per 64 records is the
    // same order of magnitude at this rate (and the fsync is not timed).
    if (got->durable_seq % 64 < batch) {
      state.PauseTiming();
      (void)job->journal->Sync(got->durable_seq);
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * batch);
}
BENCHMARK(BM_Cycle)
    ->ArgsProduct({{1'000, 1'000'000, 10'000'000}, {1, 16}})
    ->ArgNames({"pending", "batch"})
    ->Unit(benchmark::kMicrosecond);

void BM_IdleAcquire(benchmark::State& state) {
  const uint32_t workers = static_cast<uint32_t>(state.range(0));
  constexpr uint32_t kHeld = 4;  // one running, three prefetched
  constexpr uint64_t kUnits = 100;
  constexpr uint32_t kDone = 16;  // committed first, for the median shard time
  FakeClock clock;
  ShardEnumerator shards =
      *ShardEnumerator::ForRecords((workers * kHeld + kDone) * kUnits, kUnits);
  CoordinatorOptions options;
  JobCoordinator coordinator(&clock, &shards, nullptr, options);
  auto reg = [&](uint32_t index) {
    return coordinator.Register({"worker", index, 0, "bench", 1}, {})->session;
  };
  // A median shard time of 10s.
  const SessionId first = reg(0);
  for (uint32_t i = 0; i < kDone; ++i) {
    auto got = coordinator.Acquire(first, 1, {}, {});
    const LeaseRef lease{got->shards[0].leased.shard.id, got->shards[0].leased.attempt};
    clock.Advance(absl::Seconds(10));
    (void)coordinator.Commit(first, {{lease, kUnits}}, {});
    (void)coordinator.Heartbeat(first, {}, {lease});
  }
  // Busy workers: each is half-way through a 2s shard, so none is a straggler
  // and none of their prefetched shards is worth handing over.
  std::vector<std::pair<SessionId, LeaseRef>> running;
  for (uint32_t w = 0; w < workers; ++w) {
    const SessionId s = reg(w + 1);
    auto got = coordinator.Acquire(s, kHeld, {}, {});
    running.push_back(
        {s, {got->shards[0].leased.shard.id, got->shards[0].leased.attempt}});
  }
  for (const auto& [s, lease] : running) {
    (void)coordinator.Heartbeat(s, {{lease, 0, 0, true}}, {});
  }
  clock.Advance(absl::Seconds(1));
  for (const auto& [s, lease] : running) {
    (void)coordinator.Heartbeat(s, {{lease, kUnits / 2, kUnits / 2, true}}, {});
  }
  const SessionId idle = reg(workers + 1);
  for (auto _ : state) {
    auto got = coordinator.Acquire(idle, 1, {}, {});
    if (got->outcome != AcquireOutcome::kWait) state.SkipWithError("expected to wait");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_IdleAcquire)
    ->Arg(16)
    ->Arg(256)
    ->Arg(4096)
    ->ArgName("workers")
    ->Unit(benchmark::kMicrosecond);

void BM_JournalAppend(benchmark::State& state) {
  ScratchDir dir;
  auto journal = Journal::Open(dir.path(), {1, 1, "", "", ""}, {});
  uint64_t id = 0;
  for (auto _ : state) {
    const uint64_t seq = (*journal)->AppendCommit({id++, 1, 100, 3});
    if (seq % 65536 == 0) (void)(*journal)->Sync(seq);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_JournalAppend);

void BM_Describe(benchmark::State& state) {
  std::vector<SourceFile> files;
  for (int i = 0; i < 100'000; ++i)
    files.push_back({"part-" + std::to_string(i), 1 << 20});
  auto shards = ShardEnumerator::ForFiles(files, ShardingMode::kBytes, 64 << 10);
  uint64_t id = 0;
  const uint64_t n = shards->shard_count();
  for (auto _ : state) {
    benchmark::DoNotOptimize(shards->Describe(id));
    id = (id + 7919) % n;
  }
}
BENCHMARK(BM_Describe);

}  // namespace
}  // namespace elasticbatch::aimaster

BENCHMARK_MAIN();
