// TaskInfo: this instance's place in the job, from ELASTICBATCH_CONFIG (or
// KubeDL's spelling ElASTICBATCH_CONFIG).
//
//   absl::StatusOr<TaskInfo> task = TaskInfo::FromEnvironment();
//   if (!task.ok()) { std::cerr << task.status() << "\n"; return 2; }
//   std::cout << task->type << " " << task->index << "\n";   // "worker 3"
//
// Errors are INVALID_ARGUMENT (malformed JSON, missing task, a negative or
// non-integer index, an unknown type) or NOT_FOUND (variable unset); the
// message names the variable and the problem.
#ifndef ELASTICBATCH_TASK_INFO_H_
#define ELASTICBATCH_TASK_INFO_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elasticbatch {

struct TaskInfo {
  // "worker" or "aimaster".
  std::string type;
  // Index of this instance among its type, 0-based.
  uint32_t index = 0;
  // The "environment" field ("cloud", "local", ...); empty when absent.
  std::string environment;

  static absl::StatusOr<TaskInfo> FromEnvironment();
  // Parses `json` as the value of `variable` (named in errors).
  static absl::StatusOr<TaskInfo> Parse(
      absl::string_view json, absl::string_view variable = "ELASTICBATCH_CONFIG");
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_TASK_INFO_H_
