// scale_bench: what a master costs as jobs grow.
//   * RSS of a real `aimaster serve` at 1k, 1M and 10M pending shards, and the
//     bytes each extra shard costs (the done-bitmap: 1 bit per shard);
//   * journal replay: a master restarting over 1,000,000 journalled commits,
//     in process (replay into the coordinator) and as a real process
//     (exec to "listening on").
// Usage: scale_bench [--bin DIR] (DIR holds aimaster; default: this binary's dir)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "aimaster/core/clock.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "bench/bench_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

ABSL_FLAG(std::string, bin, "", "directory holding aimaster (default: this program's)");

constexpr char kUsage[] =
    "Usage: scale_bench [--bin DIR]\nMaster RSS at 1k/1M/10M pending shards; replay and "
    "restart over 1,000,000 journalled commits.";

namespace elasticbatch::bench {
namespace {

using aimaster::CommitRecord;
using aimaster::Journal;
using aimaster::JournalReplay;
using aimaster::ShardEnumerator;

struct Served {
  uint64_t rss = 0;
  double startup_seconds = 0;
};

// Starts `aimaster serve` over a record-count input of `shards` shards, waits
// for "listening on", measures, and stops it.
Served Serve(const std::string& aimaster, uint64_t shards, const std::string& dir) {
  const absl::Time start = absl::Now();
  auto p = testing::Subprocess::Start(
      {aimaster, "serve", "--port=0", "--host=127.0.0.1", "--records",
       absl::StrCat(shards), "--shard-records=1", "--input", "table=odps://bench/table",
       "--output", "out=" + dir + "/out", "--state-dir", dir + "/state",
       "--log-level=warn"});
  Served s;
  if (!p.ok() || !(*p)->ReadStdoutLine(absl::Seconds(120)).ok()) {
    std::cerr << "aimaster serve did not start: " << (p.ok() ? (*p)->Stderr() : "")
              << "\n";
    std::exit(1);
  }
  s.startup_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  s.rss = RssBytes((*p)->pid());
  (*p)->Signal(SIGTERM);
  (void)(*p)->Wait(absl::Seconds(60));
  return s;
}

}  // namespace
}  // namespace elasticbatch::bench

int main(int argc, char** argv) {
  using namespace elasticbatch;
  using namespace elasticbatch::bench;
  if (std::optional<int> exit = ParseFlags(argc, argv, "scale_bench", kUsage))
    return *exit;
  const std::string bin = BinDir(absl::GetFlag(FLAGS_bin), argv[0]);
  const std::string aimaster = bin + "/aimaster";
  testing::TempDir dir;
  Report report("scale");
  report.Row({"pending shards", "master RSS", "vs 1k shards", "bytes/shard", "startup"});
  const Served base = Serve(aimaster, 1000, dir.path() + "/s1k");
  report.Row(
      {"1,000", Mb(base.rss), "-", "-", absl::StrFormat("%.2fs", base.startup_seconds)});
  report.Figure("rss_1k_bytes", static_cast<double>(base.rss));
  for (uint64_t n : {uint64_t{1'000'000}, uint64_t{10'000'000}}) {
    const Served s = Serve(aimaster, n, absl::StrCat(dir.path(), "/s", n));
    const double per_shard =
        (static_cast<double>(s.rss) - static_cast<double>(base.rss)) /
        static_cast<double>(n);
    report.Row(
        {n == 1000000 ? "1,000,000" : "10,000,000", Mb(s.rss),
         absl::StrFormat("%+.1f MB", (static_cast<double>(s.rss) - base.rss) / 1e6),
         absl::StrFormat("%.3f", per_shard),
         absl::StrFormat("%.2fs", s.startup_seconds)});
    report.Figure(absl::StrCat("rss_", n / 1'000'000, "m_bytes"),
                  static_cast<double>(s.rss));
    report.Figure(absl::StrCat("bytes_per_shard_", n / 1'000'000, "m"), per_shard);
  }

  // Journal replay: 1,000,000 commits of a 2,000,000-shard job.
  constexpr uint64_t kCommits = 1'000'000;
  const std::string state = dir.path() + "/replay/state";
  auto shards = ShardEnumerator::ForRecords(2 * kCommits, 1);
  {
    auto journal = Journal::Open(
        state, {shards->fingerprint(), shards->shard_count(), "", "", ""}, {});
    for (uint64_t id = 0; id < kCommits; ++id)
      (*journal)->AppendCommit({id * 2, 1, 100, 7});
    if (!(*journal)->SyncAll().ok()) return 1;
  }
  const uint64_t journal_bytes = std::filesystem::file_size(state + "/journal");
  double in_process = 0;
  {
    // What PrepareJob does: open (replay), then restore the coordinator.
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<CommitRecord> commits;
    JournalReplay replay;
    replay.on_commit = [&](const CommitRecord& c) { commits.push_back(c); };
    auto journal = Journal::Open(
        state, {shards->fingerprint(), shards->shard_count(), "", "", ""}, replay);
    aimaster::RealClock clock;
    aimaster::JobCoordinator coordinator(&clock, &*shards, journal->get(), {});
    for (const CommitRecord& c : commits) coordinator.RestoreCommitted(c);
    in_process =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (coordinator.Progress().committed_shards != kCommits) {
      std::cerr << "replay lost commits\n";
      return 1;
    }
  }
  const Served restarted = [&] {
    const absl::Time start = absl::Now();
    auto p = testing::Subprocess::Start(
        {aimaster, "serve", "--port=0", "--host=127.0.0.1", "--records",
         absl::StrCat(2 * kCommits), "--shard-records=1", "--input",
         "table=odps://bench/t", "--output", "out=" + dir.path() + "/replay/out",
         "--state-dir", state, "--log-level=warn"});
    if (!p.ok() || !(*p)->ReadStdoutLine(absl::Seconds(120)).ok()) std::exit(1);
    Served s;
    s.startup_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    s.rss = RssBytes((*p)->pid());
    (*p)->Signal(SIGTERM);
    (void)(*p)->Wait(absl::Seconds(60));
    return s;
  }();
  std::cout << "\n";
  report.Row({});
  report.Row({"recovery", "size", "", "", "time"});
  report.Row({"journal replay (1,000,000 commits)", Mb(journal_bytes), "", "",
              absl::StrFormat("in process %.3fs", in_process)});
  report.Row({"aimaster serve restart, exec to listening", Mb(restarted.rss), "", "",
              absl::StrFormat("%.3fs", restarted.startup_seconds)});
  report.Figure("replay_1m_in_process_s", in_process);
  report.Figure("restart_1m_process_s", restarted.startup_seconds);
  report.Figure("journal_1m_bytes", static_cast<double>(journal_bytes));
  report.Print();
  return 0;
}
