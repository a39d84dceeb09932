// ebatch-worker processes against a real master on loopback.
#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "master_fixture.h"
#include "subprocess.h"

namespace elasticbatch {
namespace {

using aimaster::CoordinatorOptions;
using aimaster::MasterFixture;
using ::testing::HasSubstr;

const std::string kWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";

MasterFixture::Files NumberFiles() {
  MasterFixture::Files files;
  for (int f = 0; f < 3; ++f) {
    std::string content;
    for (int i = 0; i < 300; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
    files.push_back({absl::StrCat("part-", f, ".txt"), content});
  }
  return files;
}

std::vector<std::string> Lines(const MasterFixture::Files& files,
                               const std::function<std::string(absl::string_view)>& map) {
  std::vector<std::string> out;
  for (const auto& [name, content] : files) {
    for (absl::string_view l : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
      out.push_back(map(l));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> OutputLines(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!absl::StartsWith(e.path().filename().string(), "part-")) continue;
    for (absl::string_view l : absl::StrSplit(testing::ReadFileOrEmpty(e.path().string()),
                                              '\n', absl::SkipEmpty())) {
      out.emplace_back(l);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

CoordinatorOptions Options() {
  CoordinatorOptions o;
  o.heartbeat_interval = absl::Milliseconds(100);
  o.lease_timeout = absl::Seconds(10);
  o.input_channel = "data";
  o.output_channel = "predictions";
  return o;
}

testing::SubprocessOptions WorkerEnv(const MasterFixture& master, int index) {
  testing::SubprocessOptions o;
  o.env = {
      absl::StrCat("ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":", index,
                   "},\"environment\":\"test\"}"),
      "AIMASTER_ADDR=" + master.target(), "PAI_INPUT_DATA=" + master.input_dir(),
      "PAI_OUTPUT_PREDICTIONS=" + master.output_dir(), "ELASTICBATCH_LOG_LEVEL=warn"};
  o.unset_env = {"ElASTICBATCH_CONFIG"};
  return o;
}

// Runs `n` ebatch-workers with `args` to the end; returns their results.
std::vector<testing::ProcessResult> RunWorkers(const MasterFixture& master, int n,
                                               const std::vector<std::string>& args) {
  std::vector<testing::ProcessResult> results(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::vector<std::string> argv = {kWorker};
      argv.insert(argv.end(), args.begin(), args.end());
      results[static_cast<size_t>(i)] =
          testing::RunProcess(argv, absl::Seconds(120), WorkerEnv(master, i));
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

TEST(EbatchWorkerTest, PerShardCommandTransformsEveryRecordExactlyOnce) {
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 700, Options());
  for (const auto& r : RunWorkers(master, 3, {"--", "sed", "s/rec/out/"})) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(OutputLines(master.output_dir()), Lines(files, [](absl::string_view l) {
              return absl::StrCat("out", l.substr(3));
            }));
  for (int c : master.CommitsPerShard()) EXPECT_EQ(c, 1);
}

TEST(EbatchWorkerTest, CommandSeesTheShardInItsEnvironment) {
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 1000, Options());
  const auto results =
      RunWorkers(master, 1,
                 {"--",
                  "cat >/dev/null; echo \"$SHARD_ID $SHARD_BEGIN $SHARD_END $SHARD_UNIT "
                  "$SHARD_OUTPUT_NAME $SHARD_SOURCE\""});
  ASSERT_EQ(results[0].exit_code, 0) << results[0].err;
  for (uint64_t id = 0; id < master.shards().shard_count(); ++id) {
    const auto d = master.shards().Describe(id);
    const std::string name = master.shards().OutputName(id);
    EXPECT_EQ(testing::ReadFileOrEmpty(master.output_dir() + "/" + name),
              absl::StrCat(id, " ", d.begin, " ", d.end, " bytes ", name, " ",
                           master.input_dir(), "/", *d.source, "\n"));
  }
}

TEST(EbatchWorkerTest, PersistentCommandLoadsOnceAndAnswersLineByLine) {
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 500, Options());
  const std::string script =
      "import sys\n"
      "print('model loaded', file=sys.stderr)\n"
      "for line in sys.stdin:\n"
      "    print(line.strip().upper())\n";
  const std::string path = master.output_dir() + "_model.py";
  testing::WriteFileOrDie(path, script);
  const auto results = RunWorkers(master, 2, {"--persistent", "--", "python3", path});
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // One model per worker, not one per shard.
    int loads = 0;
    for (size_t at = 0; (at = r.err.find("model loaded", at)) != std::string::npos;
         ++at) {
      ++loads;
    }
    EXPECT_LE(loads, 1) << r.err;
  }
  EXPECT_EQ(OutputLines(master.output_dir()), Lines(files, [](absl::string_view l) {
              return absl::StrCat("REC", l.substr(3));
            }));
}

TEST(EbatchWorkerTest, PersistentCommandThatDiesOnAPoisonRecordIsRestarted) {
  const MasterFixture::Files files = NumberFiles();
  CoordinatorOptions options = Options();
  options.max_attempts = 2;
  options.max_failed_shards = 1;  // the poison shard may be quarantined
  MasterFixture master(files, 500, options);
  const std::string script =
      "import sys\n"
      "for line in sys.stdin:\n"
      "    if line.strip() == 'rec 1100':\n"
      "        print('poison record', file=sys.stderr)\n"
      "        sys.exit(9)\n"
      "    print(line.strip())\n";
  const std::string path = master.output_dir() + "_model.py";
  testing::WriteFileOrDie(path, script);
  const auto results = RunWorkers(master, 2, {"--persistent", "--", "python3", path});
  for (const auto& r : results) EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(master.Finish().ok());
  const std::string dead =
      testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
  EXPECT_EQ(std::count(dead.begin(), dead.end(), '\n'), 1) << dead;
  EXPECT_THAT(dead, HasSubstr("poison record"));
  EXPECT_THAT(dead, HasSubstr("exit status 9"));
  // Every other record made it, exactly once.
  std::vector<std::string> expected =
      Lines(files, [](absl::string_view l) { return std::string(l); });
  std::vector<std::string> got = OutputLines(master.output_dir());
  EXPECT_TRUE(std::includes(expected.begin(), expected.end(), got.begin(), got.end()));
  EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << "duplicate output";
  EXPECT_GT(got.size(), expected.size() - 200);
  EXPECT_TRUE(std::find(got.begin(), got.end(), "rec 1100") == got.end());
}

TEST(EbatchWorkerTest, FailingCommandFailsTheShardWithItsStderr) {
  const MasterFixture::Files files = NumberFiles();
  CoordinatorOptions options = Options();
  options.max_attempts = 2;
  MasterFixture master(files, 100000, options);  // one shard per file
  const auto results = RunWorkers(
      master, 1,
      {"--", "if grep -q 'rec 1005'; then echo boom on $SHARD_ID >&2; exit 3; fi"});
  EXPECT_EQ(results[0].exit_code, 0) << results[0].err;
  ASSERT_TRUE(master.Finish().ok());
  const std::string dead =
      testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
  EXPECT_THAT(dead, HasSubstr("\"shard\":1,"));
  EXPECT_THAT(dead, HasSubstr("exited with status 3"));
  EXPECT_THAT(dead, HasSubstr("boom on 1"));
  EXPECT_TRUE(std::filesystem::exists(master.output_dir() + "/_FAILED"));
}

TEST(EbatchWorkerTest, ConfigurationErrorsExitWithCode2) {
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 1000, Options());
  testing::SubprocessOptions env = WorkerEnv(master, 0);
  auto no_command = testing::RunProcess({kWorker}, absl::Seconds(60), env);
  EXPECT_EQ(no_command.exit_code, 2);
  EXPECT_THAT(no_command.err, HasSubstr("usage"));

  env.env[0] = "ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":-1}}";
  auto bad_index = testing::RunProcess({kWorker, "--", "cat"}, absl::Seconds(60), env);
  EXPECT_EQ(bad_index.exit_code, 2);
  EXPECT_THAT(bad_index.err, HasSubstr("ELASTICBATCH_CONFIG"));
  EXPECT_THAT(bad_index.err, HasSubstr("negative"));

  env.unset_env.push_back("ELASTICBATCH_CONFIG");
  env.env.erase(env.env.begin());
  auto missing = testing::RunProcess({kWorker, "--", "cat"}, absl::Seconds(60), env);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("ELASTICBATCH_CONFIG"));
}

}  // namespace
}  // namespace elasticbatch
