// `aimaster run -- ebatch-worker ...` with real processes: whatever ebatch-worker
// runs dies with the job, however the master dies.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";
const std::string kWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";

struct Process {
  int pid;
  std::string name;  // /proc/<pid>/comm
};

// Live processes whose environment holds `marker` (zombies have none).
std::vector<Process> ProcessesWith(const std::string& marker) {
  std::vector<Process> found;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    if (testing::ReadFileOrEmpty((e.path() / "environ").string()).find(marker) ==
        std::string::npos) {
      continue;
    }
    found.push_back(
        {pid, std::string(absl::StripSuffix(
                  testing::ReadFileOrEmpty((e.path() / "comm").string()), "\n"))});
  }
  return found;
}

size_t Count(const std::vector<Process>& processes, const std::string& name) {
  size_t n = 0;
  for (const Process& p : processes) n += p.name == name;
  return n;
}

std::string Describe(const std::vector<Process>& processes) {
  std::string out;
  for (const Process& p : processes) absl::StrAppend(&out, " ", p.name, "(", p.pid, ")");
  return out;
}

class RunEbatchWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string content;
    for (int i = 0; i < 100; ++i) absl::StrAppend(&content, "rec ", i, "\n");
    testing::WriteFileOrDie(dir_.path() + "/in/part-0.txt", content);
  }

  // Starts `aimaster run` in the background; `marker` tags every process of
  // the job through its environment.
  std::unique_ptr<testing::Subprocess> Start(const std::string& marker,
                                             const std::vector<std::string>& flags,
                                             const std::string& command) {
    std::vector<std::string> argv = {kAimaster,          "run",
                                     "--job-dir",        dir_.path() + "/job",
                                     "--input",          "data=" + dir_.path() + "/in",
                                     "--output",         "out",
                                     "--shard-bytes=100"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.push_back(command);
    testing::SubprocessOptions o;
    o.env = {marker};
    o.unset_env = {"ELASTICBATCH_CONFIG", "ElASTICBATCH_CONFIG",
                   "ELASTICBATCH_STOP_GRACE"};
    auto p = testing::Subprocess::Start(argv, o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Waits (bounded) until `n` processes called `name` carry `marker`.
  static bool WaitFor(const std::string& marker, const std::string& name, size_t n) {
    return testing::WaitUntil(absl::Now() + absl::Seconds(60),
                              [&] { return Count(ProcessesWith(marker), name) >= n; });
  }

  // Polls (bounded, generously) until no process carries `marker`; what is left.
  static std::vector<Process> Leftovers(const std::string& marker) {
    std::vector<Process> left;
    testing::WaitUntil(absl::Now() + absl::Seconds(60),
                       [&] { return (left = ProcessesWith(marker)).empty(); });
    return left;
  }

  testing::TempDir dir_;
};

TEST_F(RunEbatchWorkerTest, NothingEbatchWorkerRunsOutlivesAKilledMaster) {
  const std::string marker = absl::StrCat("EB_RUN_EBATCH_TEST=", std::random_device{}());
  // A shard command that ignores SIGTERM and starts a grandchild: only SIGKILL
  // to its whole group ends it.
  auto master = Start(marker, {"--workers=2", "--stop-grace=1s"},
                      absl::StrCat(kWorker, " -- 'trap \"\" TERM; sleep 1000 & wait'"));
  ASSERT_NE(master, nullptr);
  ASSERT_TRUE(WaitFor(marker, "sleep", 2)) << Describe(ProcessesWith(marker));
  master->Signal(SIGKILL);  // the master's whole group, as a crash or OOM kill would
  EXPECT_EQ(*master->Wait(absl::Seconds(30)), 128 + SIGKILL);
  const std::vector<Process> left = Leftovers(marker);
  EXPECT_TRUE(left.empty()) << left.size()
                            << " processes outlived the master:" << Describe(left);
}

TEST_F(RunEbatchWorkerTest, NothingOutlivesAPersistentWorkerOfAKilledMaster) {
  const std::string marker = absl::StrCat("EB_RUN_EBATCH_TEST=", std::random_device{}());
  auto master = Start(
      marker, {"--workers=2", "--stop-grace=1s"},
      absl::StrCat(kWorker, " --persistent -- 'trap \"\" TERM; sleep 1000 & wait'"));
  ASSERT_NE(master, nullptr);
  ASSERT_TRUE(WaitFor(marker, "sleep", 2)) << Describe(ProcessesWith(marker));
  master->Signal(SIGKILL);
  EXPECT_EQ(*master->Wait(absl::Seconds(30)), 128 + SIGKILL);
  const std::vector<Process> left = Leftovers(marker);
  EXPECT_TRUE(left.empty()) << left.size()
                            << " processes outlived the master:" << Describe(left);
}

}  // namespace
}  // namespace elasticbatch
