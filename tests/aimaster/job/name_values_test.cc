// ParseNameValues: the one NAME=VALUE parser of --hp, --input and --output.
#include "aimaster/job/name_values.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

NameValueSyntax Hp() {
  NameValueSyntax s;
  s.flag = "hp";
  return s;
}

TEST(NameValuesTest, SplitsAtTheFirstEqualsSignInOrder) {
  absl::StatusOr<NameValues> v = ParseNameValues({"b=1", "a=x=y", "c="}, Hp());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAre(Pair("b", "1"), Pair("a", "x=y"), Pair("c", "")));
}

TEST(NameValuesTest, RefusalsNameTheFlag) {
  EXPECT_EQ(ParseNameValues({"novalue"}, Hp()).status().message(),
            "--hp 'novalue' must be NAME=VALUE");
  EXPECT_EQ(ParseNameValues({"=1"}, Hp()).status().message(),
            "--hp '=1' must be NAME=VALUE");
  EXPECT_EQ(ParseNameValues({"a=1", "a=2"}, Hp()).status().message(),
            "--hp names 'a' twice");
  EXPECT_EQ(ParseNameValues({"a=1", "a=2"}, Hp()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NameValuesTest, ChannelSyntaxWantsAPathAndChecksNames) {
  NameValueSyntax s;
  s.flag = "input";
  s.value_word = "PATH";
  s.allow_empty_value = false;
  s.what = "channel ";
  s.check_name = [](const std::string& name) {
    return name == "bad" ? absl::InvalidArgumentError("bad name") : absl::OkStatus();
  };
  EXPECT_EQ(ParseNameValues({"data="}, s).status().message(),
            "--input 'data=' must be NAME=PATH");
  EXPECT_EQ(ParseNameValues({"bad=/x"}, s).status().message(), "bad name");
  EXPECT_EQ(ParseNameValues({"d=/x", "d=/y"}, s).status().message(),
            "--input names channel 'd' twice");
}

}  // namespace
}  // namespace elasticbatch::aimaster
