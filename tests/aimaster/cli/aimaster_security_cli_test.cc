// The aimaster binary's security contract: serve refuses to be an open door,
// its token and TLS flags fail with one line when unusable, status and stop
// present their tokens (a worker token may read, only the admin token stops),
// TLS verification from the CLI, SIGHUP re-checks the certificate.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunProcess;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";
const std::string kEbatchWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";

size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

class AimasterSecurityCliTest : public ::testing::Test {
 protected:
  AimasterSecurityCliTest() {
    testing::WriteFileOrDie(dir_.path() + "/in/a.txt", "one\ntwo\nthree\n");
    worker_token_ = auth::GenerateToken();
    admin_token_ = auth::GenerateToken();
    testing::WriteFileOrDie(worker_file(), worker_token_ + "\n");
    testing::WriteFileOrDie(admin_file(), admin_token_ + "\n");
  }

  std::string worker_file() const { return dir_.path() + "/worker.token"; }
  std::string admin_file() const { return dir_.path() + "/admin.token"; }
  std::vector<std::string> JobArgs() const {
    return {"--input", "data=" + dir_.path() + "/in", "--output",
            "out=" + dir_.path() + "/out", "--state-dir=" + dir_.path() + "/state"};
  }

  // Runs `aimaster serve ARGS JOB`; it must fail before serving.
  testing::ProcessResult ServeFails(std::vector<std::string> args) {
    args.insert(args.begin(), {kAimaster, "serve", "--port=0"});
    for (const std::string& a : JobArgs()) args.push_back(a);
    return RunProcess(args, absl::Seconds(60));
  }

  // Starts `aimaster serve ARGS JOB` and waits for it to listen; fills addr_.
  std::unique_ptr<testing::Subprocess> Serve(std::vector<std::string> args) {
    args.insert(args.begin(), {kAimaster, "serve", "--port=0"});
    for (const std::string& a : JobArgs()) args.push_back(a);
    absl::StatusOr<std::unique_ptr<testing::Subprocess>> p =
        testing::Subprocess::Start(args);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    absl::StatusOr<std::string> line = (*p)->ReadStdoutLine(absl::Seconds(60));
    EXPECT_TRUE(line.ok()) << line.status() << " stderr: " << (*p)->Stderr();
    if (!line.ok()) return nullptr;
    const std::string listening(absl::StripPrefix(*line, "listening on "));
    addr_ = absl::StrCat("127.0.0.1:", listening.substr(listening.rfind(':') + 1));
    return *std::move(p);
  }

  testing::ProcessResult Cli(std::vector<std::string> args,
                             std::vector<std::string> env = {}) {
    args.insert(args.begin(), kAimaster);
    args.push_back("--addr=" + addr_);
    testing::SubprocessOptions options;
    options.env = std::move(env);
    options.unset_env = {"ELASTICBATCH_TOKEN", "ELASTICBATCH_TOKEN_FILE",
                         "ELASTICBATCH_ADMIN_TOKEN", "ELASTICBATCH_TLS",
                         "ELASTICBATCH_TLS_CA"};
    return RunProcess(args, absl::Seconds(60), options);
  }

  testing::TempDir dir_;
  std::string worker_token_;
  std::string admin_token_;
  std::string addr_;
};

TEST_F(AimasterSecurityCliTest, ANonLoopbackAddressNeedsATokenOrAnExplicitInsecure) {
  testing::ProcessResult r = ServeFails({"--host=0.0.0.0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr("without a token"));
  EXPECT_THAT(r.err, HasSubstr("--token-file"));
  EXPECT_EQ(r.out, "");

  std::unique_ptr<testing::Subprocess> open = Serve({"--host=0.0.0.0", "--insecure"});
  ASSERT_NE(open, nullptr);
  open->Signal(SIGTERM);
  EXPECT_EQ(*open->Wait(absl::Seconds(60)), 128 + SIGTERM);
  EXPECT_THAT(open->Stderr(), HasSubstr("--insecure: no token"));

  std::unique_ptr<testing::Subprocess> guarded =
      Serve({"--host=0.0.0.0", "--token-file=" + worker_file()});
  ASSERT_NE(guarded, nullptr);
  guarded->Signal(SIGTERM);
  EXPECT_EQ(*guarded->Wait(absl::Seconds(60)), 128 + SIGTERM);
  EXPECT_THAT(guarded->Stderr(), Not(HasSubstr("insecure")));
}

TEST_F(AimasterSecurityCliTest, UnusableTokenAndTlsSettingsEndWithOneLine) {
  testing::WriteFileOrDie(dir_.path() + "/short.token", "abc\n");
  testing::WriteFileOrDie(dir_.path() + "/not.pem", "hello\n");
  absl::StatusOr<testing::TestCa> ca = testing::TestCa::Create(dir_.path() + "/ca", "CA");
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<testing::CertPair> a =
      ca->Issue(dir_.path() + "/a", "a", "IP:127.0.0.1");
  absl::StatusOr<testing::CertPair> b =
      ca->Issue(dir_.path() + "/b", "b", "IP:127.0.0.1");
  ASSERT_TRUE(a.ok() && b.ok());
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string token = "--token-file=" + worker_file();
  const std::vector<Case> cases = {
      {{"--insecure", token}, "contradicts"},
      {{"--admin-token-file=" + admin_file()}, "needs --token-file"},
      {{token, "--admin-token-file=" + worker_file()}, "holds the job token"},
      {{"--token-file=" + dir_.path() + "/short.token"}, "at least 32"},
      {{"--token-file=" + dir_.path() + "/missing.token"}, "missing.token"},
      {{"--tls-cert=" + a->cert_file}, "--tls-key"},
      {{"--tls-cert=" + dir_.path() + "/not.pem", "--tls-key=" + a->key_file},
       "no PEM certificate"},
      {{"--tls-cert=" + a->cert_file, "--tls-key=" + b->key_file}, "does not belong"},
      {{"--tls-cert=" + a->cert_file, "--tls-key=" + a->key_file,
        "--tls-client-ca=" + dir_.path() + "/not.pem"},
       "no PEM certificate"},
      {{"--tls-ca=" + ca->cert_file()}, "status/stop"},
      {{"--tls-reload-interval=0s", "--tls-cert=" + a->cert_file,
        "--tls-key=" + a->key_file},
       "--tls-reload-interval"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.push_back("--host=127.0.0.1");
    testing::ProcessResult r = ServeFails(args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_EQ(Lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.out, "") << c.message;
  }
  testing::ProcessResult run = RunProcess(
      {kAimaster, "run", token, "--input", "data=" + dir_.path() + "/in", "--", "true"},
      absl::Seconds(60));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_THAT(run.err, HasSubstr("--token-file is not for run"));
}

TEST_F(AimasterSecurityCliTest, AWorkerTokenReadsStatusButOnlyTheAdminTokenStops) {
  std::unique_ptr<testing::Subprocess> master =
      Serve({"--host=127.0.0.1", "--token-file=" + worker_file(),
             "--admin-token-file=" + admin_file()});
  ASSERT_NE(master, nullptr);

  testing::ProcessResult anonymous = Cli({"status"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("no token was sent"));
  EXPECT_EQ(Lines(anonymous.err), 1u) << anonymous.err;

  testing::ProcessResult wrong =
      Cli({"status"}, {"ELASTICBATCH_ADMIN_TOKEN=" + auth::GenerateToken()});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("refused"));

  testing::ProcessResult reader = Cli({"status", "--token-file=" + worker_file()});
  EXPECT_EQ(reader.exit_code, 0) << reader.err;
  EXPECT_THAT(reader.out, HasSubstr("running"));
  // A worker's environment is enough to read.
  testing::ProcessResult from_env =
      Cli({"status"}, {"ELASTICBATCH_TOKEN=" + worker_token_});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  testing::ProcessResult denied = Cli({"stop", "--token-file=" + worker_file()});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("admin"));
  testing::ProcessResult still = Cli({"status", "--token-file=" + admin_file()});
  EXPECT_EQ(still.exit_code, 0) << still.err;
  EXPECT_THAT(still.out, HasSubstr("running"));

  testing::ProcessResult stopped =
      Cli({"stop", "--reason=drill"}, {"ELASTICBATCH_ADMIN_TOKEN=" + admin_token_});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_THAT(stopped.out, HasSubstr("drill"));
  EXPECT_TRUE(master->Wait(absl::Seconds(60)).ok());
}

TEST_F(AimasterSecurityCliTest, StatusVerifiesTheMastersCertificateAndSighupRechecksIt) {
  absl::StatusOr<testing::TestCa> ca = testing::TestCa::Create(dir_.path() + "/ca", "CA");
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<testing::CertPair> server =
      ca->Issue(dir_.path() + "/server", "aimaster", "IP:127.0.0.1");
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<testing::Subprocess> master =
      Serve({"--host=127.0.0.1", "--tls-cert=" + server->cert_file,
             "--tls-key=" + server->key_file});
  ASSERT_NE(master, nullptr);

  testing::ProcessResult verified = Cli({"status", "--tls-ca=" + ca->cert_file()});
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("running"));
  testing::ProcessResult from_env =
      Cli({"status"}, {"ELASTICBATCH_TLS_CA=" + ca->cert_file()});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  testing::ProcessResult plaintext = Cli({"status"});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_EQ(Lines(plaintext.err), 1u) << plaintext.err;

  absl::StatusOr<testing::TestCa> other =
      testing::TestCa::Create(dir_.path() + "/o", "Other");
  ASSERT_TRUE(other.ok()) << other.status();
  testing::ProcessResult untrusted = Cli({"status", "--tls-ca=" + other->cert_file()});
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.err, HasSubstr("TLS"));
  EXPECT_EQ(Lines(untrusted.err), 1u) << untrusted.err;

  // SIGHUP is a reload, not a stop: the files are checked and logged.
  master->Signal(SIGHUP);
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
    return absl::StrContains(master->Stderr(), "TLS: the files on disk hold");
  })) << master->Stderr();
  testing::ProcessResult after = Cli({"status", "--tls-ca=" + ca->cert_file()});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  master->Signal(SIGTERM);
  EXPECT_EQ(*master->Wait(absl::Seconds(60)), 128 + SIGTERM);
}

// ebatch-worker authenticates with the token run hands it (the job could not
// succeed otherwise) and keeps it from the command, which fails the shard if
// it sees the variable at all.
TEST_F(AimasterSecurityCliTest, RunGivesItsWorkersATokenTheCommandNeverSees) {
  const std::string job = dir_.path() + "/job";
  testing::ProcessResult r =
      RunProcess({kAimaster, "run", "--job-dir=" + job, "--workers=2", "--input",
                  "data=" + dir_.path() + "/in", "--output",
                  "out=" + dir_.path() + "/run-out", "--", kEbatchWorker, "--",
                  "if [ -n \"${ELASTICBATCH_TOKEN+x}\" ]; then exit 3; fi; cat"},
                 absl::Seconds(300));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--token-file " + job + "/aimaster.token"));
  struct stat st = {};
  ASSERT_EQ(stat((job + "/aimaster.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string token = testing::ReadFileOrEmpty(job + "/aimaster.token");
  EXPECT_EQ(token.size(), 65u);
  EXPECT_THAT(r.err,
              Not(HasSubstr(std::string(absl::StripTrailingAsciiWhitespace(token)))));
}

}  // namespace
}  // namespace elasticbatch
