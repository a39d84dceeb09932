// The state of a whole job, and its one name in text.
#ifndef ELASTICBATCH_AIMASTER_CORE_JOB_STATE_H_
#define ELASTICBATCH_AIMASTER_CORE_JOB_STATE_H_

#include "absl/strings/string_view.h"

namespace elasticbatch::aimaster {

enum class JobState { kRunning, kSucceeded, kFailed };

// "running", "succeeded" or "failed": the one text of each state, as the
// summary, status and logs show it.
absl::string_view JobStateName(JobState state);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_JOB_STATE_H_
