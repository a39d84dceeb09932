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
#include <utility>
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

// Commands and PAI_USER_ARGS. Worker commands run as `sh -c CMD`, and users
// write `python main.py $PAI_USER_ARGS`, where a plain expansion would split a
// value such as "a b*" into two words and expand the glob. So:
//
//   UserArgs({{"prompt", "a b*"}, {"n", "2"}})   == "--prompt 'a b*' --n 2"
//   ShellCommandFromWords({"python", "main.py", "$PAI_USER_ARGS", "x y"})
//       == "python main.py $PAI_USER_ARGS "x y""
//   ExpandUserArgs("python main.py $PAI_USER_ARGS", "--prompt 'a b*'")
//       == "python main.py --prompt 'a b*'"      (sh: --prompt, a b*)

// `text` split into words as a POSIX shell splits a command line: blanks
// separate words; '...' and "..." (with \\-escapes) quote; no expansion. An
// unterminated quote runs to the end.
std::vector<std::string> ShellSplit(absl::string_view text);

// `word` quoted for a POSIX shell when it holds anything besides
// [A-Za-z0-9_@%+=:,./-] ('' for an empty word).
std::string ShellQuote(absl::string_view word);

// PAI_USER_ARGS: "--NAME VALUE" per hyperparameter, in order, each word
// shell-quoted when needed (identical to the platform's format for plain
// values; `eval set -- $PAI_USER_ARGS` or Python's shlex.split keep every
// value one argument).
std::string UserArgs(const std::vector<std::pair<std::string, std::string>>& hps);

// The `sh -c` command for the words after `--`. One word is a shell command as
// written. Several are joined so that each arrives as one argument: a word that
// is exactly $PAI_USER_ARGS or ${PAI_USER_ARGS} stays bare (it becomes the
// hyperparameter arguments), any other word is double-quoted when needed with
// its $NAME and ${NAME} references kept (the worker's shell expands them).
std::string ShellCommandFromWords(const std::vector<std::string>& words);

// `command` with every $PAI_USER_ARGS and ${PAI_USER_ARGS} outside quotes
// replaced by `user_args` (already shell-quoted, see UserArgs), so that each
// hyperparameter value arrives as one argument. Occurrences inside quotes
// keep their meaning (the variable's value as one string).
std::string ExpandUserArgs(absl::string_view command, absl::string_view user_args);

}  // namespace elasticbatch

#endif  // ELASTICBATCH_ENVIRONMENT_CONTRACT_H_
