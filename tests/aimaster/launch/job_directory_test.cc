// JobDirectory: the container layout on disk, the links to code, inputs and
// outputs, the config files, the environment contract, and the refusals.
#include "aimaster/launch/job_directory.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

class JobDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFileOrDie(Path("code/main.py"), "print('hi')\n");
    testing::WriteFileOrDie(Path("data/part-0.jsonl"), "{}\n");
    testing::WriteFileOrDie(Path("table.csv"), "a,b\n");
  }
  std::string Path(const std::string& relative) const {
    return absl::StrCat(dir_.path(), "/", relative);
  }
  JobDirectorySpec Spec() const {
    JobDirectorySpec s;
    s.root = Path("job");
    s.code_dir = Path("code");
    s.inputs = {{"data", Path("data")},
                {"table", Path("table.csv")},
                {"remote", "odps://project/tables/t"}};
    s.outputs = {{"out", Path("results")}, {"own", Path("job/output/own")}};
    s.hyperparameters = {{"epochs", "10"},
                         {"learning-rate", "0.001"},
                         {"model", "resnet 50"},
                         {"fast", "true"}};
    s.job_id = "job-7";
    s.workers = 3;
    s.command = "python main.py $PAI_USER_ARGS";
    return s;
  }

  testing::TempDir dir_;
};

TEST_F(JobDirectoryTest, LaysOutTheContainerLayoutWithLinks) {
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(Spec());
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string root = Path("job");
  EXPECT_EQ(d->root(), root);
  EXPECT_EQ(d->usercode(), root + "/usercode");
  EXPECT_EQ(d->config_dir(), root + "/input/config");
  EXPECT_EQ(d->logs_dir(), root + "/logs");
  EXPECT_EQ(fs::read_symlink(root + "/usercode"), fs::path(Path("code")));
  EXPECT_TRUE(fs::is_regular_file(root + "/usercode/main.py"));
  // A directory input is the channel; a file input sits inside it.
  EXPECT_EQ(fs::read_symlink(root + "/input/data/data"), fs::path(Path("data")));
  EXPECT_EQ(fs::read_symlink(root + "/input/data/table/table.csv"),
            fs::path(Path("table.csv")));
  EXPECT_FALSE(fs::exists(root + "/input/data/remote"));
  // Outputs are created; one already in place is not linked onto itself.
  EXPECT_TRUE(fs::is_directory(Path("results")));
  EXPECT_EQ(fs::read_symlink(root + "/output/out"), fs::path(Path("results")));
  EXPECT_TRUE(fs::is_directory(root + "/output/own"));
  EXPECT_FALSE(fs::is_symlink(root + "/output/own"));
  EXPECT_TRUE(fs::is_directory(root + "/logs"));
  EXPECT_EQ(d->LogPath(2, 1), root + "/logs/worker-2-1.log");
}

TEST_F(JobDirectoryTest, WorkerEnvironmentHoldsTheWholeContract) {
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(Spec());
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string root = Path("job");
  const std::vector<std::string> env = d->WorkerEnvironment(2, 1, "127.0.0.1:5000");
  EXPECT_THAT(
      env,
      IsSupersetOf(std::vector<std::string>{
          "PAI_INPUT_DATA=" + root + "/input/data/data/",
          "PAI_INPUT_TABLE=" + root + "/input/data/table/table.csv",
          "PAI_INPUT_REMOTE=odps://project/tables/t",
          "PAI_OUTPUT_OUT=" + root + "/output/out/",
          "PAI_OUTPUT_OWN=" + root + "/output/own/",
          "PAI_HPS_EPOCHS=10",
          "PAI_HPS_LEARNING_RATE=0.001",
          "PAI_HPS_MODEL=resnet 50",
          "PAI_HPS_FAST=true",
          "PAI_USER_ARGS=--epochs 10 --learning-rate 0.001 --model 'resnet 50' --fast "
          "true",
          R"(PAI_HPS={"epochs": 10, "learning-rate": 0.001, "model": "resnet 50", "fast": true})",
          "PAI_WORKING_DIR=" + root + "/usercode",
          "PAI_CONFIG_DIR=" + root + "/input/config",
          R"(ELASTICBATCH_CONFIG={"task":{"type":"worker","index":2},"environment":"local"})",
          "AIMASTER_ADDR=127.0.0.1:5000",
          "ELASTICBATCH_ATTEMPT=1",
      }));
}

TEST_F(JobDirectoryTest, WritesHyperparametersAndTrainingJob) {
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(Spec());
  ASSERT_TRUE(d.ok()) << d.status();
  // The platform's PAI_HPS format, to the byte.
  EXPECT_EQ(
      testing::ReadFileOrEmpty(d->config_dir() + "/hyperparameters.json"),
      R"({"epochs": 10, "learning-rate": 0.001, "model": "resnet 50", "fast": true})"
      "\n");
  const std::string text =
      testing::ReadFileOrEmpty(d->config_dir() + "/training_job.json");
  const nlohmann::ordered_json job = nlohmann::ordered_json::parse(text, nullptr, false);
  ASSERT_FALSE(job.is_discarded()) << text;
  std::vector<std::string> keys;
  for (const auto& [key, value] : job.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"job_id", "job_type", "workers", "command",
                                            "inputs", "outputs", "hyperparameters",
                                            "created"}));
  EXPECT_EQ(job["job_id"], "job-7");
  EXPECT_EQ(job["job_type"], "ElasticBatch");
  EXPECT_EQ(job["workers"], 3);
  EXPECT_EQ(job["command"], "python main.py $PAI_USER_ARGS");
  EXPECT_EQ(job["inputs"].dump(),
            nlohmann::ordered_json({{"data", Path("data")},
                                    {"table", Path("table.csv")},
                                    {"remote", "odps://project/tables/t"}})
                .dump());
  EXPECT_EQ(job["outputs"]["out"], Path("results"));
  EXPECT_EQ(job["hyperparameters"].dump(),
            R"({"epochs":10,"learning-rate":0.001,"model":"resnet 50","fast":true})");
  // RFC 3339, seconds, UTC.
  EXPECT_THAT(job["created"].get<std::string>(),
              ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\+00:00"));
  // One line of JSON.
  EXPECT_EQ(text.find('\n'), text.size() - 1);
}

TEST_F(JobDirectoryTest, CreatingAgainReusesTheDirectory) {
  ASSERT_TRUE(JobDirectory::Create(Spec()).ok());
  JobDirectorySpec again = Spec();
  testing::WriteFileOrDie(Path("code2/main.py"), "");
  again.code_dir = Path("code2");
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(again);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(fs::read_symlink(Path("job/usercode")), fs::path(Path("code2")));
}

TEST_F(JobDirectoryTest, RefusesNamesThatCollideAsVariables) {
  JobDirectorySpec s = Spec();
  s.hyperparameters = {{"test_model", "a"}, {"test-model", "b"}};
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(s);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("test_model"));
  EXPECT_THAT(d.status().message(), HasSubstr("test-model"));

  s = Spec();
  s.inputs = {{"a.b", Path("data")}, {"a-b", Path("data")}};
  EXPECT_EQ(JobDirectory::Create(s).status().code(), absl::StatusCode::kInvalidArgument);
  s = Spec();
  s.outputs = {{"x_y", Path("o1")}, {"x-y", Path("o2")}};
  EXPECT_EQ(JobDirectory::Create(s).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(Path("job"))) << "refused before touching the disk";
}

TEST_F(JobDirectoryTest, RefusesACodeDirectoryThatIsNotOne) {
  JobDirectorySpec s = Spec();
  s.code_dir = Path("code/main.py");
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(s);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("is not a directory"));
}

TEST_F(JobDirectoryTest, RefusesToReplaceSomethingThatIsNotALink) {
  testing::WriteFileOrDie(Path("job/usercode/stray"), "");
  absl::StatusOr<JobDirectory> d = JobDirectory::Create(Spec());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("use a fresh --job-dir"));
}

TEST(HyperparameterJsonTest, KeepsNumbersAndBooleansTyped) {
  EXPECT_EQ(HyperparameterJson("10"), "10");
  EXPECT_EQ(HyperparameterJson("-3"), "-3");
  EXPECT_EQ(HyperparameterJson("0.001"), "0.001");
  EXPECT_EQ(HyperparameterJson("1e-3"), "1e-3");
  EXPECT_EQ(HyperparameterJson("true"), "true");
  EXPECT_EQ(HyperparameterJson("True"), "\"True\"");
  EXPECT_EQ(HyperparameterJson("nan"), "\"nan\"");
  EXPECT_EQ(HyperparameterJson("resnet"), "\"resnet\"");
  EXPECT_EQ(HyperparameterJson("say \"hi\""), R"("say \"hi\"")");
}

}  // namespace
}  // namespace elasticbatch::aimaster
