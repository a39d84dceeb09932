// Tests for TaskInfo: parsing ELASTICBATCH_CONFIG (and KubeDL's spelling
// ElASTICBATCH_CONFIG), good and bad inputs. Errors must name the variable
// and the problem, and no input may crash the parser.
#include "elasticbatch/task_info.h"

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch {
namespace {

using ::testing::HasSubstr;

constexpr char kReferenceExample[] = R"({
"task": {
"type": "worker",
"index": 0
},
"environment": "cloud"
})";

struct ParseCase {
  std::string label;
  std::string json;
  // Expected result when ok.
  bool ok = false;
  std::string type;
  uint32_t index = 0;
  std::string environment;
  // Expected error otherwise; the message must contain every one of `problem`
  // (besides the variable name, checked for all errors).
  absl::StatusCode code = absl::StatusCode::kOk;
  std::vector<std::string> problem;
};

ParseCase Good(std::string label, std::string json, std::string type, uint32_t index,
               std::string environment) {
  ParseCase c;
  c.label = std::move(label);
  c.json = std::move(json);
  c.ok = true;
  c.type = std::move(type);
  c.index = index;
  c.environment = std::move(environment);
  return c;
}

ParseCase Bad(std::string label, std::string json, std::vector<std::string> problem,
              absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  ParseCase c;
  c.label = std::move(label);
  c.json = std::move(json);
  c.ok = false;
  c.code = code;
  c.problem = std::move(problem);
  return c;
}

std::vector<ParseCase> Cases() {
  return {
      Good("reference example", kReferenceExample, "worker", 0, "cloud"),
      Good("compact worker",
           R"({"task":{"type":"worker","index":7},"environment":"local"})", "worker", 7,
           "local"),
      Good("aimaster", R"({"task":{"type":"aimaster","index":0}})", "aimaster", 0, ""),
      Good("type is case-insensitive", R"({"task":{"type":"Worker","index":2}})",
           "worker", 2, ""),
      Good("missing environment is empty", R"({"task":{"type":"worker","index":3}})",
           "worker", 3, ""),
      Good("empty environment",
           R"({"task":{"type":"worker","index":3},"environment":""})", "worker", 3, ""),
      Good("integral float index", R"({"task":{"type":"worker","index":4.0}})", "worker",
           4, ""),
      Good("exponent index", R"({"task":{"type":"worker","index":1e2}})", "worker", 100,
           ""),
      Good("largest index", R"({"task":{"type":"worker","index":4294967295}})", "worker",
           4294967295u, ""),
      Good("surrounding whitespace",
           "  \n\t{\"task\":{\"type\":\"worker\",\"index\":1}}\n ", "worker", 1, ""),
      Good(
          "extra fields are ignored",
          R"({"task":{"type":"worker","index":5,"extra":[1,2]},"cluster":{"worker":["a"]}})",
          "worker", 5, ""),

      Bad("empty", "", {"empty"}),
      Bad("blank", "   \n", {"empty"}),
      Bad("malformed JSON", R"({"task":{"type":"worker","index":0)", {"not valid JSON"}),
      Bad("not JSON at all", "worker-0", {"not valid JSON"}),
      Bad("trailing garbage", R"({"task":{"type":"worker","index":0}} x)",
          {"not valid JSON"}),
      Bad("top level is an array", R"([{"task":{"type":"worker","index":0}}])",
          {"expected a JSON object"}),
      Bad("top level is a string", R"("worker")", {"expected a JSON object"}),
      Bad("top level is a number", "0", {"expected a JSON object"}),
      Bad("top level is null", "null", {"expected a JSON object"}),
      Bad("missing task", R"({"environment":"cloud"})", {"missing \"task\""}),
      Bad("empty object", "{}", {"missing \"task\""}),
      Bad("task is a string", R"({"task":"worker"})", {"\"task\" must be an object"}),
      Bad("task is an array", R"({"task":["worker",0]})", {"\"task\" must be an object"}),
      Bad("task is null", R"({"task":null})", {"\"task\" must be an object"}),
      Bad("missing type", R"({"task":{"index":0}})", {"missing \"task.type\""}),
      Bad("type is a number", R"({"task":{"type":1,"index":0}})",
          {"\"task.type\" must be a string"}),
      Bad("type is null", R"({"task":{"type":null,"index":0}})",
          {"\"task.type\" must be a string"}),
      Bad("unknown type", R"({"task":{"type":"ps","index":0}})",
          {"unknown task type \"ps\"", "worker", "aimaster"}),
      Bad("empty type", R"({"task":{"type":"","index":0}})", {"unknown task type \"\""}),
      Bad("missing index", R"({"task":{"type":"worker"}})", {"missing \"task.index\""}),
      Bad("negative index", R"({"task":{"type":"worker","index":-1}})",
          {"\"task.index\" must not be negative", "-1"}),
      Bad("non-integer index", R"({"task":{"type":"worker","index":1.5}})",
          {"\"task.index\" must be an integer", "1.5"}),
      Bad("negative non-integer index", R"({"task":{"type":"worker","index":-0.5}})",
          {"\"task.index\""}),
      Bad("string index", R"({"task":{"type":"worker","index":"0"}})",
          {"\"task.index\" must be a number"}),
      Bad("boolean index", R"({"task":{"type":"worker","index":true}})",
          {"\"task.index\" must be a number"}),
      Bad("null index", R"({"task":{"type":"worker","index":null}})",
          {"\"task.index\" must be a number"}),
      Bad("huge index", R"({"task":{"type":"worker","index":4294967296}})",
          {"\"task.index\" is too large"}),
      Bad("very huge index", R"({"task":{"type":"worker","index":1e300}})",
          {"\"task.index\" is too large"}),
      Bad("environment is a number",
          R"({"task":{"type":"worker","index":0},"environment":1})",
          {"\"environment\" must be a string"}),
      Bad("environment is an object",
          R"({"task":{"type":"worker","index":0},"environment":{"name":"cloud"}})",
          {"\"environment\" must be a string"}),
  };
}

void ExpectMatches(const ParseCase& c, const absl::StatusOr<TaskInfo>& got,
                   const std::string& variable) {
  if (c.ok) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->type, c.type);
    EXPECT_EQ(got->index, c.index);
    EXPECT_EQ(got->environment, c.environment);
    return;
  }
  ASSERT_FALSE(got.ok()) << "parsed as " << got->type << " " << got->index;
  EXPECT_EQ(got.status().code(), c.code) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(variable));
  for (const std::string& part : c.problem) {
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(part));
  }
}

TEST(TaskInfoParseTest, Table) {
  for (const ParseCase& c : Cases()) {
    SCOPED_TRACE(c.label + ": " + c.json);
    ExpectMatches(c, TaskInfo::Parse(c.json), "ELASTICBATCH_CONFIG");
  }
}

TEST(TaskInfoParseTest, ErrorsNameTheGivenVariable) {
  for (const ParseCase& c : Cases()) {
    SCOPED_TRACE(c.label + ": " + c.json);
    ExpectMatches(c, TaskInfo::Parse(c.json, "ElASTICBATCH_CONFIG"),
                  "ElASTICBATCH_CONFIG");
  }
}

TEST(TaskInfoParseTest, NeverCrashesOnTruncationsAndMutations) {
  // Every prefix of a valid config, and random byte mutations of it, must
  // give a result or an INVALID_ARGUMENT naming the variable.
  const std::string valid =
      R"({"task":{"type":"worker","index":12},"environment":"cloud"})";
  auto check = [](const std::string& json) {
    absl::StatusOr<TaskInfo> got = TaskInfo::Parse(json);
    if (got.ok()) {
      EXPECT_TRUE(got->type == "worker" || got->type == "aimaster") << json;
    } else {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << json;
      EXPECT_THAT(std::string(got.status().message()), HasSubstr("ELASTICBATCH_CONFIG"))
          << json;
    }
  };
  for (size_t n = 0; n < valid.size(); ++n) {
    absl::StatusOr<TaskInfo> got = TaskInfo::Parse(valid.substr(0, n));
    EXPECT_FALSE(got.ok()) << valid.substr(0, n);
    check(valid.substr(0, n));
  }
  std::mt19937 rng(20240611);
  const std::string alphabet = "{}[]\":,0123456789-.eE tnrufalsw\\\x01\xff";
  for (int i = 0; i < 2000; ++i) {
    std::string json = valid;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      json[rng() % json.size()] = alphabet[rng() % alphabet.size()];
    }
    check(json);
  }
  // Deep nesting must not blow the stack. (Kept moderate: the system
  // protobuf's JSON parser is super-linear in the nesting depth.)
  check(std::string(1000, '[') + std::string(1000, ']'));
  check("{\"task\":" + std::string(1000, '{') + "}");
}

// Sets or unsets environment variables for one scope and restores them.
class ScopedEnv {
 public:
  void Set(const std::string& name, const std::optional<std::string>& value) {
    Save(name);
    if (value) {
      setenv(name.c_str(), value->c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }

 private:
  void Save(const std::string& name) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(TaskInfoFromEnvironmentTest, ReadsElasticBatchConfig) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", kReferenceExample);
  env.Set("ElASTICBATCH_CONFIG", std::nullopt);
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->type, "worker");
  EXPECT_EQ(got->index, 0u);
  EXPECT_EQ(got->environment, "cloud");
}

TEST(TaskInfoFromEnvironmentTest, ReadsKubeDlSpelling) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", std::nullopt);
  env.Set("ElASTICBATCH_CONFIG", R"({"task":{"type":"worker","index":3}})");
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->type, "worker");
  EXPECT_EQ(got->index, 3u);
  EXPECT_EQ(got->environment, "");
}

TEST(TaskInfoFromEnvironmentTest, KubeDlSpellingErrorsNameThatVariable) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", std::nullopt);
  env.Set("ElASTICBATCH_CONFIG", R"({"task":{"type":"worker","index":-2}})");
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("ElASTICBATCH_CONFIG"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("negative"));
}

TEST(TaskInfoFromEnvironmentTest, StandardSpellingWinsWhenBothAreSet) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", R"({"task":{"type":"worker","index":1}})");
  env.Set("ElASTICBATCH_CONFIG", R"({"task":{"type":"worker","index":2}})");
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->index, 1u);
}

TEST(TaskInfoFromEnvironmentTest, BadValueIsAnErrorNotAFallback) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", "{not json");
  env.Set("ElASTICBATCH_CONFIG", R"({"task":{"type":"worker","index":2}})");
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("ELASTICBATCH_CONFIG"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("not valid JSON"));
}

TEST(TaskInfoFromEnvironmentTest, UnsetIsNotFoundNamingBothSpellings) {
  ScopedEnv env;
  env.Set("ELASTICBATCH_CONFIG", std::nullopt);
  env.Set("ElASTICBATCH_CONFIG", std::nullopt);
  absl::StatusOr<TaskInfo> got = TaskInfo::FromEnvironment();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("ELASTICBATCH_CONFIG"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("ElASTICBATCH_CONFIG"));
}

TEST(TaskInfoFromEnvironmentTest, ScopedEnvRestores) {
  // The guard used above really restores the environment.
  const char* before = std::getenv("ELASTICBATCH_CONFIG");
  const std::optional<std::string> saved =
      before ? std::optional<std::string>(before) : std::nullopt;
  {
    ScopedEnv env;
    env.Set("ELASTICBATCH_CONFIG", "x");
    EXPECT_STREQ(std::getenv("ELASTICBATCH_CONFIG"), "x");
  }
  const char* after = std::getenv("ELASTICBATCH_CONFIG");
  EXPECT_EQ(after != nullptr, saved.has_value());
  if (after && saved) {
    EXPECT_EQ(std::string(after), *saved);
  }
}

}  // namespace
}  // namespace elasticbatch
