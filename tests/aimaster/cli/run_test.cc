// `aimaster run` with real worker processes on loopback: slow starters get
// backups, killed workers restart, hopeless ones use up their restarts, the
// job stops early, stragglers are duplicated, and nothing outlives the master.
// Every test checks the output holds each input record exactly once (or says
// why not).
#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using ::testing::HasSubstr;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";
const std::string kWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // 4 files of numbered records; with 1 KiB shards about 28 shards.
    for (int f = 0; f < 4; ++f) {
      std::string content;
      for (int i = 0; i < 200; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
      testing::WriteFileOrDie(absl::StrCat(in(), "/part-", f, ".txt"), content);
      for (absl::string_view l : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
        expected_.emplace_back(l);
      }
    }
    std::sort(expected_.begin(), expected_.end());
  }

  std::string in() const { return dir_.path() + "/in"; }
  std::string job() const { return dir_.path() + "/job"; }
  std::string out() const { return job() + "/output/out"; }

  // A worker script: `prelude` (shell, INDEX and ATTEMPT set), then exec
  // ebatch-worker with `worker_args` running `shard_cmd` per shard.
  std::string Script(const std::string& prelude, const std::string& shard_cmd,
                     const std::string& worker_args = "") {
    const std::string path = absl::StrCat(dir_.path(), "/worker-", ++scripts_, ".sh");
    testing::WriteFileOrDie(
        path, absl::StrCat("#!/bin/sh\n",
                           "INDEX=$(echo \"$ELASTICBATCH_CONFIG\" | sed "
                           "'s/.*\"index\":\\([0-9]*\\).*/\\1/')\n",
                           "ATTEMPT=$ELASTICBATCH_ATTEMPT\n", prelude, "\n", "exec ",
                           kWorker, " ", worker_args, " -- '", shard_cmd, "'\n"));
    return absl::StrCat("sh ", path);
  }

  testing::ProcessResult Run(std::vector<std::string> flags, const std::string& command,
                             const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {kAimaster,
                                     "run",
                                     "--job-dir",
                                     job(),
                                     "--input",
                                     "data=" + in(),
                                     "--output",
                                     "out",
                                     "--shard-bytes=1K",
                                     "--heartbeat-interval=200ms",
                                     "--lease-timeout=10s",
                                     "--stop-grace=5s"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.push_back(command);
    testing::SubprocessOptions options;
    options.env = env;
    options.unset_env = {"ELASTICBATCH_CONFIG", "ElASTICBATCH_CONFIG"};
    testing::ProcessResult r = testing::RunProcess(argv, absl::Seconds(180), options);
    ParseSummary();
    return r;
  }

  // Reads <job>/summary.json, when the run got far enough to write it.
  // Starts `aimaster run` without waiting; `marker` ("NAME=VALUE") tags every
  // process of the job through its environment.
  absl::StatusOr<std::unique_ptr<testing::Subprocess>> StartInBackground(
      const std::string& marker, std::vector<std::string> flags,
      const std::string& command) {
    std::vector<std::string> argv = {kAimaster, "run",          "--job-dir", job(),
                                     "--input", "data=" + in(), "--output",  "out"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.push_back(command);
    testing::SubprocessOptions o;
    o.env = {marker};
    o.unset_env = {"ELASTICBATCH_CONFIG", "ElASTICBATCH_CONFIG"};
    return testing::Subprocess::Start(argv, o);
  }

  void ParseSummary() {
    summary_.Clear();
    const std::string json = testing::ReadFileOrEmpty(job() + "/summary.json");
    if (json.empty()) return;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &summary_).ok())
        << json;
  }
  const google::protobuf::Value& Field(const std::string& name) const {
    return summary_.fields().at(name);
  }
  const google::protobuf::Struct& WorkerSummary(int index) const {
    return Field("workers").list_value().values(index).struct_value();
  }
  static double Num(const google::protobuf::Struct& s, const std::string& name) {
    return s.fields().at(name).number_value();
  }
  static std::string Str(const google::protobuf::Struct& s, const std::string& name) {
    return s.fields().at(name).string_value();
  }
  static const google::protobuf::Struct& Attempt(const google::protobuf::Struct& w,
                                                 int k) {
    return w.fields().at("attempts").list_value().values(k).struct_value();
  }
  static int Attempts(const google::protobuf::Struct& w) {
    return w.fields().at("attempts").list_value().values_size();
  }

  std::vector<std::string> OutputLines() const {
    std::vector<std::string> lines;
    for (const auto& e : std::filesystem::directory_iterator(out())) {
      if (!absl::StartsWith(e.path().filename().string(), "part-")) continue;
      for (absl::string_view l : absl::StrSplit(
               testing::ReadFileOrEmpty(e.path().string()), '\n', absl::SkipEmpty())) {
        lines.emplace_back(l);
      }
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  // (shard, attempt, worker) of every manifest line.
  std::vector<std::tuple<int, int, int>> Manifest() const {
    std::vector<std::tuple<int, int, int>> rows;
    auto number = [](absl::string_view line, absl::string_view key) {
      const size_t at = line.find(absl::StrCat("\"", key, "\":")) + key.size() + 3;
      int v = -1;
      (void)absl::SimpleAtoi(line.substr(at, line.find_first_of(",}", at) - at), &v);
      return v;
    };
    const std::string manifest = testing::ReadFileOrEmpty(out() + "/_manifest.jsonl");
    for (absl::string_view l : absl::StrSplit(manifest, '\n', absl::SkipEmpty())) {
      rows.push_back({number(l, "shard"), number(l, "attempt"), number(l, "worker")});
    }
    return rows;
  }

  void ExpectEveryRecordExactlyOnce() {
    EXPECT_EQ(OutputLines(), expected_);
    std::map<int, int> per_shard;
    for (const auto& [shard, attempt, worker] : Manifest()) ++per_shard[shard];
    EXPECT_EQ(per_shard.size(),
              static_cast<size_t>(Field("total_shards").number_value()));
    for (const auto& [shard, n] : per_shard) EXPECT_EQ(n, 1) << "shard " << shard;
  }

  testing::TempDir dir_;
  std::vector<std::string> expected_;
  google::protobuf::Struct summary_;
  int scripts_ = 0;
};

TEST_F(RunTest, ASlowStarterIsReplacedByABackup) {
  // Attempt 0 of worker 0 never gets going; its backup does.
  // The data takes the other worker a few seconds: longer than the timeout.
  const std::string cmd =
      Script("if [ \"$INDEX\" = 0 ] && [ \"$ATTEMPT\" = 0 ]; then exec sleep 1000; fi",
             "sleep 0.2; cat");
  auto r = Run({"--workers=2", "--startup-timeout=1s"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& w0 = WorkerSummary(0);
  EXPECT_EQ(Num(w0, "backups"), 1);
  ASSERT_EQ(Attempts(w0), 2);
  EXPECT_EQ(Str(Attempt(w0, 0), "state"), "stopped");
  EXPECT_THAT(Str(Attempt(w0, 0), "detail"),
              HasSubstr("lost the start race to attempt 1"));
  EXPECT_TRUE(Attempt(w0, 1).fields().at("backup").bool_value());
  EXPECT_EQ(Str(Attempt(w0, 1), "state"), "succeeded");
  EXPECT_EQ(Num(WorkerSummary(1), "backups"), 0);
  EXPECT_THAT(r.out, HasSubstr("backups"));  // the summary table
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, AWorkerKilledMidShardIsRestartedAndItsShardRedoneOnce) {
  // The first time any worker is on shard 3, it SIGKILLs itself mid-shard.
  const std::string mark = dir_.path() + "/killed";
  const std::string cmd = Script(
      "",
      absl::StrCat(
          "if [ \"$SHARD_ID\" = 3 ] && mkdir ", mark,
          " 2>/dev/null; then head -c 10 >/dev/null; kill -9 $PPID; sleep 5; fi; cat"));
  auto r = Run({"--workers=2", "--restart-backoff=100ms"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int restarts = 0, killed = 0;
  for (int i = 0; i < 2; ++i) {
    const auto& w = WorkerSummary(i);
    restarts += static_cast<int>(Num(w, "restarts"));
    for (int k = 0; k < Attempts(w); ++k) {
      const auto& exit_code = Attempt(w, k).fields().at("exit_code");
      if (exit_code.has_number_value() && exit_code.number_value() == 128 + SIGKILL)
        ++killed;
    }
  }
  EXPECT_EQ(restarts, 1);
  EXPECT_EQ(killed, 1);
  for (const auto& [shard, attempt, worker] : Manifest()) {
    if (shard == 3) {
      EXPECT_GE(attempt, 2) << "shard 3 must have been redone";
    }
  }
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, AFrozenWorkerMissesItsHeartbeatsAndIsReplaced) {
  // Worker 0's first attempt freezes itself (SIGSTOP) on its first shard: no
  // more heartbeats. It must be declared failed, killed, and restarted.
  const std::string cmd = Script(
      "export INDEX ATTEMPT",
      "if [ \"$INDEX\" = 0 ] && [ \"$ATTEMPT\" = 0 ]; then kill -STOP $PPID; fi; "
      "sleep 0.3; cat");  // about 8s of work: the timeout strikes long before the end
  auto r = Run({"--workers=2", "--heartbeat-timeout=2s", "--stop-grace=1s",
                "--restart-backoff=100ms"},
               cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& w0 = WorkerSummary(0);
  ASSERT_GE(Attempts(w0), 2);
  EXPECT_EQ(Num(w0, "restarts"), 1);
  EXPECT_EQ(Str(Attempt(w0, 0), "state"), "failed");
  EXPECT_THAT(Str(Attempt(w0, 0), "detail"), HasSubstr("no heartbeat for"));
  const double killed_with = Attempt(w0, 0).fields().at("exit_code").number_value();
  EXPECT_TRUE(killed_with == 128 + SIGKILL || killed_with == 128 + SIGTERM)
      << killed_with;
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, AWorkerThatAlwaysFailsUsesUpItsRestartsAndTheJobSaysSo) {
  auto r = Run({"--workers=2", "--max-restarts=2", "--restart-backoff=50ms"},
               "echo model file missing >&2; exit 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Field("state").string_value(), "failed");
  EXPECT_THAT(Field("reason").string_value(), HasSubstr("every worker is gone"));
  EXPECT_THAT(Field("reason").string_value(),
              HasSubstr("exited with status 1 (2 restarts used)"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Num(WorkerSummary(i), "restarts"), 2);
    EXPECT_EQ(Attempts(WorkerSummary(i)), 3);
    EXPECT_EQ(Str(WorkerSummary(i), "state"), "failed");
  }
  EXPECT_THAT(testing::ReadFileOrEmpty(out() + "/_FAILED"),
              HasSubstr("every worker is gone"));
  EXPECT_THAT(testing::ReadFileOrEmpty(job() + "/logs/worker-0-2.log"),
              HasSubstr("model file missing"));
  EXPECT_TRUE(OutputLines().empty());
}

TEST_F(RunTest, ExitCodePolicyDoesNotRestartPermanentFailures) {
  auto r = Run({"--workers=1", "--restart-policy=exit-code", "--restart-backoff=50ms"},
               "exit 2");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Attempts(WorkerSummary(0)), 1);
  EXPECT_THAT(Str(WorkerSummary(0), "failure"), HasSubstr("not retryable"));
}

TEST_F(RunTest, EarlyStopNeverWaitsForWorkersThatWouldStartAfterTheData) {
  // Workers 4..7 would register only long after the data is done. With a
  // huge stop grace, waiting for them would hang: the job must stop them.
  const std::string cmd =
      Script("if [ \"$INDEX\" -ge 4 ]; then exec sleep 1000; fi", "cat");
  auto r = Run({"--workers=8", "--startup-timeout=1000s", "--stop-grace=1000s"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 4; i < 8; ++i) {
    const auto& w = WorkerSummary(i);
    EXPECT_EQ(Num(w, "shards"), 0) << "worker " << i;
    ASSERT_EQ(Attempts(w), 1);
    EXPECT_EQ(Str(Attempt(w, 0), "state"), "stopped");
    EXPECT_THAT(Str(Attempt(w, 0), "detail"),
                HasSubstr("all data was done before it registered"));
  }
  int busy = 0;
  for (int i = 0; i < 4; ++i) busy += Num(WorkerSummary(i), "shards") > 0 ? 1 : 0;
  EXPECT_GE(busy, 1);
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, InstancesNotYetStartedAreNeverStarted) {
  // One launch every 20s: the first worker finishes all data long before the next.
  auto r = Run({"--workers=5", "--start-interval=20s"}, Script("", "cat"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Attempts(WorkerSummary(0)), 1);
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(Attempts(WorkerSummary(i)), 0) << "worker " << i << " was started";
    EXPECT_EQ(Str(WorkerSummary(i), "state"), "stopped");
  }
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, AStragglersShardIsDuplicatedAndTheDuplicateWins) {
  // Worker 0 would take 200x as long per shard as the others: in effect it
  // finishes a shard only if nobody else does, so the job ends only through a
  // duplicate, however slow the machine. The others start their first shard
  // only once worker 0 has started one (the marker file): otherwise a worker 0
  // that starts late (sanitizers, a busy machine) could find no shard left.
  // No prefetching, so nothing unstarted can be handed over instead: only a
  // duplicate helps.
  const std::string started = dir_.path() + "/straggler-started";
  const std::string cmd =
      Script("if [ \"$INDEX\" = 0 ]; then export STRAGGLER=1; fi",
             absl::StrCat("if [ -n \"$STRAGGLER\" ]; then touch ", started,
                          "; sleep 60; else while [ ! -e ", started,
                          " ]; do sleep 0.05; done; sleep 0.3; fi; cat"),
             "--prefetch=0");
  auto r = Run({"--workers=3", "--shard-bytes=600"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The straggler lost a shard it was working on to a speculative duplicate...
  const std::string straggler_log =
      testing::ReadFileOrEmpty(job() + "/logs/worker-0-0.log");
  EXPECT_THAT(straggler_log, HasSubstr("lease lost"));
  // ...which another worker committed.
  bool duplicate_won = false;
  for (const auto& [shard, attempt, worker] : Manifest()) {
    if (attempt >= 2 && worker != 0) duplicate_won = true;
  }
  EXPECT_TRUE(duplicate_won);
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, WithoutSpeculationTheStragglerFinishesItsOwnShards) {
  // No prefetching: nothing unstarted can be handed over either.
  const std::string cmd =
      Script("if [ \"$INDEX\" = 0 ]; then export DELAY=2; else export DELAY=0.2; fi",
             "sleep $DELAY; cat", "--prefetch=0");
  auto r = Run({"--workers=3", "--shard-bytes=600", "--no-speculation"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(testing::ReadFileOrEmpty(job() + "/logs/worker-0-0.log"),
              ::testing::Not(HasSubstr("lease lost")));
  for (const auto& [shard, attempt, worker] : Manifest()) EXPECT_EQ(attempt, 1);
  ExpectEveryRecordExactlyOnce();
}

TEST_F(RunTest, AnIdleWorkerTakesAShardTheStragglerPrefetchedButNeverStarted) {
  // Worker 0 takes 20x as long per shard and holds one prefetched shard; the
  // others run out of work (about 1 s) long before it would start that shard.
  const std::string cmd =
      Script("if [ \"$INDEX\" = 0 ]; then export DELAY=4; else export DELAY=0.2; fi",
             "sleep $DELAY; cat");
  auto r = Run({"--workers=3", "--shard-bytes=600", "--no-speculation"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The straggler lost no shard it had started...
  EXPECT_THAT(testing::ReadFileOrEmpty(job() + "/logs/worker-0-0.log"),
              ::testing::Not(HasSubstr("lease lost")));
  // ...and another worker committed a second attempt of one of its shards.
  bool handed_over = false;
  for (const auto& [shard, attempt, worker] : Manifest()) {
    if (attempt >= 2 && worker != 0) handed_over = true;
  }
  EXPECT_TRUE(handed_over);
  ExpectEveryRecordExactlyOnce();
}

// Processes whose environment holds `marker` (named `name`, when given).
std::vector<int> ProcessesWith(const std::string& marker, const std::string& name = "") {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(marker) == std::string::npos) continue;
    if (!name.empty() &&
        absl::StripSuffix(testing::ReadFileOrEmpty((e.path() / "comm").string()), "\n") !=
            name) {
      continue;
    }
    pids.push_back(pid);
  }
  return pids;
}

TEST_F(RunTest, NoWorkerOutlivesAKilledMaster) {
  const std::string marker = absl::StrCat("EB_ORPHAN_TEST=", std::random_device{}());
  // Workers start a background grandchild and a shard command that hangs.
  const std::string cmd = Script("sleep 1000 &", "sleep 1000; cat");
  auto p = StartInBackground(marker, {"--workers=2"}, cmd);
  ASSERT_TRUE(p.ok());
  // Wait until both workers are busy: each has its background grandchild and
  // its shard command sleeping (short-lived helpers of the script also carry
  // the marker, so count the sleeps).
  testing::WaitUntil(absl::Now() + absl::Seconds(60),
                     [&] { return ProcessesWith(marker, "sleep").size() >= 4; });
  ASSERT_GE(ProcessesWith(marker, "sleep").size(), 4u);
  (*p)->Signal(SIGKILL);  // the whole master group, as a crash or OOM kill would
  EXPECT_EQ(*(*p)->Wait(absl::Seconds(30)), 128 + SIGKILL);
  std::vector<int> left;
  testing::WaitUntil(absl::Now() + absl::Seconds(60),
                     [&] { return (left = ProcessesWith(marker)).empty(); });
  EXPECT_TRUE(left.empty()) << left.size() << " processes outlived the master";
}

TEST_F(RunTest, AnInterruptedRunStopsItsWorkersAndSaysSo) {
  const std::string marker = absl::StrCat("EB_INTERRUPT_TEST=", std::random_device{}());
  auto p = StartInBackground(marker, {"--workers=2", "--stop-grace=2s"},
                             Script("", "sleep 1000; cat"));
  ASSERT_TRUE(p.ok());
  testing::WaitUntil(absl::Now() + absl::Seconds(60),
                     [&] { return ProcessesWith(marker, "sleep").size() >= 2; });
  ASSERT_EQ(ProcessesWith(marker, "sleep").size(), 2u);
  kill((*p)->pid(), SIGINT);  // Ctrl-C reaches the master only
  EXPECT_EQ(*(*p)->Wait(absl::Seconds(60)), 128 + SIGINT);
  // Whatever the workers started goes with them (a guard may take a moment).
  testing::WaitUntil(absl::Now() + absl::Seconds(30),
                     [&] { return ProcessesWith(marker).empty(); });
  EXPECT_TRUE(ProcessesWith(marker).empty());
  EXPECT_THAT(testing::ReadFileOrEmpty(out() + "/_FAILED"), HasSubstr("interrupted"));
}

// Issue 10: PAI_USER_ARGS was an unquoted join (a value with spaces split,
// glob characters expanded under sh -c) and the words after `--` were joined
// with spaces, losing their quoting. Every value arrives as one argument now.
TEST_F(RunTest, HyperparametersAndCommandWordsArriveAsOneArgumentEach) {
  const std::string script_args = dir_.path() + "/script-args";
  const std::string word_args = dir_.path() + "/word-args";
  // One word: a shell command; $PAI_USER_ARGS in it gives each value whole.
  Run({"--workers=1", "--max-restarts=0", "--hp", "prompt=a b*", "--hp", "n=2"},
      absl::StrCat("printf '[%s]\\n' $PAI_USER_ARGS > ", script_args));
  EXPECT_EQ(testing::ReadFileOrEmpty(script_args), "[--prompt]\n[a b*]\n[--n]\n[2]\n");
  // Several words: each arrives as given, $NAME references expanded.
  std::vector<std::string> argv = {
      kAimaster,     "run",
      "--job-dir",   job() + "-2",
      "--input",     "data=" + in(),
      "--output",    "out",
      "--workers=1", "--max-restarts=0",
      "--hp",        "prompt=a b*",
      "--hp",        "n=2",
      "--",          "sh",
      "-c",          "printf '[%s]\\n' \"$@\" > " + word_args,
      "sh",          "$PAI_USER_ARGS",
      "c d*",        "--n=$PAI_HPS_N"};
  testing::SubprocessOptions o;
  o.unset_env = {"ELASTICBATCH_CONFIG", "ElASTICBATCH_CONFIG"};
  testing::RunProcess(argv, absl::Seconds(120), o);
  EXPECT_EQ(testing::ReadFileOrEmpty(word_args),
            "[--prompt]\n[a b*]\n[--n]\n[2]\n[c d*]\n[--n=2]\n");
  // Scripts read it with eval; programs with shlex: the value is shell-quoted.
  const std::string env_file = dir_.path() + "/env";
  Run({"--workers=1", "--max-restarts=0", "--hp", "prompt=a b*"},
      absl::StrCat("printf '%s' \"$PAI_USER_ARGS\" > ", env_file));
  EXPECT_EQ(testing::ReadFileOrEmpty(env_file), "--prompt 'a b*'");
}

TEST_F(RunTest, CollidingNamesAreAConfigurationError) {
  auto r = Run({"--hp", "test_model=1", "--hp", "test-model=2"}, "true");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("'test_model' and 'test-model'"));
  testing::WriteFileOrDie(dir_.path() + "/other/x.txt", "x\n");
  auto channels = Run({"--input", "train-data=" + dir_.path() + "/other", "--input",
                       "train_data=" + dir_.path() + "/other"},
                      "true");
  EXPECT_EQ(channels.exit_code, 2);
  EXPECT_THAT(channels.err, HasSubstr("TRAIN_DATA"));
}

}  // namespace
}  // namespace elasticbatch
