#include "aimaster/core/job_state.h"

namespace elasticbatch::aimaster {

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kRunning:
      break;
  }
  return "running";
}

}  // namespace elasticbatch::aimaster
