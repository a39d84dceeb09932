// PaiEnvironment: the channels, hyperparameters and directories the platform
// hands to a worker through its environment and config files (Appendix 2).
//
//   absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromEnvironment();
//   std::optional<std::string> train = env->Input("train");    // PAI_INPUT_TRAIN
//   absl::StatusOr<int64_t> epochs = env->GetInt("epochs");    // PAI_HPS, PAI_HPS_EPOCHS
//   absl::StatusOr<double> lr = env->GetDouble("lr", 0.01);   // 0.01 when not set
//
// Hyperparameters are looked up in PAI_HPS (JSON, original names), then in
// PAI_HPS_<NAME>, then in <config dir>/hyperparameters.json. A value of the
// wrong type is INVALID_ARGUMENT naming the parameter and its value; a missing
// one is NOT_FOUND, or the default for the getters that take one (a value that
// is set but of the wrong type is still an error: a typo in a job's
// hyperparameters must not silently run with the default). Immutable after construction,
// hence thread-safe.
#ifndef ELASTICBATCH_PAI_ENVIRONMENT_H_
#define ELASTICBATCH_PAI_ENVIRONMENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elasticbatch {

class PaiEnvironment {
 public:
  using Variables = std::map<std::string, std::string>;

  // Reads the process environment and the config dir's JSON files.
  static absl::StatusOr<PaiEnvironment> FromEnvironment();
  // Reads `variables` instead of the process environment. INVALID_ARGUMENT
  // when PAI_HPS, hyperparameters.json or training_job.json is not valid JSON.
  static absl::StatusOr<PaiEnvironment> FromVariables(const Variables& variables);

  // PAI_INPUT_<CHANNEL> / PAI_OUTPUT_<CHANNEL>; `channel` is normalised
  // ("train-data" finds PAI_INPUT_TRAIN_DATA).
  std::optional<std::string> Input(absl::string_view channel) const;
  std::optional<std::string> Output(absl::string_view channel) const;
  // Every channel, keyed by its normalised name ("TRAIN").
  const std::map<std::string, std::string>& inputs() const { return inputs_; }
  const std::map<std::string, std::string>& outputs() const { return outputs_; }

  // PAI_USER_ARGS verbatim ("--epochs 10 --prompt 'a b'"), and split into
  // words as a shell would (quotes respected: {"--epochs","10","--prompt","a b"}).
  const std::string& user_args() const { return user_args_; }
  std::vector<std::string> UserArgList() const;

  absl::StatusOr<int64_t> GetInt(absl::string_view name) const;
  absl::StatusOr<double> GetDouble(absl::string_view name) const;
  // Accepts true/false (JSON), and "true"/"false"/"1"/"0" in text.
  absl::StatusOr<bool> GetBool(absl::string_view name) const;
  // Strings as they are; numbers and booleans in their JSON spelling.
  absl::StatusOr<std::string> GetString(absl::string_view name) const;
  bool HasHyperparameter(absl::string_view name) const;

  // As above, but `default_value` when the parameter is not set at all.
  absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t default_value) const;
  absl::StatusOr<double> GetDouble(absl::string_view name, double default_value) const;
  absl::StatusOr<bool> GetBool(absl::string_view name, bool default_value) const;
  absl::StatusOr<std::string> GetString(absl::string_view name,
                                        absl::string_view default_value) const;

  // PAI_WORKING_DIR and PAI_CONFIG_DIR; empty when unset.
  const std::string& working_dir() const { return working_dir_; }
  const std::string& config_dir() const { return config_dir_; }
  // <config dir>/training_job.json as text; empty when absent.
  const std::string& training_job_json() const { return training_job_json_; }

  // GPUs named by NVIDIA_VISIBLE_DEVICES ("0,1,2,3" is 4); 0 when unset,
  // empty, "none" or "void"; for "all", the /dev/nvidiaN devices present.
  int gpu_count() const { return gpu_count_; }

 private:
  // A hyperparameter as found: JSON scalar (typed) or text (from the env).
  struct Value {
    enum class Kind { kNumber, kBool, kString, kOther } kind = Kind::kString;
    double number = 0;
    bool boolean = false;
    std::string text;  // the string, or the JSON spelling
    std::string source;
  };
  std::optional<Value> Find(absl::string_view name) const;

  std::map<std::string, std::string> inputs_;
  std::map<std::string, std::string> outputs_;
  std::string user_args_;
  std::map<std::string, Value> json_hps_;  // PAI_HPS, by original name
  std::map<std::string, Value> env_hps_;   // PAI_HPS_<NAME>, by env name
  std::map<std::string, Value> file_hps_;  // hyperparameters.json, by original name
  std::string working_dir_;
  std::string config_dir_;
  std::string training_job_json_;
  int gpu_count_ = 0;
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_PAI_ENVIRONMENT_H_
