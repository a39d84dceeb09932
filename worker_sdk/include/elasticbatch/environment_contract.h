// The environment contract between the platform (or `aimaster run`) and
// worker code: variable names, and how channel and parameter names become
// environment names. See the platform's custom-component documentation,
// Appendix 1 and 2.
//
//   EnvName("train-data")        == "TRAIN_DATA"
//   InputVariable("train")       == "PAI_INPUT_TRAIN"
//   CheckEnvNamesDistinct({"test_model", "test-model"}, "hyperparameter")
//       -> INVALID_ARGUMENT naming both
#ifndef ELASTICBATCH_ENVIRONMENT_CONTRACT_H_
#define ELASTICBATCH_ENVIRONMENT_CONTRACT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace elasticbatch {

// Topology of this instance: {"task":{"type":"worker","index":i},"environment":...}.
inline constexpr char kElasticBatchConfigVar[] = "ELASTICBATCH_CONFIG";
// KubeDL's spelling of the same variable.
inline constexpr char kKubeDlElasticBatchConfigVar[] = "ElASTICBATCH_CONFIG";
// host:port of the AIMaster.
inline constexpr char kAimasterAddrVar[] = "AIMASTER_ADDR";
// Launch attempt of this instance (restart or backup), set by `aimaster run`.
inline constexpr char kAttemptVar[] = "ELASTICBATCH_ATTEMPT";
inline constexpr char kInputPrefix[] = "PAI_INPUT_";
inline constexpr char kOutputPrefix[] = "PAI_OUTPUT_";
inline constexpr char kUserArgsVar[] = "PAI_USER_ARGS";
inline constexpr char kHyperparameterPrefix[] = "PAI_HPS_";
inline constexpr char kHyperparametersVar[] = "PAI_HPS";
inline constexpr char kWorkingDirVar[] = "PAI_WORKING_DIR";
inline constexpr char kConfigDirVar[] = "PAI_CONFIG_DIR";
inline constexpr char kVisibleDevicesVar[] = "NVIDIA_VISIBLE_DEVICES";
inline constexpr char kHyperparametersFile[] = "hyperparameters.json";
inline constexpr char kTrainingJobFile[] = "training_job.json";

// Upper-cases `name` and replaces every character outside [A-Z0-9_] with '_'.
std::string EnvName(absl::string_view name);
inline std::string InputVariable(absl::string_view channel) {
  return kInputPrefix + EnvName(channel);
}
inline std::string OutputVariable(absl::string_view channel) {
  return kOutputPrefix + EnvName(channel);
}
inline std::string HyperparameterVariable(absl::string_view name) {
  return kHyperparameterPrefix + EnvName(name);
}

// INVALID_ARGUMENT when two of `names` map to the same environment name; the
// message names both and `what` they are ("input channel", "hyperparameter").
absl::Status CheckEnvNamesDistinct(const std::vector<std::string>& names,
                                   absl::string_view what);

}  // namespace elasticbatch

#endif  // ELASTICBATCH_ENVIRONMENT_CONTRACT_H_
