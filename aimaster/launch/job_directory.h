// JobDirectory: a local job laid out like the platform's container, and the
// environment contract every worker gets.
//
//   <root>/usercode -> the code directory (PAI_WORKING_DIR; commands run here)
//   <root>/input/config/hyperparameters.json, training_job.json (PAI_CONFIG_DIR)
//   <root>/input/data/<ch>   -> the input path (a file input: <ch>/<name> -> file)
//   <root>/output/<ch>       -> the output path (or a directory of its own)
//   <root>/logs/worker-<i>-<k>.log
//
// Channels and hyperparameters whose names collide after normalisation
// (test_model, test-model) are refused, naming both.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_JOB_DIRECTORY_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_JOB_DIRECTORY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace elasticbatch::aimaster {

struct JobDirectorySpec {
  // The job directory; created when missing, reused when present. Required.
  std::string root;
  // Linked as usercode/. Required.
  std::string code_dir;
  // (name, path): inputs that exist are linked; others (a table URL, say) are
  // passed to workers verbatim. Default: none.
  std::vector<std::pair<std::string, std::string>> inputs;
  // (name, path): output paths are created and linked. Default: none.
  std::vector<std::pair<std::string, std::string>> outputs;
  // (name, value) in the order given. Default: none.
  std::vector<std::pair<std::string, std::string>> hyperparameters;
  // The job's id in training_job.json and the environment. Default: empty.
  std::string job_id;
  // Worker instances (PAI_WORKER_COUNT, the config's worker list). Default: 1.
  uint32_t workers = 1;
  // The user command, as training_job.json records it. Default: empty.
  std::string command;
};

class JobDirectory {
 public:
  // INVALID_ARGUMENT for colliding names; FAILED_PRECONDITION for I/O errors.
  static absl::StatusOr<JobDirectory> Create(const JobDirectorySpec& spec);

  const std::string& root() const { return root_; }
  const std::string& usercode() const { return usercode_; }
  const std::string& config_dir() const { return config_dir_; }
  const std::string& logs_dir() const { return logs_dir_; }
  std::string LogPath(uint32_t index, uint32_t attempt) const;

  // The full environment contract of one worker attempt ("NAME=VALUE").
  std::vector<std::string> WorkerEnvironment(uint32_t index, uint32_t attempt,
                                             const std::string& master_address) const;

 private:
  // The steps of Create, in order. Each appends to common_env_ what it sets up.
  static absl::Status CheckNames(const JobDirectorySpec& spec);
  absl::Status MakeLayout(const JobDirectorySpec& spec);
  absl::Status LinkInputs(const std::vector<std::pair<std::string, std::string>>& inputs);
  absl::Status LinkOutputs(
      const std::vector<std::pair<std::string, std::string>>& outputs);
  void AddHyperparameterEnvironment(
      const std::vector<std::pair<std::string, std::string>>& hyperparameters,
      const std::string& hps_json);

  std::string root_;
  std::string usercode_;
  std::string config_dir_;
  std::string logs_dir_;
  // Variables shared by every worker.
  std::vector<std::string> common_env_;
};

// A hyperparameter's value as JSON: integers, decimals and true/false keep
// their type; anything else is a string.
std::string HyperparameterJson(const std::string& value);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_JOB_DIRECTORY_H_
