// Tests for the environment contract: how channel and parameter names become
// environment names (platform reference, Appendix 2), and collision checks.
#include "elasticbatch/environment_contract.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace elasticbatch {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

struct EnvNameCase {
  std::string name;
  std::string expected;
};

TEST(EnvNameTest, NormalisesNames) {
  const std::vector<EnvNameCase> cases = {
      // The reference's own examples.
      {"batch-size", "BATCH_SIZE"},
      {"train.learning_rate", "TRAIN_LEARNING_RATE"},
      {"epochs", "EPOCHS"},
      {"test_model", "TEST_MODEL"},
      {"test-model", "TEST_MODEL"},
      {"train", "TRAIN"},
      {"train-data", "TRAIN_DATA"},
      {"test_data", "TEST_DATA"},
      // Already normalised names are unchanged.
      {"ALREADY_UPPER_9", "ALREADY_UPPER_9"},
      {"", ""},
      // Digits are kept, including a leading one.
      {"3d-model", "3D_MODEL"},
      {"v2", "V2"},
      // Every character outside [A-Z0-9_] becomes '_', one for one.
      {"a b", "A_B"},
      {"a--b", "A__B"},
      {"a/b\\c:d", "A_B_C_D"},
      {"x=y", "X_Y"},
      {"-", "_"},
      {"Mixed.Case-Name", "MIXED_CASE_NAME"},
      {std::string("a\tb\nc", 5), "A_B_C"},
      {std::string("a\0b", 3), "A_B"},
  };
  for (const EnvNameCase& c : cases) {
    EXPECT_EQ(EnvName(c.name), c.expected) << "name: \"" << c.name << "\"";
  }
}

TEST(EnvNameTest, NonAsciiBytesBecomeOneUnderscoreEach) {
  // "é" is two bytes in UTF-8; each is outside [A-Z0-9_].
  EXPECT_EQ(EnvName("caf\xc3\xa9"), "CAF__");
  EXPECT_EQ(EnvName("\xff"), "_");
}

TEST(EnvNameTest, OutputIsAlwaysInTheAllowedAlphabet) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string env = EnvName(all);
  ASSERT_EQ(env.size(), all.size());
  for (size_t i = 0; i < env.size(); ++i) {
    const char c = env[i];
    EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
        << "byte " << i << " became " << static_cast<int>(c);
  }
  EXPECT_EQ(env.substr('a', 26), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(env.substr('A', 26), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(env.substr('0', 10), "0123456789");
}

TEST(EnvNameTest, IsIdempotent) {
  for (const char* name : {"batch-size", "train.learning_rate", "Ab-c_9.z", ""}) {
    EXPECT_EQ(EnvName(EnvName(name)), EnvName(name)) << name;
  }
}

TEST(EnvVariableTest, PrefixesNormalisedNames) {
  EXPECT_EQ(InputVariable("train"), "PAI_INPUT_TRAIN");
  EXPECT_EQ(InputVariable("train-data"), "PAI_INPUT_TRAIN_DATA");
  EXPECT_EQ(InputVariable("test"), "PAI_INPUT_TEST");
  EXPECT_EQ(OutputVariable("model"), "PAI_OUTPUT_MODEL");
  EXPECT_EQ(OutputVariable("checkpoints"), "PAI_OUTPUT_CHECKPOINTS");
  EXPECT_EQ(OutputVariable("my.out-put"), "PAI_OUTPUT_MY_OUT_PUT");
  EXPECT_EQ(HyperparameterVariable("epochs"), "PAI_HPS_EPOCHS");
  EXPECT_EQ(HyperparameterVariable("batch-size"), "PAI_HPS_BATCH_SIZE");
  EXPECT_EQ(HyperparameterVariable("train.learning_rate"), "PAI_HPS_TRAIN_LEARNING_RATE");
}

TEST(EnvVariableTest, ConstantsMatchThePlatform) {
  EXPECT_STREQ(kElasticBatchConfigVar, "ELASTICBATCH_CONFIG");
  EXPECT_STREQ(kKubeDlElasticBatchConfigVar, "ElASTICBATCH_CONFIG");
  EXPECT_STREQ(kInputPrefix, "PAI_INPUT_");
  EXPECT_STREQ(kOutputPrefix, "PAI_OUTPUT_");
  EXPECT_STREQ(kUserArgsVar, "PAI_USER_ARGS");
  EXPECT_STREQ(kHyperparameterPrefix, "PAI_HPS_");
  EXPECT_STREQ(kHyperparametersVar, "PAI_HPS");
  EXPECT_STREQ(kWorkingDirVar, "PAI_WORKING_DIR");
  EXPECT_STREQ(kConfigDirVar, "PAI_CONFIG_DIR");
  EXPECT_STREQ(kVisibleDevicesVar, "NVIDIA_VISIBLE_DEVICES");
  EXPECT_STREQ(kHyperparametersFile, "hyperparameters.json");
  EXPECT_STREQ(kTrainingJobFile, "training_job.json");
}

TEST(CheckEnvNamesDistinctTest, DistinctNamesAreOk) {
  EXPECT_TRUE(CheckEnvNamesDistinct({}, "hyperparameter").ok());
  EXPECT_TRUE(CheckEnvNamesDistinct({"epochs"}, "hyperparameter").ok());
  EXPECT_TRUE(CheckEnvNamesDistinct({"epochs", "batch-size", "train.learning_rate"},
                                    "hyperparameter")
                  .ok());
  EXPECT_TRUE(
      CheckEnvNamesDistinct({"train", "test", "train_data"}, "input channel").ok());
}

TEST(CheckEnvNamesDistinctTest, ReferenceCollisionNamesBothOriginals) {
  // The reference: test_model and test-model both become PAI_HPS_TEST_MODEL.
  const absl::Status status =
      CheckEnvNamesDistinct({"test_model", "test-model"}, "hyperparameter");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("'test_model'"), HasSubstr("'test-model'"),
                    HasSubstr("TEST_MODEL"), HasSubstr("hyperparameter")));
}

TEST(CheckEnvNamesDistinctTest, CollisionsOfOtherKinds) {
  struct Case {
    std::vector<std::string> names;
    std::string what;
    std::string first;
    std::string second;
    std::string env;
  };
  const std::vector<Case> cases = {
      {{"train", "Train"}, "input channel", "train", "Train", "TRAIN"},
      {{"a", "b", "c", "x.y", "x-y"}, "output channel", "x.y", "x-y", "X_Y"},
      {{"batch size", "other", "batch_size"},
       "hyperparameter",
       "batch size",
       "batch_size",
       "BATCH_SIZE"},
  };
  for (const Case& c : cases) {
    const absl::Status status = CheckEnvNamesDistinct(c.names, c.what);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.first;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(c.what), HasSubstr("'" + c.first + "'"),
                      HasSubstr("'" + c.second + "'"), HasSubstr(c.env)));
  }
}

TEST(CheckEnvNamesDistinctTest, ExactDuplicateIsACollisionToo) {
  const absl::Status status =
      CheckEnvNamesDistinct({"epochs", "epochs"}, "hyperparameter");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'epochs'"));
}

// What `sh -c command` passes as arguments, one per element, with `env`.
std::vector<std::string> ShellArgs(const std::string& command,
                                   const std::vector<std::string>& env = {}) {
  testing::SubprocessOptions o;
  o.env = env;
  o.cwd = "/";  // nothing for a stray glob to match
  testing::ProcessResult r = testing::RunProcess(
      {"/bin/sh", "-c",
       "show() { for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done; }; " + command},
      absl::Seconds(30), o);
  EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
  std::vector<std::string> out = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  return out;
}

TEST(ShellQuoteTest, QuotesOnlyWhatTheShellWouldChange) {
  EXPECT_EQ(ShellQuote("plain-word_1.2/x=y:z,@%+"), "plain-word_1.2/x=y:z,@%+");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b*"), "'a b*'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  for (const std::string word : {"a b*", "it's $HOME", "`x` \"q\" \\ tab\t", "*", ""}) {
    EXPECT_THAT(ShellArgs("show " + ShellQuote(word)),
                ::testing::ElementsAre("[" + word + "]"))
        << word;
  }
}

// Issue 10: `--hp 'prompt=a b*'` must arrive as one argument.
TEST(UserArgsTest, EveryValueArrivesAsOneArgument) {
  const std::string args = UserArgs({{"prompt", "a b*"}, {"n", "2"}, {"empty", ""}});
  EXPECT_EQ(args, "--prompt 'a b*' --n 2 --empty ''");
  // The platform's own example is unchanged.
  EXPECT_EQ(
      UserArgs({{"epochs", "10"}, {"batch-size", "32"}, {"learning-rate", "0.001"}}),
      "--epochs 10 --batch-size 32 --learning-rate 0.001");
  const std::vector<std::string> expected = {"[--prompt]", "[a b*]",    "[--n]",
                                             "[2]",        "[--empty]", "[]"};
  // In a command string, through the launcher's substitution.
  EXPECT_EQ(ShellArgs(ExpandUserArgs("show $PAI_USER_ARGS", args)), expected);
  EXPECT_EQ(ShellArgs(ExpandUserArgs("show ${PAI_USER_ARGS}", args)), expected);
  EXPECT_EQ(ShellSplit(args),
            std::vector<std::string>({"--prompt", "a b*", "--n", "2", "--empty", ""}));
  // In a script, with eval (what the README tells script writers).
  EXPECT_EQ(
      ShellArgs("eval \"set -- $PAI_USER_ARGS\"; show \"$@\"", {"PAI_USER_ARGS=" + args}),
      expected);
}

TEST(ExpandUserArgsTest, ReplacesOnlyUnquotedReferences) {
  EXPECT_EQ(ExpandUserArgs("a $PAI_USER_ARGS b", "X"), "a X b");
  EXPECT_EQ(ExpandUserArgs("a ${PAI_USER_ARGS}b", "X"), "a Xb");
  EXPECT_EQ(ExpandUserArgs("a $PAI_USER_ARGSX", "X"), "a $PAI_USER_ARGSX");
  EXPECT_EQ(ExpandUserArgs("a '$PAI_USER_ARGS'", "X"), "a '$PAI_USER_ARGS'");
  EXPECT_EQ(ExpandUserArgs("a \"$PAI_USER_ARGS\"", "X"), "a \"$PAI_USER_ARGS\"");
  EXPECT_EQ(ExpandUserArgs("a \\$PAI_USER_ARGS", "X"), "a \\$PAI_USER_ARGS");
  EXPECT_EQ(ExpandUserArgs("a \"it's\" $PAI_USER_ARGS", "X"), "a \"it's\" X");
  EXPECT_EQ(ExpandUserArgs("x=1; $PAI_USER_ARGS;$PAI_USER_ARGS", "Y"), "x=1; Y;Y");
}

TEST(ShellCommandFromWordsTest, OneWordIsAScriptSeveralArriveAsGiven) {
  EXPECT_EQ(ShellCommandFromWords({"python main.py $PAI_USER_ARGS"}),
            "python main.py $PAI_USER_ARGS");
  const std::string cmd =
      ShellCommandFromWords({"show", "a b*", "$PAI_USER_ARGS", "--train=$PAI_INPUT_TRAIN",
                             "${HOME}/x", "cost $5 `x` \"q\" \\", ""});
  EXPECT_EQ(
      ShellArgs(ExpandUserArgs(cmd, "--k 'v w'"),
                {"PAI_INPUT_TRAIN=/in/train dir", "HOME=/home/u"}),
      std::vector<std::string>({"[a b*]", "[--k]", "[v w]", "[--train=/in/train dir]",
                                "[/home/u/x]", "[cost $5 `x` \"q\" \\]", "[]"}));
}

}  // namespace
}  // namespace elasticbatch
