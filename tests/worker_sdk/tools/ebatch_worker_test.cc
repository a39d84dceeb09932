// ebatch-worker processes against a real master on loopback.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

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

// The security contract through the environment alone: a token in
// ELASTICBATCH_TOKEN or in ELASTICBATCH_TOKEN_FILE, the master's CA in
// ELASTICBATCH_TLS_CA. The command never sees ELASTICBATCH_TOKEN (it would
// fail its shards). A worker trusting another CA fails at once, one line.
TEST(EbatchWorkerTest, TokenAndTlsFromTheEnvironmentAndTheCommandSeesNoToken) {
  testing::TempDir pki;
  absl::StatusOr<testing::TestCa> ca = testing::TestCa::Create(pki.path() + "/ca", "CA");
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<testing::CertPair> cert =
      ca->Issue(pki.path() + "/server", "aimaster", "IP:127.0.0.1");
  ASSERT_TRUE(cert.ok()) << cert.status();
  aimaster::MasterServerOptions server;
  server.worker_token = auth::GenerateToken();
  server.tls.cert_file = cert->cert_file;
  server.tls.key_file = cert->key_file;
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 700, Options(), absl::Milliseconds(20), server);
  testing::WriteFileOrDie(pki.path() + "/token", server.worker_token + "\n");

  const std::vector<std::string> command = {
      kWorker, "--", "if [ -n \"${ELASTICBATCH_TOKEN+x}\" ]; then exit 3; fi; cat"};
  testing::SubprocessOptions wrong_ca = WorkerEnv(master, 9);
  absl::StatusOr<testing::TestCa> other = testing::TestCa::Create(pki.path() + "/o", "O");
  ASSERT_TRUE(other.ok()) << other.status();
  wrong_ca.env.push_back("ELASTICBATCH_TOKEN=" + server.worker_token);
  wrong_ca.env.push_back("ELASTICBATCH_TLS_CA=" + other->cert_file());
  const testing::ProcessResult refused =
      testing::RunProcess(command, absl::Seconds(120), wrong_ca);
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("TLS"));
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;

  std::vector<testing::ProcessResult> results(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      testing::SubprocessOptions env = WorkerEnv(master, i);
      env.env.push_back(i == 0 ? "ELASTICBATCH_TOKEN=" + server.worker_token
                               : "ELASTICBATCH_TOKEN_FILE=" + pki.path() + "/token");
      env.env.push_back("ELASTICBATCH_TLS_CA=" + ca->cert_file());
      results[static_cast<size_t>(i)] =
          testing::RunProcess(command, absl::Seconds(120), env);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(OutputLines(master.output_dir()),
            Lines(files, [](absl::string_view l) { return std::string(l); }));
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

// The Python example, both ways: a process per shard, and one numbered-lines
// process per worker (it reads EBATCH_FRAMING).
TEST(EbatchWorkerTest, ThePythonExampleScoresEveryRecordOnceEitherWay) {
  MasterFixture::Files files;
  for (int f = 0; f < 3; ++f) {
    std::string content;
    for (int i = 0; i < 100; ++i) {
      absl::StrAppend(&content, "{\"id\":", f * 1000 + i, ",\"text\":\"",
                      i % 2 ? "great value" : "slow and broken", "\"}\n");
    }
    files.push_back({absl::StrCat("r", f, ".jsonl"), content});
  }
  const std::string script = std::string(EB_SOURCE_DIR) + "/examples/python/score.py";
  for (const bool persistent : {false, true}) {
    SCOPED_TRACE(persistent ? "persistent" : "per shard");
    MasterFixture master(files, 2000, Options());
    std::vector<std::string> args = {"--", "python3", "-u", script};
    if (persistent) args.insert(args.begin(), "--persistent");
    for (const auto& r : RunWorkers(master, 2, args)) EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> ids;
    for (const std::string& line : OutputLines(master.output_dir())) {
      EXPECT_THAT(line, ::testing::AnyOf(HasSubstr("\"label\": \"positive\""),
                                         HasSubstr("\"label\": \"negative\"")));
      ids.push_back(line.substr(0, line.find(',')));
    }
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids.size(), 300u);
    EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end());
  }
}

// Issue 10: the words after `--` were joined with spaces; $PAI_USER_ARGS now
// gives each hyperparameter value as one argument.
TEST(EbatchWorkerTest, CommandWordsAndUserArgsArriveWhole) {
  const MasterFixture::Files files = NumberFiles();
  MasterFixture master(files, 100000, Options());
  testing::SubprocessOptions env = WorkerEnv(master, 0);
  env.env.push_back("PAI_USER_ARGS=--prompt 'a b*'");
  auto r = testing::RunProcess(
      {kWorker, "--", "sh", "-c", "cat >/dev/null; printf '[%s]\\n' \"$@\"", "sh",
       "$PAI_USER_ARGS", "c d*"},
      absl::Seconds(120), env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      testing::ReadFileOrEmpty(master.output_dir() + "/" + master.shards().OutputName(0)),
      "[--prompt]\n[a b*]\n[c d*]\n");
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
  const auto results =
      RunWorkers(master, 2, {"--persistent", "--framing=lines", "--", "python3", path});
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

TEST(EbatchWorkerTest, BadProtocolAndGraceFlagsExitWithCode2) {
  testing::SubprocessOptions env;
  env.unset_env = {"ELASTICBATCH_STOP_GRACE"};
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Case& c :
       std::vector<Case>{{{"--persistent", "--framing=none"}, "--framing must be"},
                         {{"--ready-line=READY"}, "need --persistent"},
                         {{"--framing=index"}, "need --persistent"},
                         {{"--framing=lines"}, "need --persistent"},
                         {{"--stop-grace=soon"}, "--stop-grace: 'soon'"},
                         {{"--persistent", "--ready-timeout=0s"}, "must be positive"}}) {
    std::vector<std::string> argv = {kWorker};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    argv.insert(argv.end(), {"--", "cat"});
    auto r = testing::RunProcess(argv, absl::Seconds(60), env);
    EXPECT_EQ(r.exit_code, 2) << c.args[0];
    EXPECT_THAT(r.err, HasSubstr(c.error));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  env.env = {"ELASTICBATCH_STOP_GRACE=-1s"};
  auto r = testing::RunProcess({kWorker, "--", "cat"}, absl::Seconds(60), env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("ELASTICBATCH_STOP_GRACE: '-1s'"));
}

// ---------------------------------------------------------------------------
// --persistent: nothing of one shard may land in another's output.

// Input files, one per shard (shard bytes >= file size; files sorted by name =
// shard order) of numbered records "rec <f*1000+i>".
MasterFixture::Files SmallFiles(int files, int lines) {
  MasterFixture::Files out;
  for (int f = 0; f < files; ++f) {
    std::string content;
    for (int i = 0; i < lines; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
    out.push_back({absl::StrCat("part-", f, ".txt"), content});
  }
  return out;
}

// Every committed part file holds exactly the lines of its own shard (a whole
// input file), through `map`, in order. Returns the ids of committed shards.
std::vector<uint64_t> ExpectEveryPartHoldsItsOwnShard(
    const MasterFixture& master,
    const std::function<std::string(absl::string_view)>& map) {
  std::vector<uint64_t> committed;
  for (uint64_t id = 0; id < master.shards().shard_count(); ++id) {
    const std::string part = master.output_dir() + "/" + master.shards().OutputName(id);
    if (!std::filesystem::exists(part)) continue;
    committed.push_back(id);
    const auto d = master.shards().Describe(id);
    const std::string input =
        testing::ReadFileOrEmpty(absl::StrCat(master.input_dir(), "/", *d.source));
    EXPECT_EQ(d.begin, 0u);
    EXPECT_EQ(d.end, input.size()) << "a shard must be a whole file here";
    std::string expected;
    for (absl::string_view l : absl::StrSplit(input, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&expected, map(l), "\n");
    }
    EXPECT_EQ(testing::ReadFileOrEmpty(part), expected)
        << "shard " << id << " (" << *d.source << ")";
  }
  return committed;
}

std::string Identity(absl::string_view l) { return std::string(l); }

std::string WriteScript(const MasterFixture& master, const std::string& name,
                        const std::string& text) {
  const std::string path = absl::StrCat(master.output_dir(), "_", name);
  testing::WriteFileOrDie(path, text);
  return path;
}

TEST(EbatchWorkerTest, PersistentWriteErrorFailsThatShardAndRestartsTheCommand) {
  // Shard 0's output outgrows the file size limit (32 KiB) a little: the write
  // fails while some of its answers are still on their way. They must not end
  // up in the next shard's output.
  MasterFixture::Files files;
  std::string big;
  for (int i = 0; i < 3840; ++i)
    absl::StrAppend(&big, absl::Dec(i, absl::kZeroPad5), "bigr\n");
  files.push_back({"a-big.txt", big});  // 38,400 bytes
  for (auto& f : SmallFiles(6, 300)) files.push_back({"b-" + f.first, f.second});
  CoordinatorOptions options = Options();
  options.max_attempts = 2;
  options.max_failed_shards = 1;
  MasterFixture master(files, 1 << 20, options);
  testing::SubprocessOptions env = WorkerEnv(master, 0);
  auto r = testing::RunProcess({"/bin/sh", "-c",
                                absl::StrCat("trap '' XFSZ; ulimit -f 64; exec ", kWorker,
                                             " --persistent -- cat")},
                               absl::Seconds(120), env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(master.Finish().ok());
  EXPECT_THAT(r.err, HasSubstr("File too large"));
  const std::vector<uint64_t> committed =
      ExpectEveryPartHoldsItsOwnShard(master, Identity);
  EXPECT_EQ(committed, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_THAT(testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl"),
              HasSubstr("\"shard\":0,"));
}

TEST(EbatchWorkerTest, PersistentBannerWithoutReadyLineFailsLoudlyAndShiftsNothing) {
  // Loads for a second, then prints a banner on stdout: registered long
  // before, the worker has fed it a shard, so the banner arrives where an
  // answer is expected.
  const MasterFixture::Files files = SmallFiles(2, 300);  // 2,700 bytes a shard
  CoordinatorOptions options = Options();
  options.max_attempts = 1;
  options.max_failed_shards = 2;
  // Numbered lines (the default) and plain lines: loud either way.
  for (const char* framing : {"--framing=index", "--framing=lines"}) {
    SCOPED_TRACE(framing);
    MasterFixture master(files, 1 << 20, options);
    const auto results = RunWorkers(
        master, 1,
        {"--persistent", framing, "--", "sleep 1; echo model loaded; exec cat"});
    EXPECT_EQ(results[0].exit_code, 0) << results[0].err;
    ASSERT_TRUE(master.Finish().ok());
    ExpectEveryPartHoldsItsOwnShard(master, Identity);
    const std::string dead =
        testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
    EXPECT_THAT(dead, HasSubstr("model loaded"));
    EXPECT_THAT(dead, HasSubstr("--ready-line"));
  }
}

TEST(EbatchWorkerTest, PersistentBannerIsHarmlessWithReadyLine) {
  const MasterFixture::Files files = SmallFiles(3, 300);
  MasterFixture master(files, 1 << 20, Options());
  const auto results = RunWorkers(
      master, 2,
      {"--persistent", "--ready-line", "model loaded", "--",
       "echo loading weights; sleep 1; echo model loaded; exec sed -u s/rec/out/"});
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr("loading weights"));  // the banner, on stderr
  }
  const auto out = [](absl::string_view l) { return absl::StrCat("out", l.substr(3)); };
  EXPECT_EQ(ExpectEveryPartHoldsItsOwnShard(master, out).size(), files.size());
  EXPECT_EQ(OutputLines(master.output_dir()), Lines(files, out));
  for (int c : master.CommitsPerShard()) EXPECT_EQ(c, 1);
}

TEST(EbatchWorkerTest, PersistentExtraLineMidShardIsCaught) {
  // Answers a whole read at once (one atomic write), with an extra line after
  // one record: a shard's worth of answers plus one.
  const MasterFixture::Files files = SmallFiles(3, 300);
  CoordinatorOptions options = Options();
  options.max_attempts = 2;
  options.max_failed_shards = 1;
  MasterFixture master(files, 1 << 20, options);
  const std::string script =
      WriteScript(master, "extra.py",
                  "import os\n"
                  "while True:\n"
                  "    data = os.read(0, 1 << 16)\n"
                  "    if not data:\n"
                  "        break\n"
                  "    out = []\n"
                  "    for line in data.decode().splitlines():\n"
                  "        out.append(line)\n"
                  "        if line == 'rec 1100':\n"
                  "            out.append('debug: odd record')\n"
                  "    os.write(1, ('\\n'.join(out) + '\\n').encode())\n");
  const auto results =
      RunWorkers(master, 1, {"--persistent", "--framing=lines", "--", "python3", script});
  EXPECT_EQ(results[0].exit_code, 0) << results[0].err;
  ASSERT_TRUE(master.Finish().ok());
  EXPECT_EQ(ExpectEveryPartHoldsItsOwnShard(master, Identity),
            (std::vector<uint64_t>{0, 2}));
  const std::string dead =
      testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
  EXPECT_THAT(dead, HasSubstr("\"shard\":1,"));
  EXPECT_THAT(dead, HasSubstr("while no record was outstanding"));
}

TEST(EbatchWorkerTest, FramingIndexStripsTheNumbersAndCatchesShiftsOfAnyKind) {
  const MasterFixture::Files files = SmallFiles(4, 200);
  CoordinatorOptions options = Options();
  options.max_attempts = 2;
  options.max_failed_shards = 3;
  MasterFixture master(files, 1 << 20, options);
  // Echoes "<n>\t<record>" back, except: file 1 swaps two answers, file 2
  // drops one, file 3 prints a line of its own in between.
  const std::string script =
      WriteScript(master, "framed.py",
                  "import sys\n"
                  "held = None\n"
                  "for line in sys.stdin:\n"
                  "    n, record = line.rstrip('\\n').split('\\t', 1)\n"
                  "    if record == 'rec 1100':\n"
                  "        held = line\n"
                  "        continue\n"
                  "    if record == 'rec 2100':\n"
                  "        continue\n"
                  "    if record == 'rec 3100':\n"
                  "        print('warming up the cache')\n"
                  "    print(n + '\\t' + record.upper(), flush=True)\n"
                  "    if held is not None:\n"
                  "        hn, hrecord = held.rstrip('\\n').split('\\t', 1)\n"
                  "        print(hn + '\\t' + hrecord.upper(), flush=True)\n"
                  "        held = None\n");
  const auto results =
      RunWorkers(master, 1, {"--persistent", "--framing=index", "--", "python3", script});
  EXPECT_EQ(results[0].exit_code, 0) << results[0].err;
  ASSERT_TRUE(master.Finish().ok());
  EXPECT_EQ(
      ExpectEveryPartHoldsItsOwnShard(
          master, [](absl::string_view l) { return absl::StrCat("REC", l.substr(3)); }),
      (std::vector<uint64_t>{0}));
  const std::string dead =
      testing::ReadFileOrEmpty(master.output_dir() + "/_quarantine.jsonl");
  EXPECT_THAT(dead, HasSubstr("does not start with"));
  EXPECT_THAT(dead, HasSubstr("REC 1101"));              // out of order
  EXPECT_THAT(dead, HasSubstr("REC 2101"));              // dropped
  EXPECT_THAT(dead, HasSubstr("warming up the cache"));  // a stray line
}

TEST(EbatchWorkerTest, ReadyLineFailuresExitOneWithOneLine) {
  testing::SubprocessOptions env;
  env.env = {"ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":0}}",
             "AIMASTER_ADDR=127.0.0.1:1", "ELASTICBATCH_LOG_LEVEL=warn"};
  auto exited = testing::RunProcess(
      {kWorker, "--persistent", "--ready-line=READY", "--", "echo banner; exit 3"},
      absl::Seconds(60), env);
  EXPECT_EQ(exited.exit_code, 1);
  EXPECT_THAT(exited.err,
              HasSubstr("exited (status 3) before printing the ready line \"READY\""));
  EXPECT_THAT(exited.err, HasSubstr("banner"));
  auto late = testing::RunProcess({kWorker, "--persistent", "--ready-line=READY",
                                   "--ready-timeout=500ms", "--", "sleep 1000"},
                                  absl::Seconds(60), env);
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_THAT(late.err, HasSubstr("did not print the ready line \"READY\" within"));
  for (const testing::ProcessResult* r : {&exited, &late}) {
    EXPECT_EQ(std::count(r->err.begin(), r->err.end(), '\n'), r == &exited ? 2 : 1)
        << r->err;
  }
}

// ---------------------------------------------------------------------------
// Stops reach ebatch-worker and its command, whatever the command does.

// Live processes whose environment holds `marker`, by name.
std::multimap<std::string, int> ProcessesWith(const std::string& marker) {
  std::multimap<std::string, int> found;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    if (testing::ReadFileOrEmpty((e.path() / "environ").string()).find(marker) ==
        std::string::npos) {
      continue;
    }
    found.insert({std::string(absl::StripSuffix(
                      testing::ReadFileOrEmpty((e.path() / "comm").string()), "\n")),
                  pid});
  }
  return found;
}

// Waits (bounded, generously) until a process called `name` carries `marker`.
bool Running(const std::string& marker, const std::string& name) {
  return testing::WaitUntil(absl::Now() + absl::Seconds(60),
                            [&] { return ProcessesWith(marker).count(name) != 0; });
}

// Waits (bounded, generously) until no process carries `marker`.
bool AllGone(const std::string& marker) {
  return testing::WaitUntil(absl::Now() + absl::Seconds(60),
                            [&] { return ProcessesWith(marker).empty(); });
}

std::string Marker() { return absl::StrCat("EB_EBATCH_TEST=", std::random_device{}()); }

// A per-shard command that closes stdout and stderr and lives on.
constexpr char kClosesItsPipes[] = "exec >&- 2>&-; exec sleep 1000";

TEST(EbatchWorkerTest, SigtermStopsAPerShardCommandThatClosedItsPipes) {
  const MasterFixture::Files files = SmallFiles(1, 10);
  MasterFixture master(files, 1 << 20, Options());
  testing::SubprocessOptions env = WorkerEnv(master, 0);
  const std::string marker = Marker();
  env.env.push_back(marker);
  auto worker = testing::Subprocess::Start({kWorker, "--", kClosesItsPipes}, env);
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE(Running(marker, "sleep"));
  kill((*worker)->pid(), SIGTERM);  // ebatch-worker alone, as a launcher would
  EXPECT_EQ((*worker)->Wait(absl::Seconds(60)).value_or(-1), 128 + SIGTERM)
      << (*worker)->Stderr();
  EXPECT_TRUE(AllGone(marker));
}

TEST(EbatchWorkerTest, TheJobsEndStopsAPerShardCommandThatClosedItsPipes) {
  const MasterFixture::Files files = SmallFiles(1, 10);
  MasterFixture master(files, 1 << 20, Options());
  testing::SubprocessOptions env = WorkerEnv(master, 0);
  const std::string marker = Marker();
  env.env.push_back(marker);
  auto worker = testing::Subprocess::Start({kWorker, "--", kClosesItsPipes}, env);
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE(Running(marker, "sleep"));
  master.coordinator().Stop("stopped by the test");  // the master tells it END
  EXPECT_EQ((*worker)->Wait(absl::Seconds(60)).value_or(-1), 0) << (*worker)->Stderr();
  EXPECT_TRUE(AllGone(marker));
}

TEST(EbatchWorkerTest, PersistentCommandStartsBeforeRegistrationAndSigtermEndsTheWait) {
  // No master to register with: the command runs all the same (its load is
  // start-up time), and a stop ends the wait at once.
  testing::TempDir dir;
  testing::SubprocessOptions env;
  const std::string marker = Marker();
  env.env = {"ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":0}}",
             "AIMASTER_ADDR=127.0.0.1:1", marker};
  auto worker = testing::Subprocess::Start(
      {kWorker, "--persistent", "--master-lost-timeout=1h", "--",
       absl::StrCat("touch ", dir.path(), "/loading; exec sleep 1000")},
      env);
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE(Running(marker, "sleep"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/loading"));
  kill((*worker)->pid(), SIGTERM);
  EXPECT_EQ((*worker)->Wait(absl::Seconds(60)).value_or(-1), 128 + SIGTERM)
      << (*worker)->Stderr();
  EXPECT_TRUE(AllGone(marker));
}

TEST(EbatchWorkerTest, SigtermEndsTheWaitForTheReadyLine) {
  testing::SubprocessOptions env;
  const std::string marker = Marker();
  env.env = {"ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":0}}",
             "AIMASTER_ADDR=127.0.0.1:1", marker};
  auto worker = testing::Subprocess::Start(
      {kWorker, "--persistent", "--ready-line=READY", "--", "exec sleep 1000"}, env);
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE(Running(marker, "sleep"));
  kill((*worker)->pid(), SIGINT);
  EXPECT_EQ((*worker)->Wait(absl::Seconds(60)).value_or(-1), 128 + SIGINT)
      << (*worker)->Stderr();
  EXPECT_TRUE(AllGone(marker));
}

}  // namespace
}  // namespace elasticbatch
