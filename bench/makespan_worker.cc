// makespan-worker: a simulated inference worker for makespan_bench.
//
// Each record costs `--us-per-record` x this instance's factor of wall time,
// spent sleeping (not spinning: the bench runs 8 workers on a 2-core machine,
// so the figures measure scheduling, not CPU contention). Sleeps aim at
// deadlines measured from the start of the shard, so timer overshoot does not
// accumulate: a shard of n records at factor f takes n * us * f, plus whatever
// the SDK and the master add between shards.
//
// Dynamic mode (default): an SDK worker under `aimaster run`; it reads its
// instance index from ELASTICBATCH_CONFIG and its attempt from
// ELASTICBATCH_ATTEMPT, pulls RECORDS shards until the job is over and commits
// each one without output.
// Static mode (--static-slice=i/N --records=R): no master; instance i works
// through records [i*R/N, (i+1)*R/N) at the same per-record cost, as a
// statically partitioned job would. The attempt comes from
// ELASTICBATCH_ATTEMPT as well (the bench sets it when it reruns a slice).
//
// Flags (--name=value):
//   --factors=f0,f1,...      slowdown per instance index (default: 1 for all)
//   --us-per-record=N        microseconds per record at factor 1 (default 5000)
//   --slow-start-index=I     instance I, attempt 0 only, sleeps
//   --slow-start-seconds=S     S seconds before it registers (or starts its slice)
//   --kill-index=K           instance K, attempt 0 only, SIGKILLs itself
//   --kill-after-seconds=X     X seconds after it got its first shard (or
//                              started its slice), in the middle of a shard
//   --static-slice=i/N       static mode: this process is slice i of N
//   --records=R              static mode: records in the whole input
// Exit codes: 0 done (or refused by the master: a backup won), 1 lost the
// master, 2 bad flags or environment.
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "elasticbatch/record_range.h"
#include "elasticbatch/task_info.h"
#include "elasticbatch/worker.h"

namespace {

constexpr char kProgram[] = "makespan-worker";

struct Flags {
  std::vector<double> factors;
  int64_t us_per_record = 5000;
  int64_t slow_start_index = -1;
  double slow_start_seconds = 0;
  int64_t kill_index = -1;
  double kill_after_seconds = 0;
  std::optional<std::pair<uint64_t, uint64_t>> static_slice;  // i, N
  uint64_t records = 0;
};

int Usage(const std::string& message) {
  std::cerr << kProgram << ": " << message << "\n";
  return 2;
}

// Parses argv into `flags`; an error message, or empty on success.
std::string ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.substr(0, 2) != "--" || eq == absl::string_view::npos)
      return std::string("expected --name=value, got '") + std::string(arg) + "'";
    const absl::string_view name = arg.substr(2, eq - 2);
    const absl::string_view value = arg.substr(eq + 1);
    bool ok = true;
    if (name == "factors") {
      for (absl::string_view f : absl::StrSplit(value, ',')) {
        double d = 0;
        ok = ok && absl::SimpleAtod(f, &d) && d > 0;
        flags->factors.push_back(d);
      }
    } else if (name == "us-per-record") {
      ok = absl::SimpleAtoi(value, &flags->us_per_record) && flags->us_per_record >= 0;
    } else if (name == "slow-start-index") {
      ok = absl::SimpleAtoi(value, &flags->slow_start_index);
    } else if (name == "slow-start-seconds") {
      ok = absl::SimpleAtod(value, &flags->slow_start_seconds);
    } else if (name == "kill-index") {
      ok = absl::SimpleAtoi(value, &flags->kill_index);
    } else if (name == "kill-after-seconds") {
      ok = absl::SimpleAtod(value, &flags->kill_after_seconds);
    } else if (name == "static-slice") {
      std::pair<absl::string_view, absl::string_view> parts =
          absl::StrSplit(value, absl::MaxSplits('/', 1));
      uint64_t slice = 0, of = 0;
      ok = absl::SimpleAtoi(parts.first, &slice) && absl::SimpleAtoi(parts.second, &of) &&
           of > 0 && slice < of;
      flags->static_slice = {slice, of};
    } else if (name == "records") {
      ok = absl::SimpleAtoi(value, &flags->records);
    } else {
      return std::string("unknown flag --") + std::string(name);
    }
    if (!ok) return std::string("bad value in '") + std::string(arg) + "'";
  }
  if (flags->static_slice && flags->records == 0)
    return "--static-slice needs --records=R";
  return "";
}

// Simulated inference over records [begin, end) at `per_record` each.
// Returns false when `cancelled` turned true before the end.
class Simulator {
 public:
  Simulator(absl::Duration per_record, std::optional<absl::Duration> kill_after)
      : per_record_(per_record), kill_after_(kill_after) {}

  // Starts the kill timer (once): the first shard or the slice begins.
  void WorkStarts() {
    if (kill_after_ && !kill_at_) kill_at_ = absl::Now() + *kill_after_;
  }

  bool Run(uint64_t begin, uint64_t end, const std::function<bool()>& cancelled,
           const std::function<void(uint64_t done)>& progress) {
    const elasticbatch::RecordRange range(begin, end);
    const absl::Time start = absl::Now();
    uint64_t done = 0;
    for (uint64_t record : range) {
      (void)record;
      if (cancelled()) return false;
      const absl::Time due = start + per_record_ * static_cast<double>(done + 1);
      const absl::Duration left = due - absl::Now();
      if (left > absl::ZeroDuration()) absl::SleepFor(left);
      ++done;
      progress(done);
      // Mid-shard: records of this range remain.
      if (kill_at_ && done < range.size() && absl::Now() >= *kill_at_) raise(SIGKILL);
    }
    return true;
  }

 private:
  const absl::Duration per_record_;
  const std::optional<absl::Duration> kill_after_;
  std::optional<absl::Time> kill_at_;
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (std::string error = ParseFlags(argc, argv, &flags); !error.empty())
    return Usage(error);

  uint64_t index = 0;
  if (flags.static_slice) {
    index = flags.static_slice->first;
  } else {
    absl::StatusOr<elasticbatch::TaskInfo> task =
        elasticbatch::TaskInfo::FromEnvironment();
    if (!task.ok()) return Usage(std::string(task.status().message()));
    index = task->index;
  }
  uint32_t attempt = 0;
  if (const char* a = std::getenv("ELASTICBATCH_ATTEMPT");
      a != nullptr && !absl::SimpleAtoi(a, &attempt)) {
    return Usage(std::string("bad ELASTICBATCH_ATTEMPT '") + a + "'");
  }
  double factor = 1;
  if (!flags.factors.empty()) {
    if (index >= flags.factors.size())
      return Usage("--factors has no entry for instance " + std::to_string(index));
    factor = flags.factors[index];
  }
  const absl::Duration per_record = absl::Microseconds(flags.us_per_record) * factor;
  const bool first_attempt = attempt == 0;
  std::optional<absl::Duration> kill_after;
  if (first_attempt && flags.kill_index == static_cast<int64_t>(index))
    kill_after = absl::Seconds(flags.kill_after_seconds);
  Simulator sim(per_record, kill_after);

  // A slow starter: the model takes long to load.
  if (first_attempt && flags.slow_start_index == static_cast<int64_t>(index))
    absl::SleepFor(absl::Seconds(flags.slow_start_seconds));

  if (flags.static_slice) {
    const auto [slice, of] = *flags.static_slice;
    const uint64_t begin = slice * flags.records / of;
    const uint64_t end = (slice + 1) * flags.records / of;
    sim.WorkStarts();
    sim.Run(
        begin, end, [] { return false; }, [](uint64_t) {});
    return 0;
  }

  auto worker = elasticbatch::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::cerr << kProgram << ": " << worker.status() << "\n";
    // Refused: a backup of this instance registered first, or the job is over.
    return absl::IsFailedPrecondition(worker.status()) ? 0 : 2;
  }
  // Time spent outside the simulated work, logged at exit (logs/worker-*.log).
  absl::Duration waiting, committing;
  uint64_t granted = 0, refused = 0;
  std::optional<absl::Time> first_shard, last_commit;
  while (true) {
    const absl::Time asked = absl::Now();
    absl::StatusOr<std::optional<elasticbatch::Shard>> next = (*worker)->NextShard();
    waiting += absl::Now() - asked;
    if (!next.ok()) {
      std::cerr << kProgram << ": " << next.status() << "\n";
      return absl::IsFailedPrecondition(next.status()) ? 0 : 1;
    }
    if (!next->has_value()) break;
    elasticbatch::Shard& shard = **next;
    if (shard.unit() != elasticbatch::ShardUnit::kRecords) {
      (void)shard.Fail(absl::InvalidArgumentError(
          "makespan-worker needs RECORDS shards (aimaster run --records N)"));
      continue;
    }
    sim.WorkStarts();
    if (!first_shard) first_shard = absl::Now();
    const bool finished = sim.Run(
        shard.begin(), shard.end(), [&] { return shard.cancelled(); },
        [&](uint64_t done) { shard.ReportProgress(done, done); });
    if (!finished || shard.cancelled()) continue;  // a duplicate won
    const absl::Time commit_start = absl::Now();
    absl::Status committed = shard.Commit();
    last_commit = absl::Now();
    committing += *last_commit - commit_start;
    ++(committed.ok() ? granted : refused);
    if (!committed.ok() && !absl::IsAborted(committed))
      std::cerr << kProgram << ": commit of shard " << shard.id() << ": " << committed
                << "\n";
  }
  const absl::Time loop_done = absl::Now();
  worker->reset();  // ~Worker: stops heartbeats, sends the last confirmations
  auto at = [](std::optional<absl::Time> t) {
    return t ? absl::FormatTime("%H:%M:%E3S", *t, absl::UTCTimeZone()) : "-";
  };
  std::cerr << kProgram << ": instance " << index << " attempt " << attempt << ": "
            << granted << " shards committed, " << refused
            << " lost to another attempt; waited for shards "
            << absl::FormatDuration(waiting) << ", in Commit() "
            << absl::FormatDuration(committing) << "; first shard at " << at(first_shard)
            << ", last commit at " << at(last_commit) << ", job over at " << at(loop_done)
            << ", ~Worker took " << absl::FormatDuration(absl::Now() - loop_done) << "\n";
  return 0;
}
