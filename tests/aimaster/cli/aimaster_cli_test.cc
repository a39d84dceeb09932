// The aimaster binary's command-line contract: help, version, exit codes.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunProcess;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";

TEST(AimasterCliTest, HelpListsCommandsAndExitsZero) {
  auto r = RunProcess({kAimaster, "--help"}, absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage:"));
  EXPECT_THAT(r.out, HasSubstr("--log-level"));
}

TEST(AimasterCliTest, UnknownCommandIsAUsageError) {
  auto r = RunProcess({kAimaster, "frobnicate"}, absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'"));
}

TEST(AimasterCliTest, UnknownFlagIsAOneLineUsageError) {
  auto r = RunProcess({kAimaster, "version", "--bogus=1"}, absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "aimaster: unknown flag --bogus (see --help)\n");
}

TEST(AimasterCliTest, BadLogLevelIsAUsageError) {
  testing::SubprocessOptions options;
  options.env = {"ELASTICBATCH_LOG_LEVEL=chatty"};
  auto r = RunProcess({kAimaster, "version"}, absl::Seconds(60), options);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("ELASTICBATCH_LOG_LEVEL"));
}

class ServeConfigTest : public ::testing::Test {
 protected:
  ServeConfigTest() {
    testing::WriteFileOrDie(dir_.path() + "/in/a.txt", "one\ntwo\n");
    testing::WriteFileOrDie(dir_.path() + "/empty/e.txt", "");
  }
  // Runs `aimaster serve` with `args`; it must fail before serving.
  testing::ProcessResult Serve(std::vector<std::string> args) {
    args.insert(args.begin(), {kAimaster, "serve", "--port=0", "--host=127.0.0.1"});
    return RunProcess(args, absl::Seconds(60));
  }
  testing::TempDir dir_;
};

TEST_F(ServeConfigTest, ConfigurationErrorsEndWithOneLineAndExitCode2) {
  const std::string in = "data=" + dir_.path() + "/in";
  const std::string out = "out=" + dir_.path() + "/out";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--output", out}, "--input"},
      {{"--input", in}, "--output"},
      {{"--input", "data=" + dir_.path() + "/missing", "--output", out},
       "does not exist"},
      {{"--input", "data=" + dir_.path() + "/empty", "--output", out}, "no data"},
      {{"--input", in, "--output", "out=/proc/cannot-write"}, "output"},
      {{"--input", in, "--output", out, "--shard-bytes=12parsecs"}, "--shard-bytes"},
      {{"--input", in, "--output", out, "--shard-records=10"}, "--records"},
      {{"--input", in, "--output", out, "--lease-timeout=1s", "--heartbeat-interval=2s"},
       "--lease-timeout"},
      {{"--input", "no-equals-sign", "--output", out}, "NAME=PATH"},
      {{"--input", in, "--input", in, "--output", out}, "twice"},
      {{"--input", in, "--output", out, "--shard-input=other"}, "--shard-input"},
      {{"--input", in, "--output", out, "--max-attempts=0"}, "--max-attempts"},
  };
  for (const Case& c : cases) {
    testing::ProcessResult r = Serve(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "") << c.message;
  }
}

TEST_F(ServeConfigTest, AStateDirOfAnotherJobIsRefused) {
  const std::string state = "--state-dir=" + dir_.path() + "/state";
  testing::WriteFileOrDie(dir_.path() + "/in2/b.txt", "other\n");
  // Serve job A until it listens, then interrupt it: its journal stays.
  auto a =
      testing::Subprocess::Start({kAimaster, "serve", "--port=0", "--host=127.0.0.1",
                                  "--input", "data=" + dir_.path() + "/in", "--output",
                                  "out=" + dir_.path() + "/out", "--job-id=a", state});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->ReadStdoutLine(absl::Seconds(60)).ok()) << (*a)->Stderr();
  (*a)->Signal(SIGTERM);
  EXPECT_EQ(*(*a)->Wait(absl::Seconds(60)), 128 + SIGTERM);
  // Job B has other input: the state dir is not its own.
  auto b = Serve({"--input", "data=" + dir_.path() + "/in2", "--output",
                  "out=" + dir_.path() + "/out", state});
  EXPECT_EQ(b.exit_code, 2) << b.err;
  EXPECT_THAT(b.err, HasSubstr("another input layout"));

  // Same input, but another output: its _SUCCESS and manifest would name part
  // files that are not in its output.
  auto c = Serve({"--input", "data=" + dir_.path() + "/in", "--output",
                  "out=" + dir_.path() + "/out2", "--job-id=a", state});
  EXPECT_EQ(c.exit_code, 2) << c.err;
  EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << c.err;
  EXPECT_THAT(c.err, HasSubstr("belongs to another job"));
  EXPECT_THAT(c.err, HasSubstr("its output is " + dir_.path() +
                               "/out (this job: " + dir_.path() + "/out2)"));
  EXPECT_THAT(c.err, Not(HasSubstr("job id")));

  // Same input and output, another job id.
  auto d = Serve({"--input", "data=" + dir_.path() + "/in", "--output",
                  "out=" + dir_.path() + "/out", "--job-id=b", state});
  EXPECT_EQ(d.exit_code, 2) << d.err;
  EXPECT_THAT(d.err, HasSubstr("its job id is 'a' (this job: 'b')"));
  EXPECT_THAT(d.err, Not(HasSubstr("its output")));
  EXPECT_THAT(d.err, HasSubstr("--state-dir"));

  // The job it belongs to still opens it.
  auto again =
      testing::Subprocess::Start({kAimaster, "serve", "--port=0", "--host=127.0.0.1",
                                  "--input", "data=" + dir_.path() + "/in", "--output",
                                  "out=" + dir_.path() + "/out", "--job-id=a", state});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->ReadStdoutLine(absl::Seconds(60)).ok()) << (*again)->Stderr();
  (*again)->Signal(SIGTERM);
  EXPECT_EQ(*(*again)->Wait(absl::Seconds(60)), 128 + SIGTERM);
}

// Issue 10, item 6: a new job's workers ended at once on an earlier job's
// _SUCCESS left in the output. A new job refuses such an output (and one that
// holds results: they would mix), before it creates its journal.
TEST_F(ServeConfigTest, AnOutputHoldingAnotherJobsVerdictOrResultsIsRefused) {
  const std::string out = dir_.path() + "/out";
  const std::vector<std::string> args = {"--input", "data=" + dir_.path() + "/in",
                                         "--output", "out=" + out};
  testing::WriteFileOrDie(out + "/_SUCCESS", "");
  auto r = Serve(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("_SUCCESS of another job"));
  EXPECT_FALSE(std::filesystem::exists(out + "/_state/journal"));
  std::filesystem::remove(out + "/_SUCCESS");
  testing::WriteFileOrDie(out + "/part-00000", "old results\n");
  r = Serve(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("part-00000"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Issue 10, item 4: `self -> .` in the input made one file 41 shards.
TEST_F(ServeConfigTest, AnInputWithALinkLoopIsAConfigurationError) {
  std::filesystem::create_directory_symlink(".", dir_.path() + "/in/self");
  auto r = Serve({"--input", "data=" + dir_.path() + "/in", "--output",
                  "out=" + dir_.path() + "/out"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("loop"));
  EXPECT_THAT(r.err, HasSubstr("/in/self -> ."));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

// Issue 10, item 11: termination signals were blocked from the start of main
// but only watched once the job was set up, so a long input scan could only
// be stopped with SIGKILL. Now a SIGTERM during set-up ends the command with
// 128+15 before it serves (or starts a worker).
class InterruptedSetUpTest : public ::testing::Test {
 protected:
  InterruptedSetUpTest() {
    // Enough files that the scan is still going when the signal arrives.
    for (int d = 0; d < 40; ++d) {
      for (int f = 0; f < 100; ++f) {
        testing::WriteFileOrDie(absl::StrCat(dir_.path(), "/in/d", d, "/f", f), "x\n");
      }
    }
  }

  // Starts `argv`, sends SIGTERM as soon as set-up has begun, returns the
  // process once it exited.
  std::unique_ptr<testing::Subprocess> InterruptDuringSetUp(
      const std::vector<std::string>& argv) {
    auto p = testing::Subprocess::Start(argv);
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return nullptr;
    testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
      return absl::StrContains((*p)->Stderr(), "scanning input");
    });
    EXPECT_THAT((*p)->Stderr(), HasSubstr("scanning input"));
    (*p)->Signal(SIGTERM);
    absl::StatusOr<int> code = (*p)->Wait(absl::Seconds(60));
    EXPECT_TRUE(code.ok());
    if (code.ok()) {
      EXPECT_EQ(*code, 128 + SIGTERM) << (*p)->Stderr();
    }
    return std::move(*p);
  }

  testing::TempDir dir_;
};

TEST_F(InterruptedSetUpTest, ServeStopsBeforeItListens) {
  auto p = InterruptDuringSetUp(
      {kAimaster, "serve", "--port=0", "--host=127.0.0.1", "--log-level=debug", "--input",
       "data=" + dir_.path() + "/in", "--output", "out=" + dir_.path() + "/out"});
  ASSERT_NE(p, nullptr);
  EXPECT_THAT(p->Stdout(), ::testing::Not(HasSubstr("listening on")));
  EXPECT_THAT(p->Stderr(), HasSubstr("interrupted during set-up"));
}

TEST_F(InterruptedSetUpTest, RunStartsNoWorker) {
  const std::string job = dir_.path() + "/job";
  auto p = InterruptDuringSetUp({kAimaster, "run", "--workers=2", "--log-level=debug",
                                 "--job-dir", job, "--input",
                                 "data=" + dir_.path() + "/in", "--output", "out", "--",
                                 "touch " + dir_.path() + "/worker-ran"});
  ASSERT_NE(p, nullptr);
  EXPECT_THAT(p->Stderr(), HasSubstr("interrupted during set-up"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/worker-ran"));
  EXPECT_FALSE(std::filesystem::exists(job + "/logs/worker-0-0.log"));
}

}  // namespace
}  // namespace elasticbatch
