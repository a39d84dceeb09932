#include "common/cli/command_line.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, test_count, 1, "a count");
ABSL_FLAG(bool, test_switch, false, "a switch");
ABSL_FLAG(absl::Duration, test_timeout, absl::Seconds(5), "a duration");
ABSL_FLAG(std::vector<std::string>, test_item, {}, "a repeated item");

namespace elasticbatch::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class CommandLineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetFlag(&FLAGS_test_count, 1);
    absl::SetFlag(&FLAGS_test_switch, false);
    absl::SetFlag(&FLAGS_test_timeout, absl::Seconds(5));
    absl::SetFlag(&FLAGS_test_item, {});
    parser_.AddRepeated(&FLAGS_test_item);
  }

  absl::StatusOr<ParsedCommandLine> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "prog");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return parser_.Parse(static_cast<int>(argv.size()), argv.data());
  }

  CommandLineParser parser_;
};

TEST_F(CommandLineTest, DashedNamesSeparateValuesAndPositionals) {
  auto parsed = Parse({"serve", "--test-count", "7", "--test-timeout=250ms", "extra"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_test_count), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_test_timeout), absl::Milliseconds(250));
  EXPECT_THAT(parsed->positional, ElementsAre("serve", "extra"));
  EXPECT_FALSE(parsed->help);
}

TEST_F(CommandLineTest, BoolFlagsTakeNoValueAndCanBeNegated) {
  ASSERT_TRUE(Parse({"--test_switch"}).ok());
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_switch));
  ASSERT_TRUE(Parse({"--notest-switch"}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_test_switch));
  ASSERT_TRUE(Parse({"--test-switch=true"}).ok());
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_switch));
  ASSERT_TRUE(Parse({"--no-test-switch"}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_test_switch));
  ASSERT_TRUE(Parse({"--test-switch"}).ok());
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_switch));
}

TEST_F(CommandLineTest, RepeatedFlagsAppendAndKeepCommas) {
  auto parsed = Parse({"--test-item", "a=1,2", "--test-item=b=3"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(absl::GetFlag(FLAGS_test_item), ElementsAre("a=1,2", "b=3"));
}

TEST_F(CommandLineTest, EverythingAfterDashesIsKeptVerbatim) {
  auto parsed = Parse({"run", "--", "python", "main.py", "--test-count", "9"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->after_dashes,
              ElementsAre("python", "main.py", "--test-count", "9"));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_count), 1);
}

TEST_F(CommandLineTest, HelpIsReported) {
  auto parsed = Parse({"-h"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help);
}

TEST_F(CommandLineTest, ErrorsNameTheFlag) {
  auto unknown = Parse({"--no-such-flag=1"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("--no-such-flag"));

  auto bad = Parse({"--test-count=many"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--test-count"));

  auto missing = Parse({"--test-timeout"});
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("needs a value"));
}

}  // namespace
}  // namespace elasticbatch::cli
