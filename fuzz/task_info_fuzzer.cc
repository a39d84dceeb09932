// TaskInfo::Parse over ELASTICBATCH_CONFIG / ElASTICBATCH_CONFIG values.
// Invariants: never crashes; a parsed task has a known type; an error is
// INVALID_ARGUMENT naming the variable.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "elasticbatch/task_info.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  for (const char* variable : {"ELASTICBATCH_CONFIG", "ElASTICBATCH_CONFIG"}) {
    absl::StatusOr<elasticbatch::TaskInfo> task =
        elasticbatch::TaskInfo::Parse(json, variable);
    if (task.ok()) {
      FUZZ_CHECK(task->type == "worker" || task->type == "aimaster", "type '%s'",
                 task->type.c_str());
    } else {
      FUZZ_CHECK(task.status().code() == absl::StatusCode::kInvalidArgument, "%s",
                 task.status().ToString().c_str());
      FUZZ_CHECK(absl::StrContains(task.status().message(), variable), "%s",
                 task.status().ToString().c_str());
    }
  }
  return 0;
}
