// The aimaster binary's command-line contract: help, version, exit codes.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "subprocess.h"

namespace elasticbatch {
namespace {

using ::testing::HasSubstr;
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

}  // namespace
}  // namespace elasticbatch
