// The worker SDK against a real master on loopback, where the wire and the
// real master are the point: every line exactly once, cancellation of a lost
// lease, failures and quarantine, and master restarts mid-shard. Lease
// renewal around a slow shard runs on fake time against a fake master
// (worker_fake_master_test.cc).
#include "elasticbatch/worker.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

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
  testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] { return shard.cancelled(); });
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
    testing::WaitUntil(absl::Now() + absl::Seconds(120),
                       [&] { return records_done >= total_records * kill / 3; });
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

// A rogue master on loopback: it hands out shards that would steer the
// worker outside its roots (issue 10, item 13) and records what the worker
// reports about them.
class RogueMaster final : public v1::AIMaster::Service {
 public:
  explicit RogueMaster(std::vector<v1::Shard> shards) : shards_(std::move(shards)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~RogueMaster() override { server_->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse* resp) override {
    resp->set_session_id(7);
    resp->mutable_heartbeat_interval()->set_seconds(1);
    resp->mutable_lease_timeout()->set_seconds(30);
    resp->mutable_job()->set_input_channel("data");
    resp->mutable_job()->set_output_channel("out");
    resp->mutable_job()->set_job_uid("rogue");
    return grpc::Status::OK;
  }
  grpc::Status AcquireShards(grpc::ServerContext*, const v1::AcquireShardsRequest* req,
                             v1::AcquireShardsResponse* resp) override {
    *resp->mutable_confirmed() = req->published();
    absl::MutexLock lock(&mu_);
    for (const v1::ShardCompletion& c : req->commits()) {
      committed_.insert(c.lease().shard_id());
      v1::CommitResult* r = resp->add_commit_results();
      *r->mutable_lease() = c.lease();
      r->set_decision(v1::CommitResult::GRANTED);
    }
    if (handed_out_) {
      // The end only once the one good shard is committed: an END while the
      // worker still holds it would (rightly) drop it, and the test would
      // race the worker's prefetching acquire.
      if (committed_.count(0) == 0) {
        resp->set_outcome(v1::AcquireShardsResponse::WAIT);
        resp->mutable_retry_after()->set_nanos(20'000'000);
        return grpc::Status::OK;
      }
      resp->set_outcome(v1::AcquireShardsResponse::END);
      resp->set_job_succeeded(true);
      return grpc::Status::OK;
    }
    handed_out_ = true;
    resp->set_outcome(v1::AcquireShardsResponse::SHARDS);
    for (const v1::Shard& s : shards_) *resp->add_shards() = s;
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override {
    *resp->mutable_confirmed() = req->published();
    return grpc::Status::OK;
  }
  grpc::Status CommitShard(grpc::ServerContext*, const v1::CommitShardRequest* req,
                           v1::CommitShardResponse* resp) override {
    absl::MutexLock lock(&mu_);
    for (const v1::ShardCompletion& c : req->commits()) {
      committed_.insert(c.lease().shard_id());
      v1::CommitResult* r = resp->add_results();
      *r->mutable_lease() = c.lease();
      r->set_decision(v1::CommitResult::GRANTED);
    }
    return grpc::Status::OK;
  }
  grpc::Status FailShard(grpc::ServerContext*, const v1::FailShardRequest* req,
                         v1::FailShardResponse* resp) override {
    absl::MutexLock lock(&mu_);
    failed_[req->lease().shard_id()] = req->error();
    resp->set_outcome(v1::FailShardResponse::REQUEUED);
    return grpc::Status::OK;
  }
  std::map<uint64_t, std::string> failed() {
    absl::MutexLock lock(&mu_);
    return failed_;
  }

 private:
  std::vector<v1::Shard> shards_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool handed_out_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint64_t, std::string> failed_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> committed_ ABSL_GUARDED_BY(mu_);
};

v1::Shard RogueShard(uint64_t id, const std::string& source, const std::string& output) {
  v1::Shard s;
  s.set_shard_id(id);
  s.set_attempt(1);
  s.set_channel("data");
  s.set_source(source);
  s.set_begin(0);
  s.set_end(10);
  s.set_unit(v1::SHARD_UNIT_BYTES);
  s.set_output_name(output);
  return s;
}

TEST(WorkerTest, AShardThatWouldLeaveTheWorkersRootsIsFailedNotProcessed) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.path() + "/in/ok.txt", "0123456789");
  testing::WriteFileOrDie(dir.path() + "/secret", "do not read");
  std::vector<v1::Shard> shards = {
      RogueShard(0, "ok.txt", "part-00000"),
      RogueShard(1, "ok.txt", "../../escaped"),
      RogueShard(2, "../secret", "part-00002"),
      RogueShard(3, "/etc/passwd", "part-00003"),
      RogueShard(4, "ok.txt", "part-4/x"),
      RogueShard(5, "_temporary/x", "part-00005"),
      RogueShard(6, "ok.txt", "."),
  };
  shards.push_back(RogueShard(7, "ok.txt", "part-00007"));
  shards.back().set_channel("other");
  RogueMaster master(shards);
  WorkerOptions o = Options(master.target(), 0, dir.path() + "/in", dir.path() + "/out");
  o.prefetch = 16;
  auto worker = Worker::Create(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  std::vector<uint64_t> handed;
  while (true) {
    absl::StatusOr<std::optional<Shard>> next = (*worker)->NextShard();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    handed.push_back((*next)->id());
    EXPECT_EQ((*next)->input_path(), dir.path() + "/in/ok.txt");
    EXPECT_TRUE((*next)->Commit().ok());
  }
  EXPECT_THAT(handed, ::testing::ElementsAre(0));
  // The refusals are reported by the worker's own thread; the end of the job
  // can reach this thread first (a commit riding on an acquire answered END).
  testing::WaitUntil(absl::Now() + absl::Seconds(60),
                     [&] { return master.failed().size() >= 7; });
  const std::map<uint64_t, std::string> failed = master.failed();
  ASSERT_EQ(failed.size(), 7u);
  EXPECT_THAT(failed.at(1), HasSubstr("output name"));
  EXPECT_THAT(failed.at(2), HasSubstr("source path"));
  EXPECT_THAT(failed.at(3), HasSubstr("absolute"));
  EXPECT_THAT(failed.at(4), HasSubstr("output name"));
  EXPECT_THAT(failed.at(5), HasSubstr("source path"));
  EXPECT_THAT(failed.at(6), HasSubstr("output name"));
  EXPECT_THAT(failed.at(7), HasSubstr("channel"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/escaped"));
}

// The master ended the job, wrote its verdict and left while this worker was
// still in the middle of a shard (or in backoff): the worker has ended, not
// failed; its commit is moot (ABORTED), not UNAVAILABLE.
TEST(WorkerTest, AWorkerFindingItsOwnJobsVerdictEndsCleanly) {
  CoordinatorOptions options = FastOptions();
  options.heartbeat_interval = absl::Seconds(30);  // nothing tells it before
  options.lease_timeout = absl::Seconds(60);
  MasterFixture master(2, 40, 20, options);
  WorkerOptions o = Options(master.target(), 0, master.input_dir(), master.output_dir());
  o.prefetch = 0;
  o.max_backoff = absl::Milliseconds(50);
  auto worker = Worker::Create(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<std::optional<Shard>> next = (*worker)->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  auto out = ShardOutput::Open(**next, (*worker)->output_dir());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->WriteLine("x").ok());
  master.coordinator().Stop("by the operator");
  master.server().Shutdown();
  ASSERT_TRUE(master.Finish().ok());
  const absl::Status committed = (*out)->Commit();
  EXPECT_EQ(committed.code(), absl::StatusCode::kAborted) << committed;
  absl::StatusOr<std::optional<Shard>> after = (*worker)->NextShard();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->has_value());
  EXPECT_TRUE((*worker)->job_over());
  EXPECT_FALSE((*worker)->job_succeeded());
  EXPECT_THAT((*worker)->end_reason(), HasSubstr("_FAILED"));
}

// Issue 10, item 6: a worker of a new job exited 0 ("job over (succeeded)")
// because the output held an earlier job's _SUCCESS. Only a marker that names
// the worker's own job instance counts.
TEST(WorkerTest, AnEndMarkerOfAnotherJobIsNotBelieved) {
  CoordinatorOptions options = FastOptions();
  options.heartbeat_interval = absl::Seconds(30);
  options.lease_timeout = absl::Seconds(60);
  MasterFixture master(2, 40, 20, options);
  WorkerOptions o = Options(master.target(), 0, master.input_dir(), master.output_dir());
  o.prefetch = 0;
  o.max_backoff = absl::Milliseconds(50);
  o.master_lost_timeout = absl::Seconds(1);
  auto worker = Worker::Create(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<std::optional<Shard>> next = (*worker)->NextShard();
  ASSERT_TRUE(next.ok() && next->has_value());
  master.server().Shutdown();  // killed mid-job: it will be restarted
  testing::WriteFileOrDie(master.output_dir() + "/_SUCCESS",
                          R"({"job_id":"old","job_uid":"an-earlier-job"})"
                          "\n");
  testing::WriteFileOrDie(master.output_dir() + "/_FAILED", "");
  const absl::Status committed = (**next).Commit();
  EXPECT_EQ(committed.code(), absl::StatusCode::kUnavailable) << committed;
  EXPECT_FALSE((*worker)->job_over());
}

}  // namespace
}  // namespace elasticbatch
