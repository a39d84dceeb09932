// Tests for PaiEnvironment::FromVariables: channels, user args, the
// hyperparameter lookup order (PAI_HPS, PAI_HPS_<NAME>, hyperparameters.json),
// typed getters, config files, directories and the GPU count (Appendix 2).
#include "elasticbatch/pai_environment.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using Variables = PaiEnvironment::Variables;

// Builds the environment of `vars`; when either file is given, they are
// written to a fresh config dir and PAI_CONFIG_DIR points there.
struct Fixture {
  testing::TempDir dir;
  std::string config_dir;
  absl::StatusOr<PaiEnvironment> env = absl::UnknownError("not built");

  Fixture(Variables vars, const std::optional<std::string>& hyperparameters_json,
          const std::optional<std::string>& training_job_json) {
    if (hyperparameters_json || training_job_json) {
      config_dir = dir.path() + "/input/config";
      std::filesystem::create_directories(config_dir);
      if (hyperparameters_json) {
        testing::WriteFileOrDie(config_dir + "/hyperparameters.json",
                                *hyperparameters_json);
      }
      if (training_job_json) {
        testing::WriteFileOrDie(config_dir + "/training_job.json", *training_job_json);
      }
      vars["PAI_CONFIG_DIR"] = config_dir;
    }
    env = PaiEnvironment::FromVariables(vars);
  }
};

// One typed lookup and what it must give.
struct Query {
  enum class Getter { kInt, kDouble, kBool, kString, kHas };
  Getter getter = Getter::kHas;
  std::string name;
  absl::StatusCode code = absl::StatusCode::kOk;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
  std::string string_value;
  // For errors: substrings of the message.
  std::vector<std::string> message;
};

Query Make(Query::Getter getter, std::string name) {
  Query q;
  q.getter = getter;
  q.name = std::move(name);
  return q;
}

Query IntIs(std::string name, int64_t v) {
  Query q = Make(Query::Getter::kInt, std::move(name));
  q.int_value = v;
  return q;
}
Query DoubleIs(std::string name, double v) {
  Query q = Make(Query::Getter::kDouble, std::move(name));
  q.double_value = v;
  return q;
}
Query BoolIs(std::string name, bool v) {
  Query q = Make(Query::Getter::kBool, std::move(name));
  q.bool_value = v;
  return q;
}
Query StringIs(std::string name, std::string v) {
  Query q = Make(Query::Getter::kString, std::move(name));
  q.string_value = std::move(v);
  return q;
}
Query Has(std::string name, bool v) {
  Query q = Make(Query::Getter::kHas, std::move(name));
  q.bool_value = v;
  return q;
}
Query Fails(Query::Getter getter, std::string name, absl::StatusCode code,
            std::vector<std::string> message) {
  Query q = Make(getter, std::move(name));
  q.code = code;
  q.message = std::move(message);
  return q;
}
Query Mismatch(Query::Getter getter, std::string name, std::vector<std::string> message) {
  message.push_back("'" + name + "'");
  return Fails(getter, name, absl::StatusCode::kInvalidArgument, std::move(message));
}
Query Missing(Query::Getter getter, std::string name) {
  return Fails(getter, name, absl::StatusCode::kNotFound,
               {"'" + name + "'", "not set", "PAI_HPS", "hyperparameters.json"});
}

constexpr auto kInt = Query::Getter::kInt;
constexpr auto kDouble = Query::Getter::kDouble;
constexpr auto kBool = Query::Getter::kBool;
constexpr auto kString = Query::Getter::kString;

template <typename T>
void CheckResult(const Query& q, const absl::StatusOr<T>& got, const T& want) {
  if (q.code == absl::StatusCode::kOk) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, want);
    return;
  }
  ASSERT_FALSE(got.ok()) << "got " << *got;
  EXPECT_EQ(got.status().code(), q.code) << got.status();
  for (const std::string& part : q.message) {
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(part));
  }
}

void CheckQuery(const PaiEnvironment& env, const Query& q) {
  SCOPED_TRACE("hyperparameter '" + q.name + "'");
  switch (q.getter) {
    case Query::Getter::kInt:
      CheckResult<int64_t>(q, env.GetInt(q.name), q.int_value);
      break;
    case Query::Getter::kDouble:
      CheckResult<double>(q, env.GetDouble(q.name), q.double_value);
      break;
    case Query::Getter::kBool:
      CheckResult<bool>(q, env.GetBool(q.name), q.bool_value);
      break;
    case Query::Getter::kString:
      CheckResult<std::string>(q, env.GetString(q.name), q.string_value);
      break;
    case Query::Getter::kHas:
      EXPECT_EQ(env.HasHyperparameter(q.name), q.bool_value);
      break;
  }
}

struct HyperparameterCase {
  std::string label;
  Variables vars;
  std::optional<std::string> hyperparameters_json;
  std::vector<Query> queries;
};

TEST(PaiEnvironmentTest, HyperparameterTable) {
  const std::vector<HyperparameterCase> cases = {
      {"reference PAI_HPS",
       {{"PAI_HPS", R"({"epochs": 10, "batch-size": 32})"}},
       std::nullopt,
       {
           IntIs("epochs", 10),
           IntIs("batch-size", 32),
           // Original names, and any name that normalises the same way.
           IntIs("batch_size", 32),
           IntIs("BATCH_SIZE", 32),
           DoubleIs("epochs", 10.0),
           StringIs("epochs", "10"),
           Mismatch(kBool, "epochs", {"\"10\"", "PAI_HPS", "boolean"}),
           Has("epochs", true),
           Has("learning-rate", false),
           Missing(kInt, "learning-rate"),
           Missing(kString, "learning-rate"),
       }},
      {"reference PAI_HPS_<NAME>",
       {{"PAI_HPS_EPOCHS", "10"},
        {"PAI_HPS_BATCH_SIZE", "32"},
        {"PAI_HPS_TRAIN_LEARNING_RATE", "0.001"}},
       std::nullopt,
       {
           IntIs("epochs", 10),
           IntIs("batch-size", 32),
           IntIs("batch_size", 32),
           DoubleIs("train.learning_rate", 0.001),
           StringIs("train.learning_rate", "0.001"),
           StringIs("batch-size", "32"),
           Mismatch(kInt, "train.learning_rate",
                    {"\"0.001\"", "PAI_HPS_TRAIN_LEARNING_RATE", "integer"}),
           Mismatch(kBool, "batch-size", {"\"32\"", "PAI_HPS_BATCH_SIZE", "boolean"}),
           Has("train.learning_rate", true),
           Missing(kDouble, "momentum"),
       }},
      {"lookup order: PAI_HPS, then PAI_HPS_<NAME>, then hyperparameters.json",
       {{"PAI_HPS", R"({"epochs": 1, "batch-size": 8})"},
        {"PAI_HPS_EPOCHS", "2"},
        {"PAI_HPS_ENV_AND_FILE", "6"},
        {"PAI_HPS_ONLY_ENV", "7"}},
       R"({"epochs": 3, "env_and_file": 5, "only-file": 4, "batch-size": 9})",
       {
           IntIs("epochs", 1),
           IntIs("batch-size", 8),
           IntIs("env_and_file", 6),
           IntIs("env-and-file", 6),
           IntIs("only_env", 7),
           IntIs("only-file", 4),
           IntIs("only_file", 4),
           Has("only-file", true),
           Missing(kInt, "nowhere"),
       }},
      {"hyperparameters.json only",
       {},
       R"({"lr": 0.5, "use-gpu": true, "name": "resnet", "layers": [1, 2],
           "depth": 50, "nothing": null})",
       {
           DoubleIs("lr", 0.5),
           StringIs("lr", "0.5"),
           BoolIs("use-gpu", true),
           BoolIs("use_gpu", true),
           StringIs("use-gpu", "true"),
           StringIs("name", "resnet"),
           IntIs("depth", 50),
           Mismatch(kInt, "name", {"\"resnet\"", "hyperparameters.json", "integer"}),
           Mismatch(kInt, "lr", {"\"0.5\"", "hyperparameters.json", "integer"}),
           Mismatch(kBool, "lr", {"\"0.5\"", "boolean"}),
           Mismatch(kString, "layers", {"hyperparameters.json"}),
           Mismatch(kInt, "layers", {"hyperparameters.json"}),
           Mismatch(kString, "nothing", {"hyperparameters.json"}),
           Missing(kBool, "use-cpu"),
       }},
      {"JSON types from PAI_HPS",
       {{"PAI_HPS",
         R"({"i": 3, "f": 2.5, "b": false, "t": true, "s": "text", "o": {"x": 1},
                       "big": 1e19, "neg": -4, "numstr": "12", "boolstr": "true",
                       "zero": 0, "one": 1})"}},
       std::nullopt,
       {
           IntIs("i", 3),
           DoubleIs("i", 3.0),
           StringIs("i", "3"),
           Mismatch(kInt, "f", {"\"2.5\"", "PAI_HPS", "integer"}),
           DoubleIs("f", 2.5),
           StringIs("f", "2.5"),
           BoolIs("b", false),
           BoolIs("t", true),
           StringIs("b", "false"),
           Mismatch(kInt, "b", {"\"false\"", "integer"}),
           Mismatch(kDouble, "t", {"\"true\"", "number"}),
           StringIs("s", "text"),
           Mismatch(kInt, "s", {"\"text\"", "PAI_HPS", "integer"}),
           Mismatch(kDouble, "s", {"\"text\"", "number"}),
           Mismatch(kBool, "s", {"\"text\"", "boolean"}),
           Mismatch(kString, "o", {"PAI_HPS", "scalar"}),
           Mismatch(kInt, "big", {"integer"}),
           DoubleIs("big", 1e19),
           IntIs("neg", -4),
           // Strings inside PAI_HPS are text, parsed like PAI_HPS_<NAME>.
           IntIs("numstr", 12),
           BoolIs("boolstr", true),
           // JSON numbers are not booleans.
           Mismatch(kBool, "zero", {"\"0\"", "boolean"}),
           Mismatch(kBool, "one", {"\"1\"", "boolean"}),
       }},
      {"text values from PAI_HPS_<NAME>",
       {{"PAI_HPS_T1", "true"},
        {"PAI_HPS_T2", "TRUE"},
        {"PAI_HPS_T3", "1"},
        {"PAI_HPS_F1", "false"},
        {"PAI_HPS_F2", " False "},
        {"PAI_HPS_F3", "0"},
        {"PAI_HPS_YES", "yes"},
        {"PAI_HPS_TWO", "2"},
        {"PAI_HPS_PADDED", " 42 "},
        {"PAI_HPS_NEG", "-7"},
        {"PAI_HPS_MAX", "9223372036854775807"},
        {"PAI_HPS_OVER", "9223372036854775808"},
        {"PAI_HPS_FLOATY", "4.0"},
        {"PAI_HPS_EXP", "1e-3"},
        {"PAI_HPS_NAN", "nan"},
        {"PAI_HPS_INF", "inf"},
        {"PAI_HPS_EMPTY", ""},
        {"PAI_HPS_WORDS", "two words"}},
       std::nullopt,
       {
           BoolIs("t1", true),
           BoolIs("t2", true),
           BoolIs("t3", true),
           BoolIs("f1", false),
           BoolIs("f2", false),
           BoolIs("f3", false),
           Mismatch(kBool, "yes", {"\"yes\"", "PAI_HPS_YES", "boolean"}),
           Mismatch(kBool, "two", {"\"2\"", "PAI_HPS_TWO", "boolean"}),
           IntIs("padded", 42),
           IntIs("neg", -7),
           IntIs("max", INT64_MAX),
           Mismatch(kInt, "over", {"\"9223372036854775808\"", "integer"}),
           Mismatch(kInt, "floaty", {"\"4.0\"", "integer"}),
           DoubleIs("floaty", 4.0),
           DoubleIs("exp", 0.001),
           Mismatch(kDouble, "nan", {"\"nan\"", "number"}),
           Mismatch(kDouble, "inf", {"\"inf\"", "number"}),
           Mismatch(kInt, "empty", {"\"\"", "PAI_HPS_EMPTY", "integer"}),
           StringIs("empty", ""),
           Has("empty", true),
           StringIs("words", "two words"),
           StringIs("padded", " 42 "),
       }},
  };
  for (const HyperparameterCase& c : cases) {
    SCOPED_TRACE(c.label);
    Fixture f(c.vars, c.hyperparameters_json, std::nullopt);
    ASSERT_TRUE(f.env.ok()) << f.env.status();
    for (const Query& q : c.queries) CheckQuery(*f.env, q);
  }
}

TEST(PaiEnvironmentTest, MismatchFromFileNamesTheFilePath) {
  Fixture f({}, R"({"epochs": "ten"})", std::nullopt);
  ASSERT_TRUE(f.env.ok()) << f.env.status();
  absl::StatusOr<int64_t> got = f.env->GetInt("epochs");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr(f.config_dir + "/hyperparameters.json"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("'epochs'"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("\"ten\""));
}

TEST(PaiEnvironmentTest, MissingNamesTheEnvVariable) {
  Fixture f({}, std::nullopt, std::nullopt);
  ASSERT_TRUE(f.env.ok()) << f.env.status();
  absl::StatusOr<std::string> got = f.env->GetString("train.learning_rate");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("PAI_HPS_TRAIN_LEARNING_RATE"));
}

// Defaults stand in only for a parameter that is not set; one that is set
// with a value of the wrong type is an error, never the default.
TEST(PaiEnvironmentTest, GettersWithDefaults) {
  Fixture f({{"PAI_HPS", R"({"threshold": 0.7, "dim": 64, "fast": true, "name": "m"})"},
             {"PAI_HPS_BAD", "ten"},
             {"PAI_HPS_EMPTY", ""}},
            std::nullopt, std::nullopt);
  ASSERT_TRUE(f.env.ok()) << f.env.status();
  const PaiEnvironment& env = *f.env;
  EXPECT_EQ(env.GetDouble("threshold", 0.5).value(), 0.7);
  EXPECT_EQ(env.GetInt("dim", 1024).value(), 64);
  EXPECT_EQ(env.GetBool("fast", false).value(), true);
  EXPECT_EQ(env.GetString("name", "default").value(), "m");
  EXPECT_EQ(env.GetDouble("absent", 0.5).value(), 0.5);
  EXPECT_EQ(env.GetInt("absent", 1024).value(), 1024);
  EXPECT_EQ(env.GetBool("absent", true).value(), true);
  EXPECT_EQ(env.GetString("absent", "default").value(), "default");
  for (const absl::Status& s :
       {env.GetDouble("bad", 0.5).status(), env.GetInt("bad", 1).status(),
        env.GetBool("bad", false).status(), env.GetInt("threshold", 1).status(),
        env.GetDouble("empty", 0.5).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
  EXPECT_THAT(std::string(env.GetInt("bad", 1).status().message()),
              ::testing::AllOf(HasSubstr("'bad'"), HasSubstr("\"ten\""),
                               HasSubstr("PAI_HPS_BAD")));
}

struct ChannelCase {
  Variables vars;
  bool input;  // Input() or Output()
  std::string channel;
  std::optional<std::string> want;
};

TEST(PaiEnvironmentTest, ChannelTable) {
  const Variables vars = {
      {"PAI_INPUT_TRAIN", "/ml/input/data/train/"},
      {"PAI_INPUT_TEST", "/ml/input/data/test/test.csv"},
      {"PAI_INPUT_TRAIN_DATA", "/ml/input/data/train_data/"},
      {"PAI_OUTPUT_MODEL", "/ml/output/model/"},
      {"PAI_OUTPUT_CHECKPOINTS", "/ml/output/checkpoints/"},
      {"PAI_OUTPUT_SCORED_ROWS", "/ml/output/scored_rows/"},
      {"PAI_USER_ARGS", "--train x"},
      {"OTHER", "y"},
  };
  const std::vector<ChannelCase> cases = {
      {vars, true, "train", "/ml/input/data/train/"},
      {vars, true, "TRAIN", "/ml/input/data/train/"},
      {vars, true, "test", "/ml/input/data/test/test.csv"},
      {vars, true, "train-data", "/ml/input/data/train_data/"},
      {vars, true, "train_data", "/ml/input/data/train_data/"},
      {vars, true, "train.data", "/ml/input/data/train_data/"},
      {vars, true, "validation", std::nullopt},
      {vars, true, "model", std::nullopt},  // an output, not an input
      {vars, true, "", std::nullopt},
      {vars, false, "model", "/ml/output/model/"},
      {vars, false, "checkpoints", "/ml/output/checkpoints/"},
      {vars, false, "scored-rows", "/ml/output/scored_rows/"},
      {vars, false, "train", std::nullopt},  // an input, not an output
      {{}, true, "train", std::nullopt},
      {{}, false, "model", std::nullopt},
      {{{"PAI_INPUT_EMPTY", ""}}, true, "empty", ""},
  };
  for (const ChannelCase& c : cases) {
    SCOPED_TRACE((c.input ? "Input(\"" : "Output(\"") + c.channel + "\")");
    absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables(c.vars);
    ASSERT_TRUE(env.ok()) << env.status();
    EXPECT_EQ(c.input ? env->Input(c.channel) : env->Output(c.channel), c.want);
  }
  absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables(vars);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_THAT(env->inputs(),
              UnorderedElementsAre(Pair("TRAIN", "/ml/input/data/train/"),
                                   Pair("TEST", "/ml/input/data/test/test.csv"),
                                   Pair("TRAIN_DATA", "/ml/input/data/train_data/")));
  EXPECT_THAT(env->outputs(),
              UnorderedElementsAre(Pair("MODEL", "/ml/output/model/"),
                                   Pair("CHECKPOINTS", "/ml/output/checkpoints/"),
                                   Pair("SCORED_ROWS", "/ml/output/scored_rows/")));
}

struct UserArgsCase {
  std::optional<std::string> value;
  std::vector<std::string> list;
};

TEST(PaiEnvironmentTest, UserArgsTable) {
  const std::vector<UserArgsCase> cases = {
      // The reference's example.
      {"--epochs 10 --batch-size 32 --learning-rate 0.001",
       {"--epochs", "10", "--batch-size", "32", "--learning-rate", "0.001"}},
      {"  --a\t1\n--b   2  ", {"--a", "1", "--b", "2"}},
      {"--single", {"--single"}},
      // Shell-quoted values (what `aimaster run` sets) stay one word.
      {"--prompt 'a b*' --n 2 --empty ''",
       {"--prompt", "a b*", "--n", "2", "--empty", ""}},
      {R"(--q "say \"hi\"" --p it\'s)", {"--q", "say \"hi\"", "--p", "it's"}},
      {"", {}},
      {"   ", {}},
      {std::nullopt, {}},
  };
  for (const UserArgsCase& c : cases) {
    SCOPED_TRACE(c.value.value_or("(unset)"));
    Variables vars;
    if (c.value) vars["PAI_USER_ARGS"] = *c.value;
    absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables(vars);
    ASSERT_TRUE(env.ok()) << env.status();
    EXPECT_EQ(env->user_args(), c.value.value_or(""));  // verbatim
    EXPECT_EQ(env->UserArgList(), c.list);
  }
}

struct LoadErrorCase {
  std::string label;
  Variables vars;
  std::optional<std::string> hyperparameters_json;
  std::optional<std::string> training_job_json;
  // Substrings of the INVALID_ARGUMENT message; "$FILE" stands for the path
  // of the file named in the case.
  std::vector<std::string> message;
};

TEST(PaiEnvironmentTest, LoadErrorTable) {
  const std::vector<LoadErrorCase> cases = {
      {"PAI_HPS malformed",
       {{"PAI_HPS", R"({"epochs": 10,)"}},
       std::nullopt,
       std::nullopt,
       {"PAI_HPS", "not valid JSON"}},
      {"PAI_HPS not JSON",
       {{"PAI_HPS", "epochs=10"}},
       std::nullopt,
       std::nullopt,
       {"PAI_HPS", "not valid JSON"}},
      {"PAI_HPS an array",
       {{"PAI_HPS", "[10, 32]"}},
       std::nullopt,
       std::nullopt,
       {"PAI_HPS", "JSON object"}},
      {"PAI_HPS a number",
       {{"PAI_HPS", "10"}},
       std::nullopt,
       std::nullopt,
       {"PAI_HPS", "JSON object"}},
      {"PAI_HPS empty", {{"PAI_HPS", ""}}, std::nullopt, std::nullopt, {"PAI_HPS"}},
      {"hyperparameters.json malformed",
       {},
       R"({"epochs": )",
       std::nullopt,
       {"$FILE/hyperparameters.json", "not valid JSON"}},
      {"hyperparameters.json an array",
       {},
       R"(["epochs"])",
       std::nullopt,
       {"$FILE/hyperparameters.json", "JSON object"}},
      {"training_job.json malformed",
       {},
       std::nullopt,
       "{\"name\": ",
       {"$FILE/training_job.json", "not valid JSON"}},
      {"valid PAI_HPS, bad file",
       {{"PAI_HPS", "{}"}},
       "nope",
       std::nullopt,
       {"$FILE/hyperparameters.json"}},
  };
  for (const LoadErrorCase& c : cases) {
    SCOPED_TRACE(c.label);
    Fixture f(c.vars, c.hyperparameters_json, c.training_job_json);
    ASSERT_FALSE(f.env.ok());
    EXPECT_EQ(f.env.status().code(), absl::StatusCode::kInvalidArgument)
        << f.env.status();
    for (std::string part : c.message) {
      if (part.rfind("$FILE", 0) == 0) part = f.config_dir + part.substr(5);
      EXPECT_THAT(std::string(f.env.status().message()), HasSubstr(part));
    }
  }
}

TEST(PaiEnvironmentTest, ConfigFilesAndDirectories) {
  const std::string job = R"({"name": "score-2024", "instances": {"worker": 4}})";
  Fixture f({{"PAI_WORKING_DIR", "/ml/usercode"}}, R"({"epochs": 3})", job);
  ASSERT_TRUE(f.env.ok()) << f.env.status();
  EXPECT_EQ(f.env->working_dir(), "/ml/usercode");
  EXPECT_EQ(f.env->config_dir(), f.config_dir);
  EXPECT_EQ(f.env->training_job_json(), job);  // verbatim text
  absl::StatusOr<int64_t> epochs = f.env->GetInt("epochs");
  ASSERT_TRUE(epochs.ok()) << epochs.status();
  EXPECT_EQ(*epochs, 3);
}

TEST(PaiEnvironmentTest, ConfigDirWithoutFiles) {
  testing::TempDir dir;
  for (const std::string& config_dir : {dir.path(), dir.path() + "/does/not/exist"}) {
    SCOPED_TRACE(config_dir);
    absl::StatusOr<PaiEnvironment> env =
        PaiEnvironment::FromVariables({{"PAI_CONFIG_DIR", config_dir}});
    ASSERT_TRUE(env.ok()) << env.status();
    EXPECT_EQ(env->config_dir(), config_dir);
    EXPECT_EQ(env->training_job_json(), "");
    EXPECT_FALSE(env->HasHyperparameter("epochs"));
  }
}

TEST(PaiEnvironmentTest, NothingSet) {
  absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables({});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->working_dir(), "");
  EXPECT_EQ(env->config_dir(), "");
  EXPECT_EQ(env->training_job_json(), "");
  EXPECT_EQ(env->user_args(), "");
  EXPECT_THAT(env->UserArgList(), IsEmpty());
  EXPECT_THAT(env->inputs(), IsEmpty());
  EXPECT_THAT(env->outputs(), IsEmpty());
  EXPECT_EQ(env->gpu_count(), 0);
  EXPECT_EQ(env->GetInt("epochs").status().code(), absl::StatusCode::kNotFound);
}

// GPUs as counted independently: /dev/nvidia<N> entries.
int DevNvidiaCount() {
  int n = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 6 && name.compare(0, 6, "nvidia") == 0 &&
        name.find_first_not_of("0123456789", 6) == std::string::npos) {
      ++n;
    }
  }
  return n;
}

struct GpuCase {
  std::optional<std::string> devices;
  int want;
};

TEST(PaiEnvironmentTest, GpuCountTable) {
  const std::vector<GpuCase> cases = {
      {"0,1,2,3", 4},  // the reference's example
      {"0", 1},
      {"3", 1},
      {"0,1", 2},
      {" 0 , 1 ", 2},
      {"GPU-6f1b3c4e-aaaa,GPU-7a2c4d5f-bbbb", 2},
      {"", 0},
      {std::nullopt, 0},
      {"none", 0},
      {"void", 0},
      {"NONE", 0},
      {"all", DevNvidiaCount()},
  };
  for (const GpuCase& c : cases) {
    SCOPED_TRACE(c.devices.value_or("(unset)"));
    Variables vars;
    if (c.devices) vars["NVIDIA_VISIBLE_DEVICES"] = *c.devices;
    absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables(vars);
    ASSERT_TRUE(env.ok()) << env.status();
    EXPECT_EQ(env->gpu_count(), c.want);
    EXPECT_GE(env->gpu_count(), 0);
  }
}

TEST(PaiEnvironmentTest, FromEnvironmentReadsTheProcessEnvironment) {
  const char* names[] = {"PAI_INPUT_UNIT_TEST_CHANNEL", "PAI_HPS_UNIT_TEST_PARAM"};
  for (const char* name : names) ASSERT_EQ(std::getenv(name), nullptr);
  setenv("PAI_INPUT_UNIT_TEST_CHANNEL", "/data/x", 1);
  setenv("PAI_HPS_UNIT_TEST_PARAM", "17", 1);
  absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromEnvironment();
  for (const char* name : names) unsetenv(name);
  // The test process's own environment might hold a bad PAI_HPS; only check
  // the values when it loaded.
  if (std::getenv("PAI_HPS") == nullptr && std::getenv("PAI_CONFIG_DIR") == nullptr) {
    ASSERT_TRUE(env.ok()) << env.status();
  }
  if (env.ok()) {
    EXPECT_EQ(env->Input("unit-test-channel"), "/data/x");
    absl::StatusOr<int64_t> param = env->GetInt("unit.test.param");
    ASSERT_TRUE(param.ok()) << param.status();
    EXPECT_EQ(*param, 17);
  }
}

}  // namespace
}  // namespace elasticbatch

namespace elasticbatch {
namespace {

TEST(PaiEnvironmentJsonTest, NumbersKeepTheirShortestSpellingAndErrorsStayOnOneLine) {
  auto env = PaiEnvironment::FromVariables({{"PAI_HPS", R"({"lr": 0.1, "big": 1e300})"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(*env->GetString("lr"), "0.1");
  EXPECT_EQ(*env->GetString("big"), "1e+300");

  auto bad = PaiEnvironment::FromVariables({{"PAI_HPS", R"({"x": 1e999})"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).find('\n'), std::string::npos)
      << bad.status();

  const std::string deep = std::string(5000, '[') + std::string(5000, ']');
  auto nested = PaiEnvironment::FromVariables({{"PAI_HPS", deep}});
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(nested.status().message()).find("nests deeper"),
            std::string::npos);
}

}  // namespace
}  // namespace elasticbatch
