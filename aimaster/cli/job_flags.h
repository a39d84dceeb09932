// The job flags shared by `serve` and `run`, read once into a JobFlags.
#ifndef ELASTICBATCH_AIMASTER_CLI_JOB_FLAGS_H_
#define ELASTICBATCH_AIMASTER_CLI_JOB_FLAGS_H_

#include "aimaster/job/job_config.h"

namespace elasticbatch::aimaster {

// The current values of the job flags, and $JOB_NAME.
JobFlags ReadJobFlags();

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CLI_JOB_FLAGS_H_
