// SIGKILLs a real `aimaster serve` several times mid-job and restarts it with
// the same state dir and port: the job completes with every shard committed
// exactly once, and workers carry on by reconnecting.
#include <grpcpp/create_channel.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "aimaster/core/journal.h"
#include "elasticbatch/v1/admin.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/chaos_worker.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";

class MasterProcess {
 public:
  explicit MasterProcess(std::vector<std::string> args) : args_(std::move(args)) {}

  // Starts the master; returns its port (parsed from "listening on HOST:PORT").
  int Start(int port) {
    std::vector<std::string> argv = {kAimaster, "serve", absl::StrCat("--port=", port)};
    argv.insert(argv.end(), args_.begin(), args_.end());
    process_ = std::move(*testing::Subprocess::Start(argv));
    absl::StatusOr<std::string> line = process_->ReadStdoutLine(absl::Seconds(60));
    EXPECT_TRUE(line.ok()) << line.status() << " stderr: " << process_->Stderr();
    if (!line.ok()) return 0;
    int parsed = 0;
    EXPECT_TRUE(absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &parsed)) << *line;
    return parsed;
  }
  testing::Subprocess& process() { return *process_; }

 private:
  std::vector<std::string> args_;
  std::unique_ptr<testing::Subprocess> process_;
};

uint64_t CommittedShards(const std::string& target) {
  auto admin =
      v1::Admin::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  v1::JobStatus status;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!admin->GetJobStatus(&ctx, v1::GetJobStatusRequest(), &status).ok()) return 0;
  return status.committed_shards();
}

TEST(ServeCrashTest, KilledMasterResumesAndCommitsEveryShardExactlyOnce) {
  testing::TempDir dir;
  constexpr int kFiles = 60;
  constexpr int kShardsPerFile = 4;
  for (int i = 0; i < kFiles; ++i) {
    testing::WriteFileOrDie(absl::StrCat(dir.path(), "/in/part-", i, ".txt"),
                            std::string(4000, 'r'));
  }
  constexpr uint64_t kShards = kFiles * kShardsPerFile;
  const std::string out = dir.path() + "/out";
  const std::string state = dir.path() + "/state";
  MasterProcess master({"--host=127.0.0.1", "--input", "data=" + dir.path() + "/in",
                        "--output", "out=" + out, "--state-dir", state,
                        "--shard-bytes=1000", "--lease-timeout=2s",
                        "--heartbeat-interval=200ms", "--max-attempts=1000",
                        "--no-speculation", "--end-grace=5s"});
  const int port = master.Start(0);
  ASSERT_GT(port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", port);

  constexpr int kWorkers = 8;
  std::vector<std::unique_ptr<testing::ChaosWorker>> workers;
  for (int i = 0; i < kWorkers; ++i) {
    testing::ChaosOptions o;
    o.task_index = static_cast<uint32_t>(i);
    o.seed = 77 + static_cast<uint32_t>(i);
    o.fail_percent = 5;
    o.abandon_percent = 2;
    o.output_dir = out;
    o.deadline = absl::Seconds(240);
    o.work_time = absl::Milliseconds(20);
    workers.push_back(std::make_unique<testing::ChaosWorker>(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), o));
  }
  std::vector<int> finished(kWorkers, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWorkers; ++i) {
    threads.emplace_back([&, i] { finished[i] = workers[i]->Run(); });
  }

  // Kill the master each time another sixth of the shards is committed.
  int kills = 0;
  for (uint64_t goal = kShards / 6; goal < kShards && kills < 4; goal += kShards / 6) {
    uint64_t committed = 0;
    testing::WaitUntil(absl::Now() + absl::Seconds(120),
                       [&] { return (committed = CommittedShards(target)) >= goal; });
    ASSERT_GE(committed, goal) << "no progress after restart " << kills;
    if (committed >= kShards) break;
    master.process().Signal(SIGKILL);
    ASSERT_EQ(*master.process().Wait(absl::Seconds(30)), 128 + SIGKILL);
    ++kills;
    ASSERT_EQ(master.Start(port), port) << "restart " << kills;
  }
  EXPECT_GE(kills, 3);

  absl::StatusOr<int> code = master.process().Wait(absl::Seconds(240));
  ASSERT_TRUE(code.ok()) << "master did not finish";
  EXPECT_EQ(*code, 0) << master.process().Stderr();
  for (auto& t : threads) t.join();
  uint64_t reregistered = 0;
  for (int i = 0; i < kWorkers; ++i) {
    EXPECT_TRUE(finished[i]) << "worker " << i << " did not see the end";
    reregistered += workers[i]->stats().reregistered;
  }
  EXPECT_GT(reregistered, 0u) << "workers should have reconnected to restarted masters";

  // The journal and the manifest hold every shard exactly once.
  std::vector<int> commits(kShards, 0);
  aimaster::JournalReplay replay;
  replay.on_commit = [&](const aimaster::CommitRecord& c) { ++commits.at(c.shard_id); };
  ASSERT_TRUE(aimaster::Journal::Read(state, replay).ok());
  std::map<uint64_t, int> manifest;
  for (absl::string_view line : absl::StrSplit(
           testing::ReadFileOrEmpty(out + "/_manifest.jsonl"), '\n', absl::SkipEmpty())) {
    const size_t at = line.find("\"shard\":") + 8;
    uint64_t id = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(at, line.find(',', at) - at), &id)) << line;
    ++manifest[id];
  }
  for (uint64_t id = 0; id < kShards; ++id) {
    EXPECT_EQ(commits[id], 1) << "shard " << id;
    EXPECT_EQ(manifest[id], 1) << "shard " << id;
    EXPECT_TRUE(std::filesystem::exists(absl::StrFormat("%s/part-%05d", out, id)));
  }
  EXPECT_EQ(manifest.size(), kShards);
  EXPECT_TRUE(std::filesystem::exists(out + "/_SUCCESS"));
  EXPECT_FALSE(std::filesystem::exists(out + "/_temporary"));
}

}  // namespace
}  // namespace elasticbatch
