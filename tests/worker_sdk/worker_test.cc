// The worker SDK against a real master on loopback: every line exactly once,
// prefetch and heartbeats around a slow shard, cancellation of a lost lease,
// failures and quarantine, and master restarts mid-shard.
#include "elasticbatch/worker.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard_output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "master_fixture.h"
#include "subprocess.h"

namespace elasticbatch {
namespace {

using aimaster::CoordinatorOptions;
using aimaster::JobState;
using aimaster::MasterFixture;
using ::testing::HasSubstr;

// Input files with distinct lines of varied length, CRLF endings in one file,
// no final newline in another, and a nested directory.
MasterFixture::Files SampleFiles(int lines_per_file) {
  MasterFixture::Files files;
  int n = 0;
  for (const char* name : {"a.jsonl", "b.jsonl", "c.jsonl", "sub/d.jsonl"}) {
    std::string content;
    const bool crlf = std::string(name) == "b.jsonl";
    for (int i = 0; i < lines_per_file; ++i, ++n) {
      absl::StrAppend(&content, "{\"id\":", n, ",\"text\":\"", std::string(i % 37, 'w'),
                      "\"}", crlf ? "\r\n" : "\n");
    }
    if (std::string(name) == "c.jsonl") content.pop_back();  // no final newline
    files.push_back({name, content});
  }
  return files;
}

// Every line of every input file, as the readers return them.
std::vector<std::string> AllLines(const MasterFixture::Files& files) {
  std::vector<std::string> lines;
  for (const auto& [name, content] : files) {
    for (absl::string_view line : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
      if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
      lines.emplace_back(line);
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Every line of every published part file.
std::vector<std::string> OutputLines(const std::string& dir) {
  std::vector<std::string> lines;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "part-")) continue;
    for (absl::string_view line : absl::StrSplit(
             testing::ReadFileOrEmpty(entry.path().string()), '\n', absl::SkipEmpty())) {
      lines.emplace_back(line);
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

WorkerOptions Options(const std::string& target, uint32_t index, const std::string& in,
                      const std::string& out) {
  WorkerOptions o;
  o.master_address = target;
  o.task_index = index;
  o.input_root = in;
  o.output_dir = out;
  o.master_lost_timeout = absl::Seconds(60);
  return o;
}

struct RunStats {
  int committed = 0;
  int aborted = 0;
  bool ended = false;
  bool succeeded = false;
  std::string error;
};

// The usual worker loop: copy each record to the output. `on_record` may slow
// it down or fail it (returns false to fail the shard).
RunStats RunWorker(
    Worker& worker,
    const std::function<bool(const Shard&, uint64_t)>& on_record = nullptr) {
  RunStats stats;
  while (true) {
    absl::StatusOr<std::optional<Shard>> next = worker.NextShard();
    if (!next.ok()) {
      stats.error = next.status().ToString();
      return stats;
    }
    if (!next->has_value()) break;
    Shard& shard = **next;
    auto reader = LineRangeReader::Open(shard.input_path(), shard.begin(), shard.end());
    auto out = ShardOutput::Open(shard, worker.output_dir());
    if (!reader.ok() || !out.ok()) {
      stats.error = "cannot open shard";
      return stats;
    }
    std::string line;
    bool failed = false;
    while (*(*reader)->Next(&line)) {
      if (on_record && !on_record(shard, (*reader)->records())) {
        failed = true;
        break;
      }
      (void)(*out)->WriteLine(line);
      shard.ReportProgress((*reader)->records(), (*reader)->units_done());
    }
    if (failed) {
      (void)shard.Fail(
          absl::InternalError(absl::StrCat("bad record in shard ", shard.id())));
      continue;
    }
    absl::Status s = (*out)->Commit();
    if (s.ok()) {
      ++stats.committed;
    } else if (absl::IsAborted(s)) {
      ++stats.aborted;
    } else {
      stats.error = s.ToString();
      return stats;
    }
  }
  stats.ended = true;
  stats.succeeded = worker.job_succeeded();
  return stats;
}

CoordinatorOptions FastOptions() {
  CoordinatorOptions o;
  o.heartbeat_interval = absl::Milliseconds(100);
  o.lease_timeout = absl::Seconds(5);
  return o;
}

TEST(WorkerTest, ThreeWorkersPublishEveryLineExactlyOnce) {
  const MasterFixture::Files files = SampleFiles(400);
  MasterFixture master(files, /*shard_bytes=*/1500, FastOptions());
  std::vector<RunStats> stats(3);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto worker = Worker::Create(
          Options(master.target(), i, master.input_dir(), master.output_dir()));
      ASSERT_TRUE(worker.ok()) << worker.status();
      EXPECT_EQ((*worker)->total_shards(), master.shards().shard_count());
      stats[i] = RunWorker(**worker);
    });
  }
  for (auto& t : threads) t.join();
  int committed = 0;
  for (const RunStats& s : stats) {
    EXPECT_TRUE(s.ended) << s.error;
    EXPECT_TRUE(s.succeeded);
    committed += s.committed;
  }
  EXPECT_EQ(committed, static_cast<int>(master.shards().shard_count()));
  EXPECT_EQ(OutputLines(master.output_dir()), AllLines(files));
  for (int c : master.CommitsPerShard()) EXPECT_EQ(c, 1);
}

TEST(WorkerTest, PrefetchedAndSlowShardsKeepTheirLeasesThroughHeartbeats) {
  const MasterFixture::Files files = SampleFiles(200);
  CoordinatorOptions options = FastOptions();
  options.lease_timeout = absl::Milliseconds(600);  // the slow shard takes 3 timeouts
  MasterFixture master(files, 1500, options);
  auto worker = Worker::Create([&] {
    WorkerOptions o =
        Options(master.target(), 0, master.input_dir(), master.output_dir());
    o.prefetch = 2;
    return o;
  }());
  ASSERT_TRUE(worker.ok()) << worker.status();
  // The first shard takes three lease timeouts; meanwhile two more sit
  // prefetched and unstarted. Only heartbeats keep all three leases alive.
  bool first = true;
  uint64_t leased_while_slow = 0;
  RunStats stats = RunWorker(**worker, [&](const Shard&, uint64_t) {
    if (first) {
      first = false;
      absl::SleepFor(absl::Milliseconds(1800));
      leased_while_slow = master.coordinator().Progress().leased_shards;
    }
    return true;
  });
  EXPECT_TRUE(stats.ended) << stats.error;
  EXPECT_EQ(leased_while_slow, 3u) << "the prefetched shards must still be held";
  // No lease expired: every shard was committed by its first attempt.
  ASSERT_TRUE(master.Finish().ok());
  int lines = 0;
  for (absl::string_view line :
       absl::StrSplit(testing::ReadFileOrEmpty(master.output_dir() + "/_manifest.jsonl"),
                      '\n', absl::SkipEmpty())) {
    ++lines;
    EXPECT_THAT(std::string(line), HasSubstr("\"attempt\":1,")) << line;
  }
  EXPECT_EQ(lines, static_cast<int>(master.shards().shard_count()));
  EXPECT_GT(master.shards().shard_count(), 3u);
  EXPECT_EQ(OutputLines(master.output_dir()), AllLines(files));
}

TEST(WorkerTest, StragglerLosesToASpeculativeDuplicateAndIsCancelled) {
  const MasterFixture::Files files = SampleFiles(100);
  CoordinatorOptions options = FastOptions();
  options.speculation_multiplier = 2;
  MasterFixture master(files, 1000, options);
  auto straggler = Worker::Create([&] {
    WorkerOptions o =
        Options(master.target(), 0, master.input_dir(), master.output_dir());
    o.prefetch = 0;
    return o;
  }());
  ASSERT_TRUE(straggler.ok());
  absl::StatusOr<std::optional<Shard>> stuck = (*straggler)->NextShard();
  ASSERT_TRUE(stuck.ok() && stuck->has_value());
  Shard& shard = **stuck;
  auto out = ShardOutput::Open(shard, master.output_dir());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->WriteLine("straggler's partial output").ok());
  shard.ReportProgress(1, 1);  // a crawl: 1 byte done

  auto fast = Worker::Create(
      Options(master.target(), 1, master.input_dir(), master.output_dir()));
  ASSERT_TRUE(fast.ok());
  std::atomic<int> speculative{0};
  RunStats fast_stats = RunWorker(**fast, [&](const Shard& s, uint64_t records) {
    if (records == 1 && s.speculative()) ++speculative;
    return true;
  });
  EXPECT_TRUE(fast_stats.ended) << fast_stats.error;
  EXPECT_EQ(speculative.load(), 1);
  // The straggler hears of it through its heartbeat, and its commit is refused.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!shard.cancelled() && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(shard.cancelled());
  absl::Status late = (*out)->Commit();
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  EXPECT_FALSE(std::filesystem::exists((*out)->staging_path()));
  EXPECT_EQ(OutputLines(master.output_dir()), AllLines(files));
  absl::StatusOr<std::optional<Shard>> end = (*straggler)->NextShard();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST(WorkerTest, FailingShardIsQuarantinedAndTheJobFails) {
  const MasterFixture::Files files = SampleFiles(50);
  CoordinatorOptions options = FastOptions();
  options.max_attempts = 2;
  MasterFixture master(files, 2000, options);
  auto worker = Worker::Create(
      Options(master.target(), 0, master.input_dir(), master.output_dir()));
  ASSERT_TRUE(worker.ok());
  RunStats stats =
      RunWorker(**worker, [](const Shard& s, uint64_t) { return s.id() != 1; });
  EXPECT_TRUE(stats.ended) << stats.error;
  EXPECT_FALSE(stats.succeeded);
  EXPECT_THAT((*worker)->end_reason(), HasSubstr("quarantined"));
  ASSERT_TRUE(master.Finish().ok());
  const std::string dead =
      testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
  EXPECT_THAT(dead, HasSubstr("\"shard\":1,"));
  EXPECT_THAT(dead, HasSubstr("bad record in shard 1"));
  EXPECT_THAT(dead, HasSubstr("\"failures\":2"));
}

TEST(WorkerTest, AWorkerArrivingAfterTheEndGetsNothing) {
  const MasterFixture::Files files = SampleFiles(20);
  MasterFixture master(files, 100000, FastOptions());
  {
    auto first = Worker::Create(
        Options(master.target(), 0, master.input_dir(), master.output_dir()));
    ASSERT_TRUE(first.ok());
    EXPECT_TRUE(RunWorker(**first).succeeded);
  }
  auto late = Worker::Create(
      Options(master.target(), 1, master.input_dir(), master.output_dir()));
  ASSERT_TRUE(late.ok());
  absl::StatusOr<std::optional<Shard>> next = (*late)->NextShard();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_TRUE((*late)->job_succeeded());
}

TEST(WorkerTest, UnreachableMasterIsUnavailableAfterTheTimeout) {
  WorkerOptions o = Options("127.0.0.1:1", 0, "/nonexistent", "");
  o.master_lost_timeout = absl::Milliseconds(300);
  o.max_backoff = absl::Milliseconds(50);
  auto worker = Worker::Create(o);
  EXPECT_EQ(worker.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(worker.status().message()), HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(Worker::Create(WorkerOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// kill -9 of a real master while SDK workers are mid-shard, then a restart on
// the same port and state dir: the output is complete and free of duplicates.
TEST(WorkerTest, MasterRestartsWhileWorkersAreMidShard) {
  testing::TempDir dir;
  const MasterFixture::Files files = SampleFiles(300);
  for (const auto& [name, content] : files) {
    testing::WriteFileOrDie(absl::StrCat(dir.path(), "/in/", name), content);
  }
  const std::string in = dir.path() + "/in";
  const std::string out = dir.path() + "/out";
  const std::vector<std::string> args = {"--host=127.0.0.1",
                                         "--input",
                                         "data=" + in,
                                         "--output",
                                         "out=" + out,
                                         "--state-dir=" + dir.path() + "/state",
                                         "--shard-bytes=800",
                                         "--lease-timeout=3s",
                                         "--heartbeat-interval=100ms",
                                         "--end-grace=5s",
                                         "--log-level=warn"};
  auto start = [&](int port) {
    std::vector<std::string> argv = {std::string(EB_BIN_DIR) + "/aimaster", "serve",
                                     absl::StrCat("--port=", port)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = testing::Subprocess::Start(argv);
    EXPECT_TRUE(p.ok());
    absl::StatusOr<std::string> line = (*p)->ReadStdoutLine(absl::Seconds(60));
    EXPECT_TRUE(line.ok()) << (*p)->Stderr();
    int parsed = 0;
    if (line.ok()) (void)absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &parsed);
    return std::make_pair(std::move(*p), parsed);
  };
  auto [master, port] = start(0);
  ASSERT_GT(port, 0);
  std::atomic<uint64_t> records_done{0};
  std::vector<RunStats> stats(3);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i, port = port] {
      auto worker = Worker::Create(Options(absl::StrCat("127.0.0.1:", port), i, in, out));
      ASSERT_TRUE(worker.ok()) << worker.status();
      stats[i] = RunWorker(**worker, [&](const Shard&, uint64_t) {
        ++records_done;
        absl::SleepFor(absl::Microseconds(1000));
        return true;
      });
    });
  }
  const uint64_t total_records = AllLines(files).size();
  for (int kill = 1; kill <= 2; ++kill) {
    // Kill when the workers are well into the job (and so mid-shard).
    const absl::Time give_up = absl::Now() + absl::Seconds(120);
    while (records_done < total_records * kill / 3 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    master->Signal(SIGKILL);
    ASSERT_EQ(*master->Wait(absl::Seconds(30)), 128 + SIGKILL);
    auto [restarted, again] = start(port);
    ASSERT_EQ(again, port);
    master = std::move(restarted);
  }
  for (auto& t : threads) t.join();
  absl::StatusOr<int> code = master->Wait(absl::Seconds(120));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << master->Stderr();
  for (const RunStats& s : stats) {
    EXPECT_TRUE(s.ended) << s.error;
    EXPECT_TRUE(s.succeeded);
  }
  EXPECT_TRUE(std::filesystem::exists(out + "/_SUCCESS"));
  EXPECT_EQ(OutputLines(out), AllLines(files));
}

}  // namespace
}  // namespace elasticbatch
